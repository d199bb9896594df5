package session

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// resumePlayer gives Lavalink the current track at the current position,
// with voice, volume and pause state in one update. Without complete voice
// facts it waits: Voice calls it again when they arrive.
func (g *Grain) resumePlayer() error {
	st := g.st
	if st.current == nil || !st.voice.Complete() {
		return nil
	}
	now := g.deps.Now()
	st.position, st.positionAt = st.positionNow(now), now
	// Every play gets a new ID: Lavalink replaces the track even when it
	// is the same one, and events of the replaced play must not count.
	// The epoch keeps IDs of different activations apart.
	g.playSeq++
	g.playID = fmt.Sprintf("%d.%d", g.epoch, g.playSeq)
	c, cancel := g.callCtx()
	defer cancel()
	node, err := g.deps.Audio.Play(c, g.guildID, PlayRequest{
		Track: *st.current, Position: st.position, Volume: st.volume, Paused: st.paused, Voice: st.voice, PlayID: g.playID,
	})
	if err != nil {
		// Nothing plays, so the position must not advance.
		g.playerLive, st.positionAt = false, time.Time{}
		g.log.Warn("play failed; will retry", "err", err, "in", g.playRetry)
		g.schedulePlayRetry()
		return err
	}
	g.playerLive, g.sentVoice, st.node = true, st.voice, node
	g.playRetry = 0
	return nil
}

// schedulePlayRetry retries a failed play with backoff (1 s doubling to
// 15 s) for as long as there is a track to play, so playback starts by
// itself when an audio node (re)appears.
func (g *Grain) schedulePlayRetry() {
	if g.retryArmed {
		return
	}
	g.playRetry = min(max(g.playRetry*2, time.Second), 15*time.Second)
	g.retryArmed = true
	g.after(g.playRetry, retryPlay{})
}

// startTrack makes t the current track from the start.
func (g *Grain) startTrack(t music.Track) error {
	g.autoplayPending = false
	st := g.st
	st.current = &t
	// The clock starts when a player takes the track, not before: voice
	// may still be connecting.
	st.position, st.positionAt, st.paused = 0, time.Time{}, false
	st.recent = append(st.recent, t.Identifier)
	if over := len(st.recent) - g.deps.RecentLimit; over > 0 {
		st.recent = slices.Delete(st.recent, 0, over)
	}
	g.playerLive = false
	g.markNowPlaying()
	return g.resumePlayer()
}

// advance moves on after the current track ended by itself, by loop mode.
func (g *Grain) advance() {
	next, ok := g.st.queue.Next(g.st.current, g.st.modes.Loop)
	g.moveTo(next, ok)
}

// skipFailed moves past a track that failed (an exception, a load failure,
// a stuck player): whatever the loop mode, the bad track is not played
// again, or a looped broken track would fail for ever.
func (g *Grain) skipFailed() {
	next, ok := g.st.queue.Next(nil, music.LoopOff)
	g.moveTo(next, ok)
}

// moveTo plays next, or autoplays, or stops when there is nothing.
func (g *Grain) moveTo(next music.Track, ok bool) {
	ended := g.st.current
	g.autoplayPending = false
	if ended != nil {
		g.lastPlayed = ended
	}
	// Autoplay follows a track that ended, never a /stop.
	if !ok && ended != nil && g.st.modes.Autoplay {
		next, ok = g.autoplayPick()
	}
	if ok {
		_ = g.startTrack(next)
		return
	}
	g.st.current = nil
	g.st.position = 0
	g.playerLive = false
	c, cancel := g.callCtx()
	defer cancel()
	if err := g.deps.Audio.Stop(c, g.guildID); err != nil {
		g.log.Warn("stop player", "err", err)
	}
	g.markNowPlaying()
}

// autoplayPick searches for a track related to the last one played that is
// not among the recent ones. Picks are at least AutoplayCooldown apart, so
// a run of failing tracks cannot turn into a loop of searches; a pick due
// sooner is made when the cooldown ends (autoplayDue), not dropped: short
// tracks must not stop the music.
func (g *Grain) autoplayPick() (music.Track, bool) {
	last := g.lastPlayed
	now := g.deps.Now()
	if last == nil {
		return music.Track{}, false
	}
	if wait := g.deps.AutoplayCooldown - now.Sub(g.lastAutoplay); wait > 0 {
		g.autoplayPending = true
		if !g.autoplayArmed {
			g.autoplayArmed = true
			g.after(wait, autoplayDue{})
		}
		return music.Track{}, false
	}
	g.lastAutoplay = now
	c, cancel := g.callCtx()
	defer cancel()
	loaded, err := g.deps.Audio.Load(c, "ytsearch:"+last.Author+" "+last.Title)
	if err != nil {
		g.log.Warn("autoplay search", "err", err)
		return music.Track{}, false
	}
	for _, t := range loaded.Tracks {
		if t.Identifier == last.Identifier || slices.Contains(g.st.recent, t.Identifier) {
			continue
		}
		t.RequesterID = ""
		return t, true
	}
	return music.Track{}, false
}

