package guild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/recent"
	"github.com/ensemble-bot/ensemble/internal/store"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Kind is the cluster kind name of guild grains.
const Kind = "Guild"

// Replier answers interactions (internal/commands.Discord).
type Replier interface {
	Respond(ctx context.Context, interactionID, token string, r *clusterpb.Reply) error
	Defer(ctx context.Context, interactionID, token string, ephemeral bool) error
	EditOriginal(ctx context.Context, appID, token string, r *clusterpb.Reply) error
	DeleteOriginal(ctx context.Context, appID, token string) error
	Followup(ctx context.Context, appID, token string, r *clusterpb.Reply) error
	Autocomplete(ctx context.Context, interactionID, token string, choices []*clusterpb.Choice) error
}

// Sessions calls session grains.
type Sessions interface {
	Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error)
}

// Searcher answers /play autocomplete.
type Searcher interface {
	Load(ctx context.Context, identifier string) (audio.Loaded, error)
}

// SettingsStore is the part of internal/store a guild uses.
type SettingsStore interface {
	LoadGuild(ctx context.Context, guildID string) (store.Guild, error)
	SaveSettings(ctx context.Context, guildID string, settings []byte) error
}

// Deps is what every guild grain of a member shares.
type Deps struct {
	Store    SettingsStore
	Replier  Replier
	Sessions Sessions
	Search   Searcher
	Log      *slog.Logger
	Now      func() time.Time

	// Cooldown is per user and command.
	Cooldown time.Duration
	// CooldownEntries bounds the cooldown set.
	CooldownEntries int
	// AnswerBudget is how long after the interaction arrived the grain
	// waits for the reply before deferring; it must leave room in
	// Discord's 3 s for the deferral itself.
	AnswerBudget time.Duration
	// WorkTimeout bounds the session's work on one command (the deferred
	// reply is edited within Discord's 15 minutes).
	WorkTimeout time.Duration
	// CallTimeout bounds store and Discord calls.
	CallTimeout time.Duration
	// MaxInFlight bounds the commands a guild works on at once; past it
	// users get a "busy" reply rather than an unbounded backlog.
	MaxInFlight int
	// Metrics, if set, count every interaction's answer.
	Metrics *Metrics
	// Mailbox, if set, counts the messages waiting in the grains' mailboxes.
	Mailbox *ecluster.MailboxDepth
	// Tracer, if set, traces each interaction's work and answer.
	Tracer trace.Tracer
	// LoadRetry spaces the reloads of settings the store could not give:
	// the first command after the delay starts one, never every command.
	LoadRetry supervisor.Backoff

	// epoch is the origin of the grains' monotonic clock (Now's at
	// NewKind), so deadlines are durations that a wall-clock step does not
	// move.
	epoch time.Time
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.CooldownEntries <= 0 {
		d.CooldownEntries = 1024
	}
	if d.AnswerBudget <= 0 {
		d.AnswerBudget = 1500 * time.Millisecond
	}
	if d.WorkTimeout <= 0 {
		d.WorkTimeout = 30 * time.Second
	}
	if d.CallTimeout <= 0 {
		d.CallTimeout = 5 * time.Second
	}
	if d.MaxInFlight <= 0 {
		d.MaxInFlight = 16
	}
	if d.LoadRetry.Base <= 0 {
		d.LoadRetry = supervisor.Backoff{Base: time.Second, Max: time.Minute, Jitter: 0.5}
	}
	d.epoch = d.Now()
}

// NewKind returns the guild kind, a lean one (guildActor): no receive
// timeout (the member passivates idle guilds, cluster.Options.IdleTimeouts)
// and nothing kept for the cluster in the actor's context, so an idle guild
// costs no timer and little heap. Callers use the generated client.
func NewKind(deps Deps) *cluster.Kind {
	deps.defaults()
	d := &deps
	// The lock-free mailbox holds nothing but two list heads while empty;
	// the default one keeps a ring buffer per grain (about 200 B more per
	// idle guild), and a guild's traffic is far below where the ring's
	// higher throughput would matter.
	var depth []actor.MailboxMiddleware
	if d.Mailbox != nil {
		depth = append(depth, d.Mailbox)
	}
	return ecluster.NewKind(Kind, func() ecluster.LeanGrain { return &guildActor{grain: Grain{deps: d}} },
		actor.WithMailbox(actor.UnboundedLockfree(depth...)))
}

