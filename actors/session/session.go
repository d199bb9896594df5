package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// Kind is the cluster kind name of session grains.
const Kind = "Session"

// NewKind returns the session kind. The generated kind keeps its factory in
// a package variable, so one process serves one set of Deps.
func NewKind(deps Deps) *cluster.Kind {
	deps.defaults()
	d := &deps
	// Timeout 0: the grain manages its own idleness (it must stay active
	// while playing, however quiet the player is).
	return clusterpb.NewSessionKind(func() clusterpb.Session { return &Grain{deps: d} }, 0)
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
	voice      Voice
	// textChannelID is where the now-playing message lives.
	textChannelID string
	nowPlayingID  string
	node          string
	recent        []string
}

// Grain is one activation of session/<guildID>.
type Grain struct {
	deps    *Deps
	ctx     cluster.GrainContext
	guildID string
	log     *slog.Logger
	epoch   uint64
	st      *state
	// failed is set when activation could not reach the store: the grain
	// answers with the error and stops, so the next call retries.
	failed error
	// fenced is set once a newer activation refused our write.
	fenced bool
	// sentVoice is the voice last given to Lavalink, to notice changes.
	sentVoice Voice
	// playerLive reports that the player has the current track.
	playerLive bool
	// unsaved is set when a write failed for a reason other than fencing
	// (store down): a retry is scheduled and state stays in memory.
	unsaved       bool
	npDirty       bool
	npScheduled   bool
	idleGen       int
	lastAutoplay  time.Time
	retryInFlight bool
	// playRetry is the current backoff of a failed play; retryArmed says
	// a retry is scheduled.
	playRetry  time.Duration
	retryArmed bool
	// fresh is set for a session with no stored snapshot: its first
	// command applies the guild's default volume.
	fresh bool
	// replies caches recent answers by request ID, so a request delivered
	// twice runs once.
	replies replyCache
	// voiceGen identifies the latest join request, for its deadline.
	voiceGen int
	// endGen identifies the latest track-end deadline.
	endGen int
	// playID names the current play of the current track (see about);
	// playSeq numbers the plays of this activation.
	playID  string
	playSeq uint64
	// lastPlayed is the track autoplay relates its pick to;
	// autoplayPending says a pick waits for the autoplay cooldown, and
	// autoplayArmed that its timer runs.
	lastPlayed      *music.Track
	autoplayPending bool
	autoplayArmed   bool
}

// Self-messages, delivered through ReceiveDefault.
type (
	flushNowPlaying struct{}
	idleLeave       struct{ gen int }
	retrySave       struct{}
	retryPlay       struct{}
	voiceDeadline   struct{ gen int }
	trackOverdue    struct{ gen int }
	autoplayDue     struct{}
)

// Init restores the session from the store.
func (g *Grain) Init(ctx cluster.GrainContext) {
	g.ctx = ctx
	g.guildID = ctx.Identity()
	g.log = g.deps.Log.With("guild", g.guildID)
	c, cancel := g.callCtx()
	defer cancel()
	epoch, err := g.deps.Store.Activate(c, g.guildID)
	if err != nil {
		g.fail(fmt.Errorf("activate: %w", err))
		return
	}
	g.epoch = epoch
	data, err := g.deps.Store.LoadSession(c, g.guildID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		q, _ := music.NewQueue(g.deps.QueueMax)
		g.st = &state{queue: q, volume: int(music.DefaultVolume)}
		g.fresh = true
		g.updateIdle()
		return
	case err != nil:
		g.fail(fmt.Errorf("load: %w", err))
		return
	}
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
	g.log.Info("session restored", "epoch", epoch, "queue", st.queue.Len(), "playing", st.current != nil)
	if st.current != nil {
		// Resume where the track would be now: the saved position plus
		// the time since it was saved, unless paused.
		st.position = st.positionNow(g.deps.Now())
		st.positionAt = g.deps.Now()
		g.resumePlayer()
	}
	// Claim the epoch in the store at once: an older activation still
	// running is fenced off from its next write.
	g.save()
	g.updateIdle()
}

func (g *Grain) fail(err error) {
	g.failed = err
	g.log.Error("session activation failed", "err", err)
	g.ctx.Poison(g.ctx.Self())
}

// Terminate retries a write that failed while the store was down.
func (g *Grain) Terminate(cluster.GrainContext) {
	if g.st != nil && !g.fenced && g.failed == nil && g.unsaved {
		g.save()
	}
}

