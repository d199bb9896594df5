package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/recent"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// Kind is the cluster kind name of session grains.
const Kind = "Session"

// Method indexes of the Session service in cluster/clusterpb: the
// generated client calls them by index (frozen by clusterpb's
// TestRPCOrderIsAppendOnly).
const (
	methodExecute = 0
	methodVoice   = 1
	methodPlayer  = 2
	methodWake    = 3
)

// Bounds on what waits inside a grain: requests while the snapshot loads,
// and commands behind the one in progress. Past them users hear "busy".
const (
	maxPending  = 64
	maxCommands = 32
)

// NewKind returns the session kind. The grain is a plain actor rather
// than protoc-gen-go-grain's generated one: that one must answer a call
// before it takes the next message, and a session answers a command only
// once its effects (a search, a join, the store write) are done, which
// must not hold up its other messages (ARCHITECTURE.md: no actor waits). Callers use the
// generated client as for any grain. The grain manages its own idleness:
// it stays active while playing, however quiet the player is.
func NewKind(deps Deps) *cluster.Kind {
	deps.defaults()
	d := &deps
	var depth []actor.MailboxMiddleware
	if d.Mailbox != nil {
		depth = append(depth, d.Mailbox)
	}
	return cluster.NewKind(Kind, actor.PropsFromProducer(func() actor.Actor { return &Grain{deps: d} }, actor.WithMailbox(actor.Unbounded(depth...))))
}

// state is what a session owns and stores.
type state struct {
	queue   *music.Queue
	current *music.Track
	// position of current at positionAt; it advances while playing and
	// not paused.
	position   time.Duration
	positionAt time.Time
	paused     bool
	volume     int
	modes      music.PlaybackModes
	voice      audio.Voice
	// textChannelID is where the now-playing message lives.
	textChannelID string
	nowPlayingID  string
	// holder is the Lavalink player of the last successful play (its node
	// and Lavalink session) and member the cluster member that made it.
	holder audio.Holder
	member string
	recent []string
}

// Grain is one activation of session/<guildID>. All of it is touched
// only by the actor's goroutine; I/O runs in effects (effects.go).
type Grain struct {
	deps *Deps
	sys  *actor.ActorSystem
	self *actor.PID
	// actx is the context of the message being handled.
	actx    actor.Context
	guildID string
	log     *slog.Logger
	epoch   uint64
	st      *state
	// loading is set until the snapshot is read; requests wait in
	// pending meanwhile.
	loading bool
	pending []request
	// failed is set when activation could not reach the store: requests
	// get the error and the grain stops, so the next call retries.
	failed error
	// fenced is set once a newer activation refused our write (or a
	// panic broke this one): everything is refused until the grain stops.
	fenced  bool
	broken  bool // a panic stopped it
	stopped bool
	// cmd is the command in progress; cmds wait behind it. Commands run
	// one at a time, as a user would expect; events do not wait for
	// them.
	cmd   *command
	cmds  []*command
	lanes [laneCount]laneQueue
	sv    saver
	// sentVoice is the voice last given to Lavalink, to notice changes.
	sentVoice audio.Voice
	// playerLive reports that the player has the current track;
	// playPending that a play of it is on its way.
	playerLive  bool
	playPending bool
	// takeover is the previous activation's player (the snapshot's
	// holder), to take over before this activation's first play: read
	// where it was, and destroy it. takingOver: the takeover runs, and
	// plays wait for it (resumePlayer returns meanwhile; the takeover's
	// result calls it). A takeover that failed for want of the node stays
	// in takeover and is tried again before the next play, until a play
	// succeeds.
	takeover   *audio.Holder
	takingOver bool
	// activatedAt is when this activation started; takingOverSince is
	// activatedAt while a previous activation's player is being taken
	// over and the session has not played here yet (zero otherwise): the
	// session's failover time is counted to its first play.
	activatedAt, takingOverSince time.Time
	// takeoverWaits counts the plays held back for want of the previous
	// player's node (see maxTakeoverWaits).
	takeoverWaits int
	// playID names the current play of the current track (see about);
	// playSeq numbers the plays of this activation.
	playID  string
	playSeq uint64
	// playFailures counts the failed plays in a row (the retry backoff's
	// attempt); retryArmed says a retry is scheduled.
	playFailures int
	retryArmed   bool
	npDirty      bool
	// npScheduled: a flush is due; npInFlight: one is being sent.
	npScheduled bool
	npInFlight  bool
	// fresh is set for a session with no stored snapshot: its first
	// command applies the guild's default volume.
	fresh bool
	// replies caches recent answers by request ID, so a request delivered
	// twice runs once.
	replies recent.Set[*clusterpb.SessionReply]
	// voiceGen identifies the latest join request, for its deadline.
	voiceGen int
	// endTimer is the lost-TrackEnd deadline and idleTimer the idle
	// leave: kept and reset, not started anew on every change.
	endTimer  *time.Timer
	idleTimer *time.Timer
	idleArmed bool
	idleAt    time.Time // when the bot began sitting idle in voice
	// lastPlayed is the track autoplay relates its pick to;
	// autoplayPending says a pick is wanted (waiting for the cooldown or
	// the search), autoplayArmed that the cooldown's timer runs.
	lastPlayed      *music.Track
	lastAutoplay    time.Time
	autoplayPending bool
	autoplayArmed   bool
	// trace is the span of the command being run: the effects it starts
	// are its children. trackTrace is the span of the command that
	// started the current track, until its play is sent (voice may come
	// later, in another message).
	trace, trackTrace trace.SpanContext
	// vw is the last view sent to the guild (view.go).
	vw viewState
}