const (
	// maxPending bounds the commands waiting for the settings load; past
	// it, a slow store gets "busy" answers instead of a backlog.
	maxPending = 8
	// maxSettingsQueue bounds the /settings commands waiting for the save
	// in flight.
	maxSettingsQueue = 4
	// tokenLifetime is how long Discord takes replies on an interaction.
	tokenLifetime = 15 * time.Minute
	// ackWithin is Discord's deadline for an interaction's first answer
	// (callback): one that would be sent later, say after waiting out a
	// rate limit, fails at once instead.
	ackWithin = 3 * time.Second
)

// Grain is one activation of guild/<guildID>. It never waits: the store,
// the session and Discord are called from goroutines that report back by
// message (or, for Discord, from each interaction's answer goroutine), so
// one slow call delays neither this guild's other commands nor anyone
// else's. What it needs only while busy (a load, a save, commands in
// flight) is allocated then and dropped after, so an idle guild costs a
// few hundred bytes (BenchmarkIdleGuildFootprint).
type Grain struct {
	deps     *Deps
	ctx      cluster.GrainContext
	settings music.Settings
	load     loadState
	// session is what the guild knows of its session; sessionEvents counts
	// routed commands and session replies, so that a store read that saw
	// no session is believed only if nothing happened meanwhile.
	session       sessionState
	sessionEvents uint32
	// view is the session's view, once a reply brought one (view.go).
	view     *sessionView
	inFlight map[string]*work
	// loading is set while a load runs or after one failed.
	loading *loadProgress
	// saves is set while a /settings save runs.
	saves *saveQueue

	cooldowns cooldowns
	// seen remembers recent interaction IDs: a call retried after a
	// timeout delivers the same interaction twice.
	seen recent.Set[struct{}]
}

// loadProgress is the settings load's bookkeeping.
type loadProgress struct {
	// pending are the commands that arrived while the load ran.
	pending []*work
	// events is sessionEvents when the load started.
	events uint32
	// failures counts the failed loads in a row; retryAt is when the next
	// command may start another.
	failures int
	retryAt  time.Duration
}

// saveQueue is the /settings save in flight and those waiting for it.
type saveQueue struct {
	saving *work
	queue  []*work
}

type loadState uint8

const (
	loading loadState = iota
	loaded
	// loadFailed: the settings could not be read; the safe defaults apply
	// (DJ actions need Manage Server) and /settings changes are refused,
	// since merging them onto the defaults would wipe the stored DJ role.
	loadFailed
)

// work is one command interaction, from its arrival to its final reply.
type work struct {
	in     *clusterpb.Interaction
	name   string
	button bool
	// ans is nil until the interaction needs an answer goroutine.
	ans *answer
	// overlapped: another session command was in flight at its start, and
	// events is sessionEvents then.
	overlapped bool
	events     uint32
	// acked: a replayed interaction this grain acknowledged (deferred)
	// before running it.
	acked bool
	// ctx holds span, the interaction's span in this grain, child of the
	// shard's (ended when the answer is sent).
	ctx  context.Context
	span trace.Span
}

// Self-messages.
type (
	loadedMsg struct {
		rec store.Guild
		err error
	}
	sessionDone struct {
		id    string
		reply *clusterpb.SessionReply
		err   error
	}
	// replayAcked: the acknowledgement of a replayed interaction ended.
	replayAcked struct {
		w  *work
		ok bool
	}
	savedMsg struct {
		id   string
		next music.Settings
		err  error
	}
)

// Init starts loading the guild's settings; commands wait for them in
// the pending list.
func (g *Grain) Init(ctx cluster.GrainContext) {
	g.ctx = ctx
	g.deps.Metrics.activated(1)
	g.settings = music.DefaultSettings()
	g.startLoad()
}

// guildID is the grain's identity; not kept apart, to keep idle grains
// small.
func (g *Grain) guildID() string { return g.ctx.Identity() }

// Terminate answers whatever is still open: the results would come back
// to a stopped activation, and no interaction may go unanswered.
func (g *Grain) Terminate(cluster.GrainContext) {
	defer g.recoverPanic(nil)
	g.deps.Metrics.activated(-1)
	var open []*work
	if g.loading != nil {
		open = append(open, g.loading.pending...)
	}
	if g.saves != nil {
		if g.saves.saving != nil {
			open = append(open, g.saves.saving)
		}
		open = append(open, g.saves.queue...)
	}
	for _, w := range g.inFlight {
		open = append(open, w)
	}
	g.loading, g.saves, g.inFlight = nil, nil, nil
	for _, w := range open {
		g.finish(w, commands.Error("Something went wrong while handling that; please try again."))
	}
}

