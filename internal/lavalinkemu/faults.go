package lavalinkemu

import (
	"fmt"
	"time"
)

// DropWebsockets cuts every websocket connection without a close frame, as a
// network failure would. Each session then behaves as Lavalink does on a
// closed socket: a resumable one waits for its client, any other is destroyed
// with its players. The effect on sessions is complete when this returns.
func (e *Emulator) DropWebsockets() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log.Debug("lavalinkemu: fault: dropping websockets", "count", len(e.conns))
	n := 0
	for c := range e.conns {
		c.kill()
		e.connClosedLocked(c)
		n++
	}
	return n
}

// Hang makes the node stop answering (true) or answer again (false). While
// hung, REST requests and websocket handshakes wait without a response and
// websocket messages are held back; on release everything proceeds in order.
// A client that gives up on a request never gets its answer.
func (e *Emulator) Hang(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setHangLocked(on)
}

func (e *Emulator) setHangLocked(on bool) {
	e.log.Debug("lavalinkemu: fault: hang", "on", on)
	if e.hangStop != nil {
		e.hangStop.Stop()
		e.hangStop = nil
	}
	switch {
	case on && e.hang == nil && e.running:
		e.hang = make(chan struct{})
	case !on && e.hang != nil:
		close(e.hang)
		e.hang = nil
	}
}

// HangFor hangs the node for d of wall time.
func (e *Emulator) HangFor(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setHangLocked(true)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.hangStop == t {
			e.setHangLocked(false)
		}
	})
	e.hangStop = t
}

// FailREST answers the next n REST requests (not websocket handshakes) with
// status and a Lavalink-shaped error body, before authentication, as a
// failing node or proxy in front of it would.
func (e *Emulator) FailREST(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failN, e.failCode = n, status
	e.log.Debug("lavalinkemu: fault: failing REST", "requests", n, "status", status)
}

// SetLoad sets the synthetic load that stats report: cpu becomes systemLoad
// and lavalinkLoad (0..1), deficit the frameStats deficit.
func (e *Emulator) SetLoad(cpu float64, deficit int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cpuLoad, e.deficit = cpu, deficit
}

