package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// playResult is the outcome of an Audio.Play.
type playResult struct {
	holder audio.Holder
	err    error
}

// resumePlayer gives Lavalink the current track at the current position,
// with voice, volume and pause state in one update. Without complete voice
// facts it waits: voice calls it again when they arrive. While the
// previous activation's player is being taken over it waits too (the
// takeover's result calls it), and a takeover still to do comes first.
func (g *Grain) resumePlayer() {
	st := g.st
	if st.current == nil || !st.voice.Complete() || g.takingOver {
		return
	}
	if g.takeover != nil && !g.playPending {
		g.takeOver()
		return
	}
	g.startPlay()
}

// startPlay sends the play resumePlayer decided on.
func (g *Grain) startPlay() {
	st := g.st
	now := g.deps.Now()
	st.position, st.positionAt = st.positionNow(now), now
	// Every play gets a new ID: Lavalink replaces the track even when it
	// is the same one, and events of the replaced play must not count.
	// The epoch keeps IDs of different activations apart.
	g.playSeq++
	g.playID = fmt.Sprintf("%d.%d", g.epoch, g.playSeq)
	g.playPending, g.sentVoice = true, st.voice
	req := audio.PlayRequest{Track: *st.current, Position: st.position, Volume: st.volume, Paused: st.paused, Voice: st.voice, PlayID: g.playID}
	id, a, guild := g.playID, g.deps.Audio, g.guildID
	if !g.trace.IsValid() {
		// Voice arrived after the command that started the track: its
		// play is still that command's.
		g.trace = g.trackTrace
	}
	g.trackTrace = trace.SpanContext{}
	g.do(laneAudio, func(c context.Context) any {
		h, err := a.Play(c, guild, req)
		return playResult{holder: h, err: err}
	}, func(res any) { g.played(id, res.(playResult)) })
}

// takeoverResult is the outcome of an Audio.TakeOver; at is when it
// returned, for a state that carries no time.
type takeoverResult struct {
	state audio.PlayerState
	ok    bool
	err   error
	at    time.Time
}

// takeOver takes over g.takeover, the player a previous activation
// created, on the audio lane: every play waits for it (takingOver), so
// none can start at the stored estimate, nor beside the old player.
func (g *Grain) takeOver() {
	from, member := *g.takeover, g.st.member
	g.takingOver = true
	track, at := g.st.current, g.st.positionAt
	a, guild, now := g.deps.Audio, g.guildID, g.deps.Now
	g.do(laneAudio, func(c context.Context) any {
		st, ok, err := a.TakeOver(c, guild, from)
		return takeoverResult{state: st, ok: ok, err: err, at: now()}
	}, func(res any) { g.tookOver(from, member, track, at, res.(takeoverResult)) })
}

// maxTakeoverWaits bounds the play retries spent on a takeover that fails
// (about 1 + 2 + 4 s): a node gone for good (removed from the
// configuration, down) or refusing must not keep the music off.
const maxTakeoverWaits = 3

// tookOver applies a takeover's outcome, then plays. The old player's
// position replaces the estimate only if it played the current track and
// nothing moved the track meanwhile (a skip, a seek, a pause: track is the
// current track and at its position's time when the takeover started). A
// failed takeover is tried again, with the play retries' backoff, up to
// maxTakeoverWaits times before anything plays (a member whose Lavalink
// client is still connecting, or a read that timed out, must not leave
// the old player playing beside the new one); then it falls back to the
// estimate, and one that failed for want of the node is tried again
// before the next play if this one fails too.
func (g *Grain) tookOver(from audio.Holder, member string, track *music.Track, at time.Time, r takeoverResult) {
	g.takingOver = false
	if g.fenced || g.stopped {
		return
	}
	st := g.st
	log := g.log.With("node", from.Node, "lavalink_session", from.Session, "member", member)
	noNode := errors.Is(r.err, audio.ErrNoNode) && !r.ok
	switch {
	case r.err != nil && g.takeoverWaits < maxTakeoverWaits:
		// The node is not reachable from here yet (this member's Lavalink
		// client still connecting, say), or the read or the destroy
		// failed (a timeout, a 5xx): a play now could start beside the
		// old player, so try again a little later, with the play
		// retries' backoff.
		g.takeoverWaits++
		if noNode {
			log.Warn("cannot reach the previous player's node yet; waiting for it before playing", "err", r.err, "attempt", g.takeoverWaits)
		} else {
			log.Warn("taking over the previous player failed; trying again before playing", "err", r.err, "read", r.ok, "attempt", g.takeoverWaits)
		}
		g.schedulePlayRetry()
		return
	case noNode:
		log.Warn("cannot take over the previous player; playing at the stored position, and trying again before a retry", "err", r.err)
	case r.err != nil:
		g.takeover = nil
		log.Warn("taking over the previous player failed; playing at the stored position", "err", r.err, "read", r.ok)
	default:
		g.takeover = nil
		if !r.ok {
			log.Info("no previous player to take over")
		}
	}
	if r.ok {
		cur := st.current
		if cur != nil && cur == track && st.positionAt.Equal(at) && r.state.Identifier == cur.Identifier {
			stamp := r.state.At
			if stamp.IsZero() {
				stamp = r.at
			}
			log.Info("took over the previous player", "track", cur.Identifier, "position", r.state.Position,
				"estimate", st.positionNow(stamp))
			st.position, st.positionAt = r.state.Position, stamp
		} else {
			log.Info("took over the previous player; its position does not apply", "its_track", r.state.Identifier)
		}
	}
	if st.current == nil || !st.voice.Complete() {
		return
	}
	g.startPlay() // not resumePlayer: a takeover kept for later waits for a retry
}

