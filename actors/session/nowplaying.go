package session

import (
	"errors"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// markNowPlaying schedules one edit of the now-playing message: changes
// within NowPlayingDelay are coalesced into it, and nothing is edited on a
// timer when nothing changed.
func (g *Grain) markNowPlaying() {
	g.npDirty = true
	if !g.npScheduled {
		g.npScheduled = true
		g.after(g.deps.NowPlayingDelay, flushNowPlaying{})
	}
}

func (g *Grain) view() commands.NowPlayingView {
	st := g.st
	v := commands.NowPlayingView{
		Guild:    g.guildID,
		Track:    *st.current,
		Position: st.positionNow(g.deps.Now()),
		Paused:   st.paused,
		Volume:   music.Volume(st.volume),
		Loop:     st.modes.Loop,
		Autoplay: st.modes.Autoplay,
		QueueLen: st.queue.Len(),
	}
	if ts := st.queue.Tracks(); len(ts) > 0 {
		v.Next = &ts[0]
	}
	return v
}

// flushNowPlaying posts or edits the now-playing message. A message that
// was deleted is posted again.
func (g *Grain) flushNowPlaying() {
	if !g.npDirty {
		return
	}
	g.npDirty = false
	st := g.st
	if st.textChannelID == "" {
		return
	}
	reply := commands.Info("Nothing is playing. Use /play to queue music.")
	if st.current != nil {
		reply = commands.NowPlaying(g.view())
	}
	reply.Ephemeral = false
	c, cancel := g.callCtx()
	defer cancel()
	if st.nowPlayingID != "" {
		err := g.deps.Messages.EditMessage(c, st.textChannelID, st.nowPlayingID, reply)
		if err == nil {
			return
		}
		if !errors.Is(err, commands.ErrUnknownMessage) {
			g.log.Warn("edit now-playing message", "err", err)
			return
		}
		// Deleted by someone: post a new one when there is music.
		st.nowPlayingID = ""
	}
	if st.current == nil {
		return
	}
	id, err := g.deps.Messages.CreateMessage(c, st.textChannelID, reply)
	if err != nil {
		g.log.Warn("post now-playing message", "err", err)
		return
	}
	st.nowPlayingID = id
	g.save()
}