// ReceiveDefault takes the reports of the grain's own goroutines.
func (g *Grain) ReceiveDefault(ctx cluster.GrainContext) {
	defer g.recoverPanic(nil)
	switch msg := ctx.Message().(type) {
	case loadedMsg:
		g.onLoaded(msg)
	case sessionDone:
		g.onSessionDone(msg)
	case replayAcked:
		if msg.ok {
			msg.w.acked = true
			g.admit(msg.w)
		} else {
			inFlight.Add(-1) // handled before: nothing to answer
			msg.w.span.End()
		}
	case savedMsg:
		g.onSaved(msg)
	}
}

// now is the grain's monotonic clock.
func (g *Grain) now() time.Duration { return g.deps.Now().Sub(g.deps.epoch) }

// logger is made on use: a logger with the guild attached would cost
// every activation a few hundred bytes, and most never log.
func (g *Grain) logger() *slog.Logger { return g.deps.Log.With("guild", g.guildID()) }

// report runs f off the mailbox and sends its result back to the grain.
func (g *Grain) report(f func() any) {
	self, root := g.ctx.Self(), g.ctx.ActorSystem().Root
	ecluster.Go(func() { root.Send(self, f()) })
}

// Handle takes one interaction from the shard.
func (g *Grain) Handle(in *clusterpb.Interaction, _ cluster.GrainContext) (_ *clusterpb.HandleReply, err error) {
	defer g.recoverPanic(&err)
	if in.GetGuildId() != g.guildID() {
		return nil, fmt.Errorf("interaction for guild %s sent to guild %s", in.GetGuildId(), g.guildID())
	}
	if _, added := g.seen.Add(in.GetId(), struct{}{}, g.now(), dedupBounds); !added {
		return &clusterpb.HandleReply{}, nil // a retried delivery
	}
	if in.GetKind() != clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE {
		inFlight.Add(1) // until its answer ends (answer.run)
	}
	newWork := func(name string, button bool) *work {
		ctx, span := g.deps.tracer().Start(telemetry.WithTraceparent(context.Background(), in.GetTraceparent()),
			"guild "+commandLabel(name), trace.WithAttributes(attribute.String("ensemble.guild", g.guildID())))
		return &work{in: in, name: name, button: button, ctx: ctx, span: span}
	}
	switch in.GetKind() {
	case clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE:
		if in.GetReplayed() {
			break // suggestions for a keystroke long gone
		}
		g.autocomplete(in)
	case clusterpb.InteractionKind_INTERACTION_KIND_BUTTON:
		action, err := commands.ParseCustomID(in.GetName(), g.guildID())
		c, ok := commands.ButtonCommand(action)
		if err != nil || !ok {
			g.finish(newWork("", true), commands.Error("That button is not valid here."))
			break
		}
		g.admitOnce(newWork(string(c.Name), true))
	case clusterpb.InteractionKind_INTERACTION_KIND_COMMAND:
		g.admitOnce(newWork(in.GetName(), false))
	default:
		g.finish(newWork("", false), commands.Error("Unsupported interaction."))
	}
	return &clusterpb.HandleReply{}, nil
}

// admitOnce admits a command, a replayed one only once this grain has
// acknowledged it: Discord takes one acknowledgement per interaction, so
// one that another activation handled before the shard moved fails to
// acknowledge and is dropped. Replays are rare (a shard resumed on a new
// holder), so the extra round trip is not on the common path.
func (g *Grain) admitOnce(w *work) {
	if !w.in.GetReplayed() {
		g.admit(w)
		return
	}
	spec := g.answerSpec(w)
	g.report(func() any {
		c, cancel := spec.ackContext()
		defer cancel()
		err := spec.replier.Defer(c, spec.in.GetId(), spec.in.GetToken(), spec.ephemeral)
		if err != nil {
			spec.log.Info("replayed interaction not run: it could not be acknowledged (handled already, or expired)",
				"err", err, "guild", spec.guild, "command", w.name)
		}
		return replayAcked{w: w, ok: err == nil}
	})
}

// admit runs a command now, or keeps it until the settings are loaded.
func (g *Grain) admit(w *work) {
	if g.load == loadFailed && g.now() >= g.loading.retryAt {
		g.startLoad()
	}
	if g.load != loading {
		g.run(w)
		return
	}
	if len(g.loading.pending) >= maxPending {
		g.finish(w, commands.Busy())
		return
	}
	// The deferral clock runs while it waits: a slow store gets the
	// interaction deferred, then completed.
	g.track(w)
	g.loading.pending = append(g.loading.pending, w)
}