// Voice records the bot's own voice facts and (re)connects the player once
// they are complete. Keeping the facts here, and sending them to Lavalink
// in one update, avoids disgolink's ordering hazard (PITFALLS.md).
func (g *Grain) Voice(ev *clusterpb.VoiceEvent, _ cluster.GrainContext) (_ *clusterpb.Ack, err error) {
	defer g.recoverPanic(&err)
	if r := g.refusal(); r != nil {
		return nil, errors.New(r.GetReply().GetContent())
	}
	st := g.st
	switch e := ev.GetEvent().(type) {
	case *clusterpb.VoiceEvent_State:
		if e.State.GetChannelId() == "" {
			g.disconnected()
			break
		}
		st.voice.ChannelID, st.voice.SessionID = e.State.GetChannelId(), e.State.GetSessionId()
	case *clusterpb.VoiceEvent_Server:
		st.voice.Token, st.voice.Endpoint = e.Server.GetToken(), e.Server.GetEndpoint()
	}
	if st.current != nil && st.voice.Complete() && (!g.playerLive || g.sentVoice != st.voice) {
		_ = g.resumePlayer()
	}
	g.save()
	g.updateIdle()
	return &clusterpb.Ack{}, nil
}

// disconnected handles the bot leaving voice without /leave (kicked, moved
// out, channel deleted): the current track goes back to the front of the
// queue so nothing is lost.
func (g *Grain) disconnected() {
	g.autoplayPending = false
	st := g.st
	if st.current != nil {
		if err := st.queue.InsertNext(*st.current); err != nil {
			g.log.Warn("requeue current track on disconnect", "err", err)
		}
	}
	st.current, st.voice, g.sentVoice, g.playerLive = nil, Voice{}, Voice{}, false
	c, cancel := g.callCtx()
	defer cancel()
	if err := g.deps.Audio.Destroy(c, g.guildID); err != nil {
		g.log.Warn("destroy player", "err", err)
	}
	g.markNowPlaying()
}

// about reports whether ev concerns the current play. Lavalink re-encodes
// the track with its position for every event, so the encoded track never
// identifies it. The play ID the session sent as the track's userData
// does: events of a replaced play, an old node's player or an earlier
// activation's carry another. On servers that do not echo userData the
// track's identifier is the best there is (a late event from an earlier
// play of the same track then passes).
func (g *Grain) about(ev *clusterpb.PlayerEvent) bool {
	switch {
	case ev.GetPlayId() != "":
		return ev.GetPlayId() == g.playID
	case ev.GetTrackIdentifier() != "":
		return ev.GetTrackIdentifier() == g.st.current.Identifier
	}
	return true // an event that names no track: player updates, node loss
}

// Player handles a Lavalink event of this guild's player.
func (g *Grain) Player(ev *clusterpb.PlayerEvent, _ cluster.GrainContext) (_ *clusterpb.Ack, err error) {
	defer g.recoverPanic(&err)
	if g.refusal() != nil || g.st.current == nil || !g.about(ev) {
		return &clusterpb.Ack{}, nil
	}
	st := g.st
	switch ev.GetKind() {
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE:
		// An update from another node, or sent before our last seek, skip
		// or move, describes a position we already replaced.
		at := unixMs(ev.GetTimeUnixMs())
		stale := ev.GetTimeUnixMs() <= 0 || st.positionAt.IsZero() || at.Before(st.positionAt) ||
			(ev.GetNode() != "" && st.node != "" && ev.GetNode() != st.node)
		if !stale && !st.paused {
			st.position, st.positionAt = msDuration(ev.GetPositionMs()), at
		}
		return &clusterpb.Ack{}, nil
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START:
		g.playerLive = true
		return &clusterpb.Ack{}, nil
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST:
		// Move: the same track, at the position it has reached, with
		// volume, pause state and voice, on whatever node Audio picks.
		if ev.GetNode() != "" && ev.GetNode() != st.node {
			return &clusterpb.Ack{}, nil // an old node; we moved already
		}
		g.playerLive = false
		if g.resumePlayer() != nil {
			return &clusterpb.Ack{}, nil // retried with backoff
		}
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END:
		switch ev.GetEndReason() {
		case "finished":
			g.advance()
		case "loadFailed":
			// Lavalink sends the TrackException first, and the skip it
			// caused gave the next track a new play ID; a loadFailed still
			// about the current play came without one.
			g.log.Warn("track failed to load; skipping", "track", st.current.Identifier)
			g.skipFailed()
		default:
			// replaced, stopped, cleanup: we caused them.
			return &clusterpb.Ack{}, nil
		}
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK:
		// The TrackEnd that follows an exception is about this play, and
		// the skip makes it stale: the next track has another play ID.
		g.log.Warn("track failed; skipping", "kind", ev.GetKind(), "track", st.current.Identifier, "message", ev.GetMessage())
		g.skipFailed()
	default:
		return &clusterpb.Ack{}, nil
	}
	g.save()
	g.updateIdle()
	return &clusterpb.Ack{}, nil
}

// leave stops, destroys the player and leaves voice; the caller's save then
// deletes the (now empty) snapshot, under the fencing rule.
func (g *Grain) leave() {
	g.autoplayPending = false
	st := g.st
	st.queue.Clear()
	st.current, g.playerLive = nil, false
	c, cancel := g.callCtx()
	defer cancel()
	if err := g.deps.Audio.Destroy(c, g.guildID); err != nil {
		g.log.Warn("destroy player", "err", err)
	}
	if st.voice.ChannelID != "" {
		if err := g.deps.Gateway.UpdateVoice(c, g.guildID, ""); err != nil {
			g.log.Warn("leave voice", "err", err)
		}
	}
	st.voice, g.sentVoice = Voice{}, Voice{}
	g.markNowPlaying()
	g.flushNowPlaying()
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

func unixMs(ms int64) time.Time { return time.UnixMilli(ms) }
