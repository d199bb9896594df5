package guild

import (
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// The guild answers /queue and /nowplaying from its session's view
// (clusterpb.SessionView) while a session reply renewed it within
// ViewTrust: every reply brings the session's view, and the session
// pushes each change of it for session.ViewPushFor after a reply
// (Guild.View). Most interactions are reads, and a round trip to the
// session for each was most of their answer time (BENCHMARKS.md).
//
// A read answered from the view sees what a read sent to the session
// would have: the session answers reads at once, not behind the command
// in progress, and a command's reply brings the view after it, before
// the guild answers that command. A lost push (a call that failed) is
// the one way the view can fall behind; it is trusted for ViewTrust at
// most after the last reply.

// ViewTrust is how long after a session reply the guild answers from the
// view. Shorter than session.ViewPushFor, so that the session still
// pushes every change while the guild trusts the view.
const ViewTrust = 5 * time.Second

// sessionView is the guild's copy of its session's view.
type sessionView struct {
	epoch, seq uint64
	// until ends the trust (grain clock); pushes do not move it.
	until time.Duration
	// first is the queue's first page, of queueLen tracks in all.
	first    []music.Track
	queueLen int
	current  *music.Track
	// position was the position at at (grain clock).
	position, at time.Duration
	paused       bool
	volume       int32
	modes        music.PlaybackModes
}

// viewTrusted reports whether reads are answered from the view.
func (g *Grain) viewTrusted() bool { return g.view != nil && g.now() < g.view.until }

// takeView applies v if it is newer than the view the guild has; a
// reply's view (renew) renews the trust.
func (g *Grain) takeView(v *clusterpb.SessionView, renew bool) {
	if v == nil || v.GetGuildId() != g.guildID() {
		return
	}
	now, cur := g.now(), g.view
	if cur != nil && (v.GetEpoch() < cur.epoch || v.GetEpoch() == cur.epoch && v.GetSeq() <= cur.seq) {
		// Older than the one the guild has, or that one again.
		if renew && v.GetEpoch() == cur.epoch && v.GetSeq() == cur.seq {
			cur.until = now + ViewTrust
		}
		return
	}
	if v.GetSame() {
		return // "yours is current", but the guild has another one by now
	}
	nv := &sessionView{
		epoch: v.GetEpoch(), seq: v.GetSeq(),
		position: time.Duration(v.GetPositionMs()) * time.Millisecond, at: now,
		paused: v.GetPaused(), volume: v.GetVolume(),
	}
	if cur != nil {
		nv.until = cur.until
	}
	if renew {
		nv.until = now + ViewTrust
	}
	if c := v.GetCurrent(); c != nil {
		t := commands.TrackFromPB(c)
		nv.current = &t
	}
	if n := len(v.GetQueue()); n > 0 {
		nv.first = make([]music.Track, 0, n)
		for _, t := range v.GetQueue() {
			nv.first = append(nv.first, commands.TrackFromPB(t))
		}
		nv.queueLen = max(int(v.GetQueueLen()), n)
	}
	loop, err := music.ParseLoopMode(v.GetLoop())
	if err != nil {
		loop = music.LoopOff
	}
	nv.modes = music.PlaybackModes{Loop: loop, Autoplay: v.GetAutoplay() && loop == music.LoopOff}
	g.view = nv
}

// View takes a change of the session's view that no reply brought.
func (g *Grain) View(v *clusterpb.SessionView, _ cluster.GrainContext) (_ *clusterpb.Ack, err error) {
	defer g.recoverPanic(&err)
	g.takeView(v, false)
	return &clusterpb.Ack{}, nil
}

// viewReply answers a commands.IdleAnswer command from the view, as the
// session does; ok is false for what the view cannot answer (a /queue
// page after the first), which goes to the session.
func (g *Grain) viewReply(name commands.Name, opts []*clusterpb.Option) (_ *clusterpb.Reply, ok bool) {
	v := g.view
	switch name {
	case commands.CmdQueue:
		n, err := commands.ParseQueuePage(opts)
		switch {
		case err != nil:
			return commands.Error(err.Error()), true
		case n != 1:
			return nil, false
		}
		return commands.QueuePage(music.QueuePage{
			Tracks: v.first, First: 1, Number: 1,
			Pages: max((v.queueLen+commands.QueuePageSize-1)/commands.QueuePageSize, 1), Total: v.queueLen,
		}, v.current), true
	case commands.CmdNowPlaying:
		if v.current == nil {
			return commands.NothingPlaying(), true
		}
		pos := v.position
		if !v.paused {
			pos += g.now() - v.at
		}
		np := commands.NowPlayingView{
			Guild:    g.guildID(),
			Track:    *v.current,
			Position: v.current.Clamp(pos),
			Paused:   v.paused,
			Volume:   music.Volume(v.volume),
			Loop:     v.modes.Loop,
			Autoplay: v.modes.Autoplay,
			QueueLen: v.queueLen,
		}
		if len(v.first) > 0 {
			np.Next = &v.first[0]
		}
		r := commands.NowPlaying(np)
		r.Ephemeral = true
		return r, true
	}
	return nil, false
}