// played applies the outcome of the play id. A newer play decides by its
// own outcome.
func (g *Grain) played(id string, r playResult) {
	if id != g.playID || g.st.current == nil {
		return
	}
	g.playPending = false
	if r.err != nil {
		// Nothing plays, so the position must not advance.
		g.playerLive, g.st.positionAt = false, time.Time{}
		g.log.Warn("play failed; will retry", "err", r.err)
		g.schedulePlayRetry()
		return
	}
	g.playerLive, g.playFailures = true, 0
	// The player plays: any earlier one is this play's to replace, or out
	// of reach.
	g.takeover = nil
	if !g.takingOverSince.IsZero() {
		g.deps.Metrics.tookOver(g.deps.Now().Sub(g.takingOverSince))
		g.takingOverSince = time.Time{}
	}
	if member := g.sys.ID; g.st.holder != r.holder || g.st.member != member {
		g.st.holder, g.st.member = r.holder, member
		g.save(nil)
	}
	g.armTrackEnd()
}

// playRetryBackoff spaces the retries of a failed play. The jitter keeps
// the sessions a lost node left without a player from retrying in step.
var playRetryBackoff = supervisor.Backoff{Base: time.Second, Max: 15 * time.Second, Jitter: 0.5}

// schedulePlayRetry retries a failed play with backoff for as long as
// there is a track to play, so playback starts by itself when an audio
// node (re)appears.
func (g *Grain) schedulePlayRetry() {
	if g.retryArmed {
		return
	}
	d, _ := playRetryBackoff.Delay(g.playFailures, rand.Float64())
	g.playFailures++
	g.retryArmed = true
	g.after(d, retryPlay{})
}

