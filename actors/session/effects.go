package session

import (
	"context"
	"runtime/debug"

	"go.opentelemetry.io/otel/trace"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
)

// lane is a kind of side effect the grain starts but never waits for:
// store writes, Lavalink calls, searches, op 4 requests, channel
// messages. Effects of one lane run one at a time, in the order the
// grain started them (a pause must reach Lavalink after the play it
// follows), and each lane runs apart from the others, so a slow search
// or a rate-limited Discord never holds up the player.
type lane int

const (
	laneStore lane = iota
	laneAudio
	laneSearch
	laneGateway
	laneMessages
	laneCount
)

// effect is one piece of work off the mailbox: run does the I/O (on a
// lane goroutine, touching no grain state) and then, back on the
// grain's goroutine, receives run's result.
type effect struct {
	run  func(ctx context.Context) any
	then func(result any)
	// trace is the span of the command that started it (invalid: none).
	trace trace.SpanContext
}

var laneNames = [laneCount]string{"store", "audio", "search", "gateway", "messages"}

// laneQueue is a lane's pending effects; the head is running when busy.
type laneQueue struct {
	q    []effect
	busy bool
}

// effectDone is the message a lane goroutine sends back with a result.
type effectDone struct {
	lane   lane
	result any
}

// do starts e on its lane, after what the lane already has. then may be
// nil.
func (g *Grain) do(l lane, run func(ctx context.Context) any, then func(any)) {
	lq := &g.lanes[l]
	lq.q = append(lq.q, effect{run: run, then: then, trace: g.trace})
	if !lq.busy {
		g.startLane(l)
	}
}

// startLane runs the lane's head on a pooled goroutine (cluster.Go) that
// reports back by message. The grain holds a goroutine only while the
// lane has work, so an idle grain has none.
func (g *Grain) startLane(l lane) {
	lq := &g.lanes[l]
	lq.busy = true
	run, timeout, self, root := lq.q[0].run, g.deps.CallTimeout, g.self, g.sys.Root
	parent, tracer := lq.q[0].trace, g.deps.tracer()
	ecluster.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if parent.IsValid() {
			// A traced command's Lavalink, store or Discord call.
			var span trace.Span
			ctx, span = tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "session "+laneNames[l])
			defer span.End()
		}
		var result any
		defer func() {
			if r := recover(); r != nil {
				result = effectPanic{value: r, stack: debug.Stack()}
			}
			root.Send(self, effectDone{lane: l, result: result})
		}()
		result = run(ctx)
	})
}

// effectPanic is the result of an effect that panicked: the activation
// stops as if its handler had.
type effectPanic struct {
	value any
	stack []byte
}

// effectFinished hands a result to its continuation and starts the
// lane's next effect.
func (g *Grain) effectFinished(m effectDone) {
	lq := &g.lanes[m.lane]
	if len(lq.q) == 0 {
		return
	}
	then, tr := lq.q[0].then, lq.q[0].trace
	lq.q[0] = effect{}
	lq.q = lq.q[1:]
	lq.busy = false
	if len(lq.q) > 0 {
		g.startLane(m.lane)
	} else {
		lq.q = nil
	}
	if p, ok := m.result.(effectPanic); ok {
		g.log.Error("session effect panicked", "panic", p.value, "stack", string(p.stack))
		g.panicked(p.value, nil)
		return
	}
	if then != nil {
		// The continuation's effects belong to the same command.
		g.trace = tr
		then(m.result)
	}
}