// playersLocked finds the players of a guild in every session.
func (e *Emulator) playersLocked(guildID uint64) []*player {
	var out []*player
	for _, id := range e.sortedSessionIDsLocked() {
		if p := e.sessions[id].players[guildID]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// FreezePlayer stalls the guild's player: its position stops advancing while
// the track stays loaded, and once lavaplayer's stuck threshold has passed
// (Config.StuckThreshold of track time) the client gets TrackStuckEvent,
// once per stall. The track does not end on its own, and the stall outlasts
// it (the next track is stalled too); UnfreezePlayer resumes.
func (e *Emulator) FreezePlayer(guildID uint64) error {
	return e.setFrozen(guildID, true)
}

// UnfreezePlayer lets a frozen player's clock run again, including one a
// StickWhenPlayed rule stalled (the rule does not trip again in that play).
func (e *Emulator) UnfreezePlayer(guildID uint64) error {
	return e.setFrozen(guildID, false)
}

func (e *Emulator) setFrozen(guildID uint64, on bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.playersLocked(guildID)
	if len(ps) == 0 {
		return fmt.Errorf("lavalinkemu: no player for guild %d", guildID)
	}
	now := time.Now()
	for _, p := range ps {
		if p.frozen == on && (on || !p.stuck) {
			continue
		}
		wasStalled := p.stalled()
		p.rebase(now)
		p.frozen = on
		if !on {
			p.stuck = false
		}
		if !wasStalled {
			p.stuckSince, p.stuckSent = now, false
		}
		p.schedule(now)
	}
	return nil
}

// CloseVoice simulates Discord closing the guild's voice websocket: the
// client gets WebSocketClosedEvent{code, reason, byRemote} and a playerUpdate,
// and the player is disconnected (its clock stops) until it gets a voice
// state again.
func (e *Emulator) CloseVoice(guildID uint64, code int, reason string, byRemote bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.playersLocked(guildID)
	if len(ps) == 0 {
		return fmt.Errorf("lavalinkemu: no player for guild %d", guildID)
	}
	now := time.Now()
	for _, p := range ps {
		p.rebase(now)
		p.connected = false
		p.idleSince = now
		p.schedule(now)
		p.emit(wsClosedEvent{Op: "event", Type: "WebSocketClosedEvent", GuildID: p.gid(), Code: code, Reason: reason, ByRemote: byRemote})
		p.s.send(e.playerUpdateMsg(p, now))
	}
	return nil
}

// FailTrack makes the guild's current track fail the way a broken source
// does: TrackExceptionEvent with the given message (severity "fault", with
// cause and causeStackTrace), then TrackEnd with "loadFailed" if no audio had
// been produced yet (position 0) or "finished" otherwise, which is how
// lavaplayer reports it.
func (e *Emulator) FailTrack(guildID uint64, message string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.playersLocked(guildID)
	failed := 0
	now := time.Now()
	for _, p := range ps {
		if p.track == nil {
			continue
		}
		failed++
		p.fail(now, message)
	}
	if failed == 0 {
		return fmt.Errorf("lavalinkemu: no playing track for guild %d", guildID)
	}
	return nil
}

// trackFault is a FailWhenPlayed or StickWhenPlayed rule.
type trackFault struct {
	atMs    int64
	stick   bool
	message string
}

// FailWhenPlayed makes every play of a track with this identifier fail when its
// position reaches atMs of track time (0: at once, before any audio):
// TrackExceptionEvent (severity "fault", with cause and causeStackTrace), then
// TrackEndEvent with reason "loadFailed" when no audio was produced (position 0)
// or "finished" otherwise — lavaplayer's sequence. Lasts until ClearTrackFaults.
//
// The identifier is the track's info.identifier (a YouTube video ID, the URL
// for SoundCloud and HTTP tracks). The position is that of the playback
// clock, so the rule follows Speed, pauses, seeks and voice connections; a
// play that starts past atMs (other than 0) or whose track ends first does
// not fail. A later FailWhenPlayed or StickWhenPlayed for the same identifier
// replaces the rule. Tracks already playing get the rule at once. Rules
// survive Restart.
func (e *Emulator) FailWhenPlayed(identifier string, atMs int64, message string) {
	e.setTrackFault(identifier, trackFault{atMs: max(atMs, 0), message: message})
}

// StickWhenPlayed makes every play of a track with this identifier freeze when
// its position reaches atMs of track time, as FreezePlayer does (position stops,
// TrackStuckEvent after Config.StuckThreshold of track time, once per stall; a
// new play of the same track — e.g. the client re-sending it — freezes again).
//
// Unlike FreezePlayer the stall ends with the track: the next track plays
// normally. Otherwise it works as FailWhenPlayed.
func (e *Emulator) StickWhenPlayed(identifier string, atMs int64) {
	e.setTrackFault(identifier, trackFault{atMs: max(atMs, 0), stick: true})
}

// ClearTrackFaults removes every FailWhenPlayed/StickWhenPlayed rule. A play
// a rule already stalled stays stalled (UnfreezePlayer or a new play ends it).
func (e *Emulator) ClearTrackFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log.Debug("lavalinkemu: fault: track rules cleared", "rules", len(e.trackFaults))
	clear(e.trackFaults)
	e.rescheduleLocked(func(*player) bool { return true })
}

func (e *Emulator) setTrackFault(identifier string, f trackFault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log.Debug("lavalinkemu: fault: track rule", "identifier", identifier, "at_ms", f.atMs, "stick", f.stick)
	e.trackFaults[identifier] = f
	e.rescheduleLocked(func(p *player) bool { return p.track.Info.Identifier == identifier })
}

// rescheduleLocked re-arms the timers of the players with a track that match,
// so that a changed rule applies to plays in progress.
func (e *Emulator) rescheduleLocked(match func(*player) bool) {
	now := time.Now()
	for _, s := range e.sessions {
		for _, p := range s.players {
			if p.track != nil && match(p) {
				p.rebase(now)
				p.schedule(now)
			}
		}
	}
}

// SendRaw sends raw as one websocket text frame to the session, in order with
// everything else (queued if the session waits for a resume). It exists to
// show what a client does with a message it cannot parse.
func (e *Emulator) SendRaw(sessionID string, raw []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessions[sessionID]
	if s == nil {
		return fmt.Errorf("lavalinkemu: no session %q", sessionID)
	}
	b := append([]byte(nil), raw...)
	switch {
	case s.conn != nil:
		s.conn.enqueue(b)
	case s.paused:
		s.queue = append(s.queue, b)
	}
	return nil
}