// run applies the DJ rule and the cooldown, then answers the command
// itself or hands it to the session.
func (g *Grain) run(w *work) {
	in := w.in
	c, ok := commands.Lookup(w.name)
	if !ok {
		g.finish(w, commands.UnknownCommand(w.name))
		return
	}
	inv := in.GetInvoker()
	member := music.Member{
		RoleIDs:           inv.GetRoleIds(),
		Permissions:       inv.GetPermissions(),
		VoiceChannelID:    inv.GetVoiceChannelId(),
		BotVoiceChannelID: in.GetBotVoiceChannelId(),
	}
	if err := music.Authorize(member, g.settings, c.Action); err != nil {
		g.finish(w, commands.Error(err.Error()))
		return
	}
	var fromView *clusterpb.Reply
	if c.IdleAnswer && g.viewTrusted() {
		fromView, _ = g.viewReply(c.Name, in.GetOptions())
	}
	local := fromView != nil || g.answersLocally(c)
	if c.Where == commands.InSession && !local && len(g.inFlight) >= g.deps.MaxInFlight {
		g.finish(w, commands.Busy())
		return
	}
	if wait := g.cooldowns.take(inv.GetUserId()+"/"+w.name, g.now(), g.deps.Cooldown, g.deps.CooldownEntries); wait > 0 {
		g.finish(w, commands.Error(fmt.Sprintf("Slow down: you can use that again in %.1fs.", wait.Seconds())))
		return
	}
	switch {
	case fromView != nil:
		g.finish(w, fromView)
	case local:
		g.finish(w, idleReply(c.Name, in.GetOptions()))
	case c.Where == commands.InGuild:
		guildCommands[c.Name](g, w)
	default:
		g.route(w, c)
	}
}

// route sends the command to the session without blocking the mailbox.
func (g *Grain) route(w *work, c commands.Command) {
	in := w.in
	req := &clusterpb.SessionRequest{
		GuildId:           g.guildID(),
		Command:           w.name,
		Options:           in.GetOptions(),
		Invoker:           in.GetInvoker(),
		TextChannelId:     in.GetChannelId(),
		AnnounceChannelId: g.settings.AnnounceChannelID,
		DefaultVolume:     int32(g.settings.DefaultVolume),
		ReceivedUnixNano:  in.GetReceivedUnixNano(),
		RequestId:         in.GetId(),
		Traceparent:       telemetry.Traceparent(w.ctx),
	}
	if v := g.view; v != nil {
		req.ViewEpoch, req.ViewSeq = v.epoch, v.seq
	}
	g.track(w)
	// Only now, past the guild's own checks: a refusal is answered
	// directly, not after a public "thinking" message.
	if c.DeferAtOnce {
		w.ans.deferNow()
	}
	if g.inFlight == nil {
		g.inFlight = make(map[string]*work, 1)
	}
	w.overlapped = len(g.inFlight) > 0
	g.sessionEvents++
	w.events = g.sessionEvents
	g.inFlight[in.GetId()] = w
	sessions, timeout, id := g.deps.Sessions, g.deps.WorkTimeout, in.GetId()
	g.report(func() any {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := sessions.Execute(c, req)
		return sessionDone{id: id, reply: res, err: err}
	})
}

func (g *Grain) onSessionDone(msg sessionDone) {
	w := g.inFlight[msg.id]
	if w == nil {
		return
	}
	delete(g.inFlight, msg.id)
	if len(g.inFlight) == 0 {
		g.inFlight = nil
	}
	g.learnSession(w, msg.reply, msg.err)
	if v := msg.reply.GetView(); v != nil {
		g.takeView(v, true)
	} else if g.view != nil {
		// A refusal (the session moved, failed or was fenced) or no
		// answer: the view may be an old activation's, so reads ask the
		// session until a reply brings a view again.
		g.view.until = 0
	}
	reply := msg.reply.GetReply()
	switch {
	case errors.Is(msg.err, ecluster.ErrOwnerUnreachable):
		// The session's member just died; its new one takes over within
		// seconds.
		reply = commands.Busy()
	case msg.err != nil:
		g.logger().Warn("session call failed", "err", msg.err, "command", w.name)
		reply = commands.Error("Something went wrong while handling that; please try again.")
	}
	if reply == nil {
		reply = commands.Info("Done.")
	}
	g.finish(w, reply)
}

// track starts the interaction's answer goroutine, and with it the
// deferral clock, if it is not running yet.
func (g *Grain) track(w *work) {
	if w.ans == nil {
		w.ans = newAnswer()
		spec := g.answerSpec(w)
		ecluster.Go(func() { w.ans.run(spec) })
	}
}