// startTrack makes t the current track from the start.
func (g *Grain) startTrack(t music.Track) {
	g.autoplayPending = false
	st := g.st
	st.current = &t
	g.trackTrace = g.trace
	g.deps.Metrics.started(t.SourceName, st.queue.Len())
	// The clock starts when a player takes the track, not before: voice
	// may still be connecting.
	st.position, st.positionAt, st.paused = 0, time.Time{}, false
	st.recent = append(st.recent, t.Identifier)
	if over := len(st.recent) - g.deps.RecentLimit; over > 0 {
		st.recent = slices.Delete(st.recent, 0, over)
	}
	g.playerLive = false
	g.markNowPlaying()
	g.resumePlayer()
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

// moveTo plays next, or stops when there is nothing, and then autoplays
// if the track that ended calls for it.
func (g *Grain) moveTo(next music.Track, ok bool) {
	ended := g.st.current
	g.autoplayPending = false
	if ended != nil {
		g.lastPlayed = ended
	}
	if ok {
		g.startTrack(next)
		return
	}
	g.stopPlayer()
	// Autoplay follows a track that ended, never a /stop.
	if ended != nil && g.st.modes.Autoplay {
		g.autoplayPending = true
		g.autoplay()
	}
}

// stopPlayer ends the current track and keeps the player (and voice).
func (g *Grain) stopPlayer() {
	g.st.current = nil
	g.st.position = 0
	g.playerLive, g.playPending, g.playID = false, false, ""
	a, guild, log := g.deps.Audio, g.guildID, g.log
	g.do(laneAudio, func(c context.Context) any { return a.Stop(c, guild) }, func(res any) {
		if err, _ := res.(error); err != nil {
			log.Warn("stop player", "err", err)
		}
	})
	g.markNowPlaying()
}

// autoplay picks a track related to the last one played that is not among
// the recent ones. Picks are at least AutoplayCooldown apart, so a run of
// failing tracks cannot turn into a loop of searches; a pick due sooner
// is made when the cooldown ends (autoplayDue), not dropped: short tracks
// must not stop the music. The search runs off the mailbox; a track or a
// /stop that comes first cancels the pick (autoplayPending).
func (g *Grain) autoplay() {
	last := g.lastPlayed
	if last == nil {
		g.autoplayPending = false
		return
	}
	now := g.deps.Now()
	if wait := g.deps.AutoplayCooldown - now.Sub(g.lastAutoplay); wait > 0 {
		if !g.autoplayArmed {
			g.autoplayArmed = true
			g.after(wait, autoplayDue{})
		}
		return
	}
	g.lastAutoplay = now
	a, query, log := g.deps.Audio, "ytsearch:"+last.Author+" "+last.Title, g.log
	g.do(laneSearch, func(c context.Context) any {
		loaded, err := a.Load(c, query)
		if err != nil {
			log.Warn("autoplay search", "err", err)
			return nil
		}
		return loaded.Tracks
	}, func(res any) {
		tracks, _ := res.([]music.Track)
		if !g.autoplayPending || g.st.current != nil || !g.st.modes.Autoplay {
			return
		}
		g.autoplayPending = false
		for _, t := range tracks {
			if t.Identifier == last.Identifier || slices.Contains(g.st.recent, t.Identifier) {
				continue
			}
			t.RequesterID = ""
			g.startTrack(t)
			g.save(nil)
			break
		}
		g.updateIdle()
	})
}

// voice records the bot's own voice facts and (re)connects the player once
// they are complete. Keeping the facts here, and sending them to Lavalink
// in one update, avoids disgolink's ordering hazard.
func (g *Grain) voice(ev *clusterpb.VoiceEvent) {
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
	live := g.playerLive || g.playPending
	if st.current != nil && st.voice.Complete() && (!live || g.sentVoice != st.voice) {
		g.resumePlayer()
	}
	g.save(nil)
	g.updateIdle()
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
	st.current, st.voice, g.sentVoice = nil, audio.Voice{}, audio.Voice{}
	g.playerLive, g.playPending, g.playID = false, false, ""
	g.destroyPlayer()
	g.markNowPlaying()
}

func (g *Grain) destroyPlayer() {
	a, guild, log := g.deps.Audio, g.guildID, g.log
	g.do(laneAudio, func(c context.Context) any { return a.Destroy(c, guild) }, func(res any) {
		if err, _ := res.(error); err != nil {
			log.Warn("destroy player", "err", err)
		}
	})
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

// player handles a Lavalink event of this guild's player.
func (g *Grain) player(ev *clusterpb.PlayerEvent) {
	st := g.st
	if st.current == nil || !g.about(ev) {
		return
	}
	switch ev.GetKind() {
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE:
		// An update from another node, or sent before our last seek, skip
		// or move, describes a position we already replaced.
		at := unixMs(ev.GetTimeUnixMs())
		stale := ev.GetTimeUnixMs() <= 0 || st.positionAt.IsZero() || at.Before(st.positionAt) ||
			(ev.GetNode() != "" && st.holder.Node != "" && ev.GetNode() != st.holder.Node)
		if !stale && !st.paused {
			st.position, st.positionAt = msDuration(ev.GetPositionMs()), at
		}
		return
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START:
		g.playerLive = true
		return
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_NODE_LOST:
		// Move: the same track, at the position it has reached, with
		// volume, pause state and voice, on whatever node Audio picks.
		if ev.GetNode() != "" && ev.GetNode() != st.holder.Node {
			return // an old node; we moved already
		}
		g.playerLive = false
		g.resumePlayer()
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
			return
		}
	case clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK:
		// The TrackEnd that follows an exception is about this play, and
		// the skip makes it stale: the next track has another play ID.
		g.log.Warn("track failed; skipping", "kind", ev.GetKind(), "track", st.current.Identifier, "message", ev.GetMessage())
		g.skipFailed()
	default:
		return
	}
	g.save(nil)
	g.updateIdle()
}

// leave stops, destroys the player and leaves voice; the caller's save then
// deletes the (now empty) snapshot, under the fencing rule.
func (g *Grain) leave() {
	g.autoplayPending = false
	st := g.st
	st.queue.Clear()
	st.current = nil
	g.playerLive, g.playPending, g.playID = false, false, ""
	g.destroyPlayer()
	if st.voice.ChannelID != "" {
		gw, guild, log := g.deps.Gateway, g.guildID, g.log
		g.do(laneGateway, func(c context.Context) any { return gw.UpdateVoice(c, guild, "") }, func(res any) {
			if err, _ := res.(error); err != nil {
				log.Warn("leave voice", "err", err)
			}
		})
	}
	st.voice, g.sentVoice = audio.Voice{}, audio.Voice{}
	// At once: an idle leave stops the grain right after.
	g.npDirty = true
	g.flushNowPlaying()
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

func unixMs(ms int64) time.Time { return time.UnixMilli(ms) }