// request is a grain call waiting for its answer: sender is the caller's
// future, answered with a message whenever the answer is ready.
type request struct {
	sender *actor.PID
	method int32
	data   []byte
}

// command is an Execute in progress or waiting. A retried delivery of the
// same request joins it (senders) instead of running twice.
type command struct {
	req     *clusterpb.SessionRequest
	senders []*actor.PID
}

// Self-messages (never leave the member, so they need not be protobuf).
type (
	flushNowPlaying struct{}
	idleLeave       struct{}
	retrySave       struct{}
	retryPlay       struct{}
	voiceDeadline   struct{ gen int }
	trackOverdue    struct{}
	autoplayDue     struct{}
)

// Receive handles every message of the activation. A panic is recovered:
// protoactor would restart the actor without ClusterInit, so
// the activation answers with an error and stops, and the next call
// activates it afresh from the store.
func (g *Grain) Receive(ctx actor.Context) {
	g.actx = ctx
	// Effects are traced only as part of a traced command (run) or of
	// its continuations (effectFinished): not a track's end or a timer.
	g.trace = trace.SpanContext{}
	var sender *actor.PID
	defer func() {
		if r := recover(); r != nil {
			g.panicked(r, sender)
		}
	}()
	switch m := ctx.Message().(type) {
	case *cluster.ClusterInit:
		g.init(ctx, m)
	case *actor.ReceiveTimeout:
		ctx.Poison(ctx.Self())
	case *actor.Stopping:
		g.stopping()
	case *cluster.GrainRequest:
		sender = ctx.Sender()
		g.request(request{sender: sender, method: m.MethodIndex, data: m.MessageData})
	case effectDone:
		g.effectFinished(m)
	case stopReq:
		g.stopWhenStored()
	default:
		if g.st != nil && !g.fenced && !g.stopped {
			g.timer(m)
		}
	}
	// Whatever the message changed reaches the guild's view.
	g.pushView()
}

// init starts reading the snapshot; requests wait until it is read.
func (g *Grain) init(ctx actor.Context, m *cluster.ClusterInit) {
	g.sys, g.self = ctx.ActorSystem(), ctx.Self()
	g.deps.Metrics.activated(1)
	g.activatedAt = g.deps.Now()
	g.guildID = m.Identity.GetIdentity()
	g.log = g.deps.Log.With("guild", g.guildID)
	g.register(g.guildID)
	g.loading = true
	st, guild := g.deps.Store, g.guildID
	type loaded struct {
		epoch uint64
		data  []byte
		err   error
	}
	g.do(laneStore, func(c context.Context) any {
		epoch, err := st.Activate(c, guild)
		if err != nil {
			return loaded{err: fmt.Errorf("activate: %w", err)}
		}
		data, err := st.LoadSession(c, guild)
		return loaded{epoch: epoch, data: data, err: err}
	}, func(res any) {
		l := res.(loaded)
		g.loaded(l.epoch, l.data, l.err)
	})
}