// ReceiveDefault handles the grain's own timers.
func (g *Grain) ReceiveDefault(ctx cluster.GrainContext) {
	defer g.recoverPanic(nil)
	if g.st == nil || g.fenced {
		return
	}
	switch msg := ctx.Message().(type) {
	case flushNowPlaying:
		g.npScheduled = false
		g.flushNowPlaying()
	case idleLeave:
		if msg.gen == g.idleGen && g.st.current == nil {
			g.log.Info("leaving voice after idle timeout")
			g.leave()
			if g.save() {
				g.ctx.Poison(g.ctx.Self())
			}
		}
	case retrySave:
		g.retryInFlight = false
		if g.unsaved {
			g.save()
		}
	case retryPlay:
		g.retryArmed = false
		if g.st.current != nil && !g.playerLive {
			if g.resumePlayer() == nil {
				g.save()
			}
		}
	case autoplayDue:
		g.autoplayArmed = false
		st := g.st
		if !g.autoplayPending || st.current != nil || !st.modes.Autoplay {
			return // a track, a /stop or autoplay off came first
		}
		g.autoplayPending = false
		if t, ok := g.autoplayPick(); ok {
			_ = g.startTrack(t)
			g.save()
			g.updateIdle()
		}
	case trackOverdue:
		if msg.gen != g.endGen {
			return
		}
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
		g.save()
		g.updateIdle()
	case voiceDeadline:
		if msg.gen == g.voiceGen && !g.st.voice.Complete() && g.st.voice.ChannelID != "" {
			g.log.Warn("voice connection never completed; giving up", "channel", g.st.voice.ChannelID)
			channel := g.st.voice.ChannelID
			g.disconnected()
			g.save()
			g.updateIdle()
			if g.st.textChannelID != "" {
				c, cancel := g.callCtx()
				defer cancel()
				_, err := g.deps.Messages.CreateMessage(c, g.st.textChannelID, commands.Info(fmt.Sprintf(
					"I couldn't connect to <#%s>. Check that I may view, connect and speak there, then use /play again; your queue is kept.", channel)))
				if err != nil {
					g.log.Warn("tell the channel about the failed voice connection", "err", err)
				}
			}
		}
	}
}

// refusal is the reply when the grain cannot serve at all.
func (g *Grain) refusal() *clusterpb.SessionReply {
	switch {
	case g.fenced:
		return errorReply("This session just moved to another node; please try again.")
	case g.failed != nil:
		return errorReply("The music session could not start (storage unavailable); please try again in a moment.")
	}
	return nil
}

func (g *Grain) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.deps.CallTimeout)
}

// empty reports a session with nothing worth storing.
func (s *state) empty() bool {
	return s.current == nil && s.queue.Len() == 0 && s.voice.ChannelID == ""
}

// save writes the snapshot. It reports whether the change is stored; a
// fenced write stops the grain. An empty session deletes its snapshot, so
// guilds that left do not pile up in the store (and are not woken at
// every start).
func (g *Grain) save() bool {
	if g.st.empty() {
		return g.write(func(c context.Context) error { return g.deps.Store.DeleteSession(c, g.guildID, g.epoch) })
	}
	data, err := proto.Marshal(g.st.snapshot(g.guildID, g.epoch))
	if err != nil {
		g.log.Error("encode snapshot", "err", err)
		return false
	}
	return g.write(func(c context.Context) error { return g.deps.Store.SaveSession(c, g.guildID, g.epoch, data) })
}

// write runs one fenced write.
func (g *Grain) write(op func(context.Context) error) bool {
	c, cancel := g.callCtx()
	defer cancel()
	err := op(c)
	switch {
	case err == nil:
		g.unsaved = false
		return true
	case errors.Is(err, store.ErrFenced):
		g.fenced = true
		g.log.Warn("a newer activation owns this session; stopping", "epoch", g.epoch)
		g.ctx.Poison(g.ctx.Self())
		return false
	default:
		// Keep serving from memory and retry in order (DESIGN.md §6).
		g.unsaved = true
		g.log.Warn("session not saved; will retry", "err", err)
		if !g.retryInFlight {
			g.retryInFlight = true
			g.after(time.Second, retrySave{})
		}
		return false
	}
}

// after delivers msg to this grain after d.
func (g *Grain) after(d time.Duration, msg any) {
	self, root := g.ctx.Self(), g.ctx.ActorSystem().Root
	g.deps.AfterFunc(d, func() { root.Send(self, msg) })
}

// armTrackEnd sets a deadline past the current track's end: if
// Lavalink's TrackEnd is lost (events are delivered once), the session
// still moves on.
func (g *Grain) armTrackEnd() {
	g.endGen++
	st := g.st
	if st.current == nil || st.paused || !g.playerLive || st.current.IsStream || st.current.Length <= 0 {
		return
	}
	left := max(st.current.Length-st.positionNow(g.deps.Now()), 0)
	g.after(left+g.deps.TrackEndGrace, trackOverdue{gen: g.endGen})
}

// updateIdle passivates a session with nothing to do, and arms the idle
// leave when the bot sits in voice with nothing to play. It runs after
// every change, so it also re-arms the track-end deadline.
func (g *Grain) updateIdle() {
	g.armTrackEnd()
	switch {
	case g.st.current != nil:
		g.ctx.CancelReceiveTimeout()
	case g.st.voice.ChannelID != "":
		g.ctx.CancelReceiveTimeout()
		g.idleGen++
		g.after(g.deps.IdleTimeout, idleLeave{gen: g.idleGen})
	default:
		g.ctx.SetReceiveTimeout(g.deps.IdleTimeout)
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
	if !s.current.IsStream && s.current.Length > 0 && p > s.current.Length {
		p = s.current.Length
	}
	return max(p, 0)
}

var _ actor.Actor = (*clusterpb.SessionActor)(nil)

// Wake does nothing but activate: Init has restored the session and
// resumed its player by the time it runs.
func (g *Grain) Wake(*clusterpb.Ack, cluster.GrainContext) (_ *clusterpb.Ack, err error) {
	defer g.recoverPanic(&err)
	if g.failed != nil {
		return nil, g.failed
	}
	return &clusterpb.Ack{}, nil
}

// recoverPanic, deferred by every handler, stops the activation on a
// panic; until it stops, everything is refused.
func (g *Grain) recoverPanic(err *error) {
	if r := recover(); r != nil {
		g.fenced = true
		ecluster.GrainPanicked(g.ctx, g.log, "session "+g.guildID, r, err)
	}
}
