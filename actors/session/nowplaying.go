package session

import (
	"context"
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
	if next, ok := st.queue.Peek(); ok {
		v.Next = &next
	}
	return v
}

// flushNowPlaying posts or edits the now-playing message, off the
// mailbox (a slow or rate-limited Discord delays only the message). One
// post or edit is in flight at a time; changes meanwhile are flushed when
// it ends. A message that was deleted is posted again.
func (g *Grain) flushNowPlaying() {
	if !g.npDirty || g.npInFlight {
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
	channel, message, post, msgs := st.textChannelID, st.nowPlayingID, st.current != nil, g.deps.Messages
	type result struct {
		id      string
		err     error
		created bool
	}
	g.npInFlight = true
	g.do(laneMessages, func(c context.Context) any {
		if message != "" {
			err := msgs.EditMessage(c, channel, message, reply)
			if err == nil || !errors.Is(err, commands.ErrUnknownMessage) || !post {
				return result{id: message, err: err}
			}
			// Deleted by someone: post a new one while there is music.
		}
		if !post {
			return result{}
		}
		id, err := msgs.CreateMessage(c, channel, reply)
		return result{id: id, err: err, created: true}
	}, func(res any) {
		g.npInFlight = false
		r := res.(result)
		switch {
		case r.err != nil && r.created:
			g.log.Warn("post now-playing message", "err", r.err)
		case errors.Is(r.err, commands.ErrUnknownMessage):
			if st.nowPlayingID == message {
				st.nowPlayingID = ""
			}
		case r.err != nil:
			g.log.Warn("edit now-playing message", "err", r.err)
		case r.created && st.textChannelID == channel:
			st.nowPlayingID = r.id
			g.save(nil)
		}
		g.flushNowPlaying() // what changed meanwhile
	})
}
