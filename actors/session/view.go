package session

import (
	"context"
	"time"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// The session's view (clusterpb.SessionView) is what /queue (its first
// page) and /nowplaying show: a dozen tracks at most, so that the guild's
// copy stays small whatever the queue's length. It goes to the guild grain with every reply, and
// for ViewPushFor after the last reply each change of it goes there
// too (Deps.Guilds), so that the guild answers those two commands
// itself: most interactions are reads, and a call to the session for
// each was most of their answer time (BENCHMARKS.md).

// ViewPushFor is how long after a reply the session pushes the changes
// of its view. The guild trusts a view for less (guild.ViewTrust), so it
// never answers from a view whose changes are no longer pushed.
const ViewPushFor = 10 * time.Second

// viewDrift is how far the position may stray from what the last view
// said it would be before the view counts as changed: a seek, a restart,
// a stalled player. Lavalink's own position reports within it are not
// changes.
const viewDrift = time.Second

// viewKey is what a view shows, less the position, which moves by itself.
type viewKey struct {
	queue    *music.Queue
	queueRev uint64
	current  music.Track
	playing  bool
	paused   bool
	volume   int
	modes    music.PlaybackModes
}

// viewState is the session's bookkeeping of its last view.
type viewState struct {
	seq uint64
	key viewKey
	// position was the position at at.
	position time.Duration
	at       time.Time
	// pushUntil ends the pushes (ViewPushFor after the last reply).
	pushUntil time.Time
}

// Guilds takes the session's view changes to its guild grain.
type Guilds interface {
	View(ctx context.Context, v *clusterpb.SessionView) error
}

func (s *state) viewKey() viewKey {
	k := viewKey{queue: s.queue, queueRev: s.queue.Rev(), paused: s.paused, volume: s.volume, modes: s.modes}
	if s.current != nil {
		k.current, k.playing = *s.current, true
	}
	return k
}

// noteView numbers a new view if the state changed since the last one.
func (g *Grain) noteView(now time.Time) bool {
	st, vw := g.st, &g.vw
	key := st.viewKey()
	pos := st.positionNow(now)
	expected := vw.position
	if !vw.key.paused {
		expected += now.Sub(vw.at)
	}
	if vw.seq > 0 && key == vw.key && (!key.playing || (pos-expected).Abs() <= viewDrift) {
		return false
	}
	vw.seq++
	vw.key, vw.position, vw.at = key, pos, now
	return true
}

// viewPB is the current view; noteView has numbered it.
func (g *Grain) viewPB(now time.Time) *clusterpb.SessionView {
	st := g.st
	v := &clusterpb.SessionView{
		GuildId:    g.guildID,
		Epoch:      g.epoch,
		Seq:        g.vw.seq,
		Current:    commands.TrackToPB(st.current),
		PositionMs: st.positionNow(now).Milliseconds(),
		Paused:     st.paused,
		Volume:     int32(st.volume),
		Loop:       st.modes.Loop.String(),
		Autoplay:   st.modes.Autoplay,
	}
	if v.Current != nil {
		v.Current.Encoded = ""
	}
	if n := min(st.queue.Len(), commands.QueuePageSize); n > 0 {
		v.QueueLen = int32(st.queue.Len())
		v.Queue = make([]*clusterpb.SessionSnapshot_Track, 0, n)
		for t := range st.queue.All() {
			if len(v.Queue) == n {
				break
			}
			pb := commands.TrackToPB(&t)
			pb.Encoded = ""
			v.Queue = append(v.Queue, pb)
		}
	}
	return v
}

// replyView is the view to send with the reply to req, which starts (or
// extends) the time its changes are pushed; nil when the session refuses.
// A guild that has the current view already gets only its number back.
func (g *Grain) replyView(req *clusterpb.SessionRequest) *clusterpb.SessionView {
	if g.st == nil || g.refusal() != nil {
		return nil
	}
	now := g.deps.Now()
	g.noteView(now)
	g.vw.pushUntil = now.Add(ViewPushFor)
	if req.GetViewEpoch() == g.epoch && req.GetViewSeq() == g.vw.seq {
		return &clusterpb.SessionView{GuildId: g.guildID, Epoch: g.epoch, Seq: g.vw.seq, Same: true}
	}
	return g.viewPB(now)
}

// pushView sends a changed view to the guild, off the mailbox, while the
// guild may still answer from the last one. Pushes may overtake each
// other; the guild keeps the highest seq.
func (g *Grain) pushView() {
	if g.deps.Guilds == nil || g.st == nil || g.refusal() != nil {
		return
	}
	now := g.deps.Now()
	if !now.Before(g.vw.pushUntil) || !g.noteView(now) {
		return
	}
	v, guilds, timeout, log := g.viewPB(now), g.deps.Guilds, g.deps.CallTimeout, g.log
	ecluster.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := guilds.View(ctx, v); err != nil {
			// The guild stops trusting its view within guild.ViewTrust.
			log.Debug("view push failed", "err", err)
		}
	})
}