// loaded restores the session from its snapshot, or starts a fresh one,
// then serves the requests that waited.
func (g *Grain) loaded(epoch uint64, data []byte, err error) {
	g.loading = false
	switch {
	case errors.Is(err, store.ErrNotFound):
		g.epoch = epoch
		q, _ := music.NewQueue(g.deps.QueueMax)
		g.st = &state{queue: q, volume: int(music.DefaultVolume)}
		g.fresh = true
	case err != nil:
		g.fail(fmt.Errorf("load: %w", err))
	default:
		g.epoch = epoch
		g.restore(data)
	}
	pending := g.pending
	g.pending = nil
	for _, r := range pending {
		g.request(r)
	}
	if g.st != nil && !g.stopped {
		g.updateIdle()
	}
}

func (g *Grain) restore(data []byte) {
	var snap clusterpb.SessionSnapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		g.fail(fmt.Errorf("decode snapshot: %w", err))
		return
	}
	st, err := restore(&snap, g.deps.QueueMax)
	if err != nil {
		g.fail(fmt.Errorf("restore snapshot: %w", err))
		return
	}
	g.st = st
	g.log.Info("session restored", "epoch", g.epoch, "queue", st.queue.Len(), "playing", st.current != nil)
	if st.current != nil {
		// Where the track would be now: the saved position plus the time
		// since it was saved, unless paused. A takeover of the previous
		// player replaces the estimate with where that player was.
		st.position = st.positionNow(g.deps.Now())
		st.positionAt = g.deps.Now()
	}
	if st.holder.Session != "" {
		// The previous activation's player may still play (Lavalink keeps
		// a dropped session's players until its resume timeout): take it
		// over before anything plays, whether or not a track is current
		// (an idle player still holds the voice connection).
		h := st.holder
		g.takeover = &h
		g.takingOverSince = g.activatedAt
		g.takeOver()
	}
	g.resumePlayer() // after the takeover, if one runs
	// Claim the epoch in the store at once: an older activation still
	// running is fenced off from its next write.
	g.save(nil)
}

func (g *Grain) fail(err error) {
	g.failed = err
	g.log.Error("session activation failed", "err", err)
	g.poison()
}

func (g *Grain) poison() {
	if !g.stopped {
		g.actx.Poison(g.self)
	}
}

// stopping answers whatever still waits (a stopping activation drops its
// mailbox, and callers would otherwise wait for their timeout) and makes
// a last try at a write the store refused for being down.
func (g *Grain) stopping() {
	if g.stopped {
		return
	}
	g.stopped = true
	g.unregister()
	g.deps.Metrics.activated(-1)
	for _, t := range []*time.Timer{g.endTimer, g.idleTimer} {
		if t != nil {
			t.Stop()
		}
	}
	refusal := g.refusal()
	if refusal == nil {
		refusal = errorReply("The music session was stopping; please try again.")
	}
	refusal.Active = true
	for _, r := range g.pending {
		g.answerRequest(r, refusal, g.failed)
	}
	g.pending = nil
	for _, c := range append([]*command{g.cmd}, g.cmds...) {
		if c != nil {
			g.answer(c, refusal)
		}
	}
	g.cmd, g.cmds = nil, nil
	if g.st == nil || g.fenced || g.failed != nil || !g.unsaved() {
		return
	}
	data, err := proto.Marshal(g.st.snapshot(g.guildID, g.epoch))
	if err != nil || g.st.empty() {
		return
	}
	st, guild, epoch, timeout, log := g.deps.Store, g.guildID, g.epoch, g.deps.CallTimeout, g.log
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := st.SaveSession(c, guild, epoch, data); err != nil {
			log.Warn("last write of a stopping session failed", "err", err)
		}
	}()
}

// answerRequest answers a request that is not an Execute in progress.
func (g *Grain) answerRequest(r request, refusal *clusterpb.SessionReply, err error) {
	switch {
	case r.method == methodExecute:
		g.respond(r.sender, refusal)
	case err != nil:
		g.respond(r.sender, cluster.FromError(err))
	default:
		g.respond(r.sender, cluster.FromError(errors.New(refusal.GetReply().GetContent())))
	}
}

