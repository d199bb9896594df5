package guild

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// answer runs one interaction's Discord REST calls, in order, on a
// goroutine of its own: the deferral when the final reply is not ready
// within the budget, then the final reply (the first response, an edit of
// the deferred one, or the deletion of a public "thinking" message and a
// private follow-up). One goroutine per interaction keeps the deferral
// ahead of the edit without the grain waiting for either, and since it
// owns the deferral timer, a busy grain mailbox cannot delay the deferral
// past Discord's 3 s.
type answer struct {
	// final carries the one final reply; its capacity of 1 means handing
	// it over never blocks the grain.
	final chan *clusterpb.Reply
	// hurry asks for the deferral now rather than at the budget's end
	// (commands.Command.DeferAtOnce); capacity 1, like final.
	hurry chan struct{}
}

// answerSpec is what the answer's goroutine needs: copies, so it never
// touches the grain.
type answerSpec struct {
	replier Replier
	log     *slog.Logger
	guild   string
	in      *clusterpb.Interaction
	// ephemeral is the deferral's visibility, which fixes the final
	// reply's (Discord cannot turn one into the other).
	ephemeral bool
	// deferIn is the time left before the interaction must be deferred.
	deferIn time.Duration
	// deferred: the interaction is deferred already (a replayed one,
	// acknowledged before it ran).
	deferred bool
	// giveUpIn bounds the wait for the final reply: the interaction's token
	// expires then, so nothing could be sent anyway. The grain hands over
	// a final reply for every interaction long before (every piece of work
	// is bounded by a timeout, and a stopping grain answers what is open);
	// this bound is what keeps the goroutine from outliving its
	// interaction should that ever fail.
	giveUpIn    time.Duration
	callTimeout time.Duration
	// ackBy is Discord's deadline for the first answer (the deferral or
	// the response): past it the callback is refused, so it is not sent.
	ackBy time.Time
	// received is when the shard received the interaction, and command
	// its metrics label.
	received time.Time
	command  string
	metrics  *Metrics
	// ctx holds span, the interaction's span in the grain, which the
	// answer ends; each REST call is a child of it.
	ctx    context.Context
	span   trace.Span
	tracer trace.Tracer
}

func newAnswer() *answer {
	return &answer{final: make(chan *clusterpb.Reply, 1), hurry: make(chan struct{}, 1)}
}

// inFlight counts this process's interactions taken by guild grains and
// not yet answered (each ends with its answer's run, or unrun when a
// replayed one could not be acknowledged).
var inFlight atomic.Int64

// InFlight is how many interactions the guild grains of this process are
// still answering: a member that stops waits for them after leaving the
// membership, since stopping the actor system would drop their answers.
func InFlight() int64 { return inFlight.Load() }

// finish hands over the final reply. It is called once per answer; a
// second reply would have nowhere to go and is dropped rather than block
// the grain.
func (a *answer) finish(r *clusterpb.Reply) {
	select {
	case a.final <- r:
	default:
	}
}

// deferNow has the interaction deferred at once unless its reply is ready
// first. Like finish, it never blocks the grain.
func (a *answer) deferNow() {
	select {
	case a.hurry <- struct{}{}:
	default:
	}
}

func (a *answer) run(s answerSpec) {
	defer inFlight.Add(-1)
	defer s.span.End()
	var r *clusterpb.Reply
	ack := ackNone
	if s.deferred {
		ack = ackDeferred
	}
	deferred := s.deferred
	select {
	case r = <-a.final:
		// Ready at once, the common case: no timer at all.
	default:
		r, deferred = a.wait(s, &ack)
		if r == nil {
			s.log.WarnContext(s.ctx, "interaction expired before its reply was ready", "guild", s.guild, "command", s.in.GetName())
			s.span.SetStatus(codes.Error, outcomeExpired)
			s.metrics.answered(s, ack, outcomeExpired)
			return
		}
	}
	in := s.in
	var err error
	switch {
	case deferred && !s.ephemeral && r.GetEphemeral():
		// A public deferral cannot become ephemeral: replace the
		// "thinking" message with an ephemeral follow-up, so an error
		// stays between the bot and the user (SECURITY.md: errors are private).
		if err = s.call("delete deferred reply", func(c context.Context) error {
			return s.replier.DeleteOriginal(c, in.GetApplicationId(), in.GetToken())
		}); err == nil {
			err = s.call("follow up interaction", func(c context.Context) error {
				return s.replier.Followup(c, in.GetApplicationId(), in.GetToken(), r)
			})
		}
	case deferred:
		err = s.call("edit deferred reply", func(c context.Context) error {
			return s.replier.EditOriginal(c, in.GetApplicationId(), in.GetToken(), r)
		})
	default:
		err = s.ack("answer interaction", func(c context.Context) error {
			return s.replier.Respond(c, in.GetId(), in.GetToken(), r)
		})
		ack = ackResult(ackDirect, err)
	}
	outcome := outcomeOf(r)
	if err != nil {
		outcome = outcomeFailed
		s.span.SetStatus(codes.Error, outcome)
	}
	s.span.SetAttributes(attribute.String("ensemble.outcome", outcome), attribute.String("ensemble.ack", ack))
	s.metrics.answered(s, ack, outcome)
}

// wait waits for the final reply, deferring the interaction if the reply
// is not ready in time. It returns nil if the interaction expires first.
// ack is set to how the interaction was acknowledged.
func (a *answer) wait(s answerSpec, ack *string) (r *clusterpb.Reply, deferred bool) {
	if s.deferred {
		timer := time.NewTimer(max(s.giveUpIn, 0))
		defer timer.Stop()
		select {
		case r = <-a.final:
		case <-timer.C:
		}
		return r, true
	}
	start := time.Now()
	timer := time.NewTimer(max(s.deferIn, 0))
	defer timer.Stop()
	select {
	case r = <-a.final:
		return r, false
	case <-timer.C:
	case <-a.hurry:
		// A reply that came with the hurry still goes out as the
		// response.
		select {
		case r = <-a.final:
			return r, false
		default:
		}
	}
	err := s.ack("defer interaction", func(c context.Context) error {
		return s.replier.Defer(c, s.in.GetId(), s.in.GetToken(), s.ephemeral)
	})
	*ack = ackResult(ackDeferred, err)
	timer.Reset(max(s.giveUpIn-time.Since(start), 0))
	select {
	case r = <-a.final:
		return r, true
	case <-timer.C:
		return nil, true
	}
}

// call runs one REST call under the call timeout; a failure is logged
// and returned, and the interaction's other steps go on (an edit after a
// failed deferral may still reach Discord).
func (s answerSpec) call(what string, f func(context.Context) error) error {
	c, cancel := context.WithTimeout(context.Background(), s.callTimeout)
	defer cancel()
	return s.run(c, what, f)
}

// ack is call for the interaction's first answer, bounded by its deadline
// as well.
func (s answerSpec) ack(what string, f func(context.Context) error) error {
	c, cancel := s.ackContext()
	defer cancel()
	return s.run(c, what, f)
}

func (s answerSpec) ackContext() (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.Background(), earliest(time.Now().Add(s.callTimeout), s.ackBy))
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// run makes one REST call, traced as a child of the interaction's span.
func (s answerSpec) run(c context.Context, what string, f func(context.Context) error) error {
	c, span := s.tracer.Start(trace.ContextWithSpan(c, s.span), "discord "+what, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	err := f(c)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "failed")
		s.log.WarnContext(c, what, "err", err, "guild", s.guild, "command", s.in.GetName())
	}
	return err
}