// finish hands the final reply to the interaction's answer goroutine,
// starting one that answers at once if none runs.
func (g *Grain) finish(w *work, r *clusterpb.Reply) {
	if w.button {
		// A button's answer is for the one who pressed it; the
		// now-playing message shows the channel what changed.
		r.Ephemeral = true
	}
	if w.ans != nil {
		w.ans.finish(r)
		return
	}
	w.ans = newAnswer()
	w.ans.finish(r)
	spec := g.answerSpec(w)
	ecluster.Go(func() { w.ans.run(spec) })
}

func (g *Grain) answerSpec(w *work) answerSpec {
	in := w.in
	c, _ := commands.Lookup(w.name)
	received := g.receivedAt(in)
	elapsed := g.deps.Now().Sub(received)
	return answerSpec{
		replier: g.deps.Replier,
		log:     g.deps.Log,
		guild:   g.guildID(),
		in:      in,
		// A public command's answer is for everyone in the channel;
		// other deferred answers, and every button answer, are for the
		// invoker.
		ephemeral:   !c.Public || w.button,
		deferIn:     g.deps.AnswerBudget - elapsed,
		deferred:    w.acked,
		giveUpIn:    tokenLifetime - elapsed,
		callTimeout: g.deps.CallTimeout,
		ackBy:       received.Add(ackWithin),
		received:    received,
		ctx:         w.ctx,
		span:        w.span,
		tracer:      g.deps.tracer(),
		command:     commandLabel(w.name),
		metrics:     g.deps.Metrics,
	}
}

// receivedAt is when the shard received the interaction, or now for one
// that does not say.
func (g *Grain) receivedAt(in *clusterpb.Interaction) time.Time {
	if n := in.GetReceivedUnixNano(); n != 0 {
		return time.Unix(0, n)
	}
	return g.deps.Now()
}

// autocomplete answers /play suggestions off the mailbox: a search per
// keystroke must not hold up this guild's commands.
func (g *Grain) autocomplete(in *clusterpb.Interaction) {
	var typed string
	for _, o := range in.GetOptions() {
		if o.GetFocused() {
			typed = o.GetValue()
		}
	}
	search, replier, log, timeout, guild, tracer := g.deps.Search, g.deps.Replier, g.deps.Log, g.deps.CallTimeout, g.guildID(), g.deps.tracer()
	ackBy := g.receivedAt(in).Add(ackWithin)
	ecluster.Go(func() {
		// A trace of its own under the shard's: a slow suggestion shows
		// whether the search or Discord took the time.
		ctx, span := tracer.Start(telemetry.WithTraceparent(context.Background(), in.GetTraceparent()),
			"guild autocomplete", trace.WithAttributes(attribute.String("ensemble.guild", guild)))
		defer span.End()
		var choices []*clusterpb.Choice
		if q, err := music.ValidateQuery(typed); err == nil && q.Search && search != nil {
			// Autocomplete must answer within the deadline or not at all.
			c, cancel := context.WithTimeout(ctx, time.Second)
			c, searchSpan := tracer.Start(c, "lavalink search", trace.WithSpanKind(trace.SpanKindClient))
			loaded, err := search.Load(c, q.Identifier)
			if err != nil {
				searchSpan.RecordError(err)
				searchSpan.SetStatus(codes.Error, "failed")
			}
			searchSpan.End()
			cancel()
			if err == nil {
				for i, t := range loaded.Tracks {
					if i == 10 {
						break
					}
					name := t.Title
					if t.Author != "" {
						name = t.Author + " - " + t.Title
					}
					value := t.URI
					if value == "" {
						value = typed
					}
					choices = append(choices, &clusterpb.Choice{Name: name, Value: value})
				}
			}
		}
		c, cancel := context.WithDeadline(ctx, earliest(time.Now().Add(timeout), ackBy))
		defer cancel()
		c, answerSpan := tracer.Start(c, "discord autocomplete", trace.WithSpanKind(trace.SpanKindClient))
		defer answerSpan.End()
		span.SetAttributes(attribute.Int("ensemble.choices", len(choices)))
		if err := replier.Autocomplete(c, in.GetId(), in.GetToken(), choices); err != nil {
			answerSpan.RecordError(err)
			answerSpan.SetStatus(codes.Error, "failed")
			log.WarnContext(c, "autocomplete", "err", err, "guild", guild)
		}
	})
}

// recoverPanic, deferred by every handler, stops the activation on a
// panic; settings reload on the next activation.
func (g *Grain) recoverPanic(err *error) {
	if r := recover(); r != nil {
		ecluster.GrainPanicked(g.ctx, g.logger(), "guild "+g.guildID(), r, err)
	}
}

func (d *Deps) tracer() trace.Tracer {
	if d.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return d.Tracer
}