// panicked stops an activation whose handler (or effect) panicked: the
// caller and everything waiting get an error, and the next call activates
// the session afresh from the store.
func (g *Grain) panicked(r any, sender *actor.PID) {
	g.log.Error("session "+g.guildID+" panic; stopping the activation", "panic", r, "stack", string(debug.Stack()))
	g.fenced, g.broken = true, true
	// Stop first: a caller that retries as soon as it has its answer must
	// find the poison ahead of its call, and so a fresh activation.
	g.poison()
	if sender != nil {
		g.respond(sender, cluster.FromError(fmt.Errorf("session %s: internal error", g.guildID)))
	}
	for _, c := range append([]*command{g.cmd}, g.cmds...) {
		if c != nil {
			g.answer(c, g.refusal())
		}
	}
	g.cmd, g.cmds = nil, nil
}

func (g *Grain) respond(to *actor.PID, msg proto.Message) {
	if to != nil && g.sys != nil {
		g.sys.Root.Send(to, msg)
	}
}

// request serves one grain call.
func (g *Grain) request(r request) {
	if g.loading {
		if len(g.pending) >= maxPending {
			g.answerRequest(r, &clusterpb.SessionReply{Reply: commands.Busy(), Active: true}, errBusy)
			return
		}
		g.pending = append(g.pending, r)
		return
	}
	switch r.method {
	case methodExecute:
		req := &clusterpb.SessionRequest{}
		if err := proto.Unmarshal(r.data, req); err != nil {
			g.respond(r.sender, cluster.FromError(fmt.Errorf("session: bad request: %w", err)))
			return
		}
		g.execute(r.sender, req)
	case methodVoice:
		ev := &clusterpb.VoiceEvent{}
		if err := proto.Unmarshal(r.data, ev); err != nil {
			g.respond(r.sender, cluster.FromError(fmt.Errorf("session: bad voice event: %w", err)))
			return
		}
		if refusal := g.refusal(); refusal != nil {
			g.respond(r.sender, cluster.FromError(errors.New(refusal.GetReply().GetContent())))
			return
		}
		g.voice(ev)
		g.respond(r.sender, &clusterpb.Ack{})
	case methodPlayer:
		ev := &clusterpb.PlayerEvent{}
		if err := proto.Unmarshal(r.data, ev); err != nil {
			g.respond(r.sender, cluster.FromError(fmt.Errorf("session: bad player event: %w", err)))
			return
		}
		if g.refusal() == nil {
			g.player(ev)
		}
		g.respond(r.sender, &clusterpb.Ack{})
	case methodWake:
		// Being active is all Wake asks. Requests wait for the snapshot,
		// so by now the session is fresh or restored, and a restored one
		// has started its takeover and play (a play may still wait for
		// voice facts or the takeover).
		if g.failed != nil {
			g.respond(r.sender, cluster.FromError(g.failed))
			return
		}
		g.respond(r.sender, &clusterpb.Ack{})
	default:
		g.respond(r.sender, cluster.FromError(fmt.Errorf("session: unknown method %d", r.method)))
	}
}

var errBusy = errors.New("session busy")

// timer handles the grain's own timers.
func (g *Grain) timer(msg any) {
	switch msg := msg.(type) {
	case flushNowPlaying:
		g.npScheduled = false
		g.flushNowPlaying()
	case idleLeave:
		if !g.idleArmed || g.deps.Now().Sub(g.idleAt) < g.deps.IdleTimeout {
			return // from before the timer was reset
		}
		g.idleArmed = false
		if g.st.current == nil && g.st.voice.ChannelID != "" && g.cmd == nil {
			g.log.Info("leaving voice after idle timeout")
			g.leave()
			g.save(func(stored bool) {
				if stored && g.st.empty() {
					g.poison()
				}
			})
		}
	case retrySave:
		g.sv.retryArmed = false
		g.startWrite()
	case retryPlay:
		g.retryArmed = false
		if g.st.current != nil && !g.playerLive && !g.playPending {
			g.resumePlayer()
		}
	case autoplayDue:
		g.autoplayArmed = false
		if g.autoplayPending && g.st.current == nil && g.st.modes.Autoplay {
			g.autoplay()
		}
	case trackOverdue:
		st := g.st
		if st.current == nil || st.paused || !g.playerLive {
			return
		}
		if st.positionNow(g.deps.Now()) < st.current.Length {
			g.armTrackEnd() // a player update moved the estimate
			return
		}
		g.log.Warn("no track end from Lavalink; moving on", "track", st.current.Identifier)
		g.advance()
		g.save(nil)
		g.updateIdle()
	case voiceDeadline:
		g.voiceTimedOut(msg.gen)
	}
}

// voiceTimedOut gives up on a join Discord never completed (a bot without
// the Connect permission gets no voice events); the queue is kept.
func (g *Grain) voiceTimedOut(gen int) {
	if gen != g.voiceGen || g.st.voice.Complete() || g.st.voice.ChannelID == "" {
		return
	}
	g.log.Warn("voice connection never completed; giving up", "channel", g.st.voice.ChannelID)
	channel := g.st.voice.ChannelID
	g.disconnected()
	g.save(nil)
	g.updateIdle()
	if text := g.st.textChannelID; text != "" {
		msgs, log := g.deps.Messages, g.log
		msg := commands.Info(fmt.Sprintf(
			"I couldn't connect to <#%s>. Check that I may view, connect and speak there, then use /play again; your queue is kept.", channel))
		g.do(laneMessages, func(c context.Context) any {
			_, err := msgs.CreateMessage(c, text, msg)
			return err
		}, func(res any) {
			if err, _ := res.(error); err != nil {
				log.Warn("tell the channel about the failed voice connection", "err", err)
			}
		})
	}
}

// refusal is the reply when the grain cannot serve at all.
func (g *Grain) refusal() *clusterpb.SessionReply {
	switch {
	case g.broken:
		return errorReply("Something went wrong with the music session; please try again.")
	case g.fenced:
		return errorReply("This session just moved to another node; please try again.")
	case g.failed != nil:
		return errorReply("The music session could not start (storage unavailable); please try again in a moment.")
	}
	return nil
}

// empty reports a session with nothing worth storing.
func (s *state) empty() bool {
	return s.current == nil && s.queue.Len() == 0 && s.voice.ChannelID == ""
}

// after delivers msg to this grain after d.
func (g *Grain) after(d time.Duration, msg any) *time.Timer {
	self, root := g.self, g.sys.Root
	return g.deps.AfterFunc(d, func() { root.Send(self, msg) })
}

// armTrackEnd sets a deadline past the current track's end: if
// Lavalink's TrackEnd is lost (events are delivered once), the session
// still moves on.
func (g *Grain) armTrackEnd() {
	st := g.st
	if st.current == nil || st.paused || !g.playerLive || st.current.IsStream || st.current.Length <= 0 {
		if g.endTimer != nil {
			g.endTimer.Stop()
		}
		return
	}
	d := max(st.current.Length-st.positionNow(g.deps.Now()), 0) + g.deps.TrackEndGrace
	if g.endTimer == nil {
		g.endTimer = g.after(d, trackOverdue{})
		return
	}
	g.endTimer.Reset(d)
}

// updateIdle passivates a session with nothing to do, and arms the idle
// leave when the bot sits in voice with nothing to play. It runs after
// every change, so it also re-arms the track-end deadline.
func (g *Grain) updateIdle() {
	g.armTrackEnd()
	idle := false
	switch {
	case g.st.current != nil || g.autoplayPending:
		g.actx.CancelReceiveTimeout()
	case g.st.voice.ChannelID != "":
		g.actx.CancelReceiveTimeout()
		idle = true
	default:
		g.actx.SetReceiveTimeout(g.deps.IdleTimeout)
	}
	switch {
	case !idle && g.idleArmed:
		g.idleTimer.Stop()
		g.idleArmed = false
	case idle && !g.idleArmed:
		g.idleAt = g.deps.Now()
		if g.idleTimer == nil {
			g.idleTimer = g.after(g.deps.IdleTimeout, idleLeave{})
		} else {
			g.idleTimer.Reset(g.deps.IdleTimeout)
		}
		g.idleArmed = true
	}
}

func (s *state) positionNow(now time.Time) time.Duration {
	if s.current == nil {
		return 0
	}
	p := s.position
	if !s.paused && !s.positionAt.IsZero() {
		p += now.Sub(s.positionAt)
	}
	return s.current.Clamp(p)
}
