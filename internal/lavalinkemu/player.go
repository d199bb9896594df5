package lavalinkemu

import (
	"encoding/json"
	"strconv"
	"time"
)

// Track end reasons, as Lavalink spells them.
const (
	EndFinished   = "finished"
	EndLoadFailed = "loadFailed"
	EndStopped    = "stopped"
	EndReplaced   = "replaced"
	EndCleanup    = "cleanup"
)

// pingConnected is the voice ping reported for connected players; there is no
// voice server to measure, and a constant keeps snapshots comparable.
const pingConnected = 20

type voiceState struct {
	Token     string
	Endpoint  string
	SessionID string
	ChannelID string // "" when the client never sent one
}

func (v voiceState) MarshalJSON() ([]byte, error) {
	var ch *string
	if v.ChannelID != "" {
		ch = &v.ChannelID
	}
	// channelId is null rather than "" when unknown: disgolink decodes it as a
	// snowflake, and an empty string fails the whole response.
	return json.Marshal(struct {
		Token     string  `json:"token"`
		Endpoint  string  `json:"endpoint"`
		SessionID string  `json:"sessionId"`
		ChannelID *string `json:"channelId"`
	}{v.Token, v.Endpoint, v.SessionID, ch})
}

type player struct {
	e       *Emulator
	s       *session
	guildID uint64

	track   *Track // nil when idle; Info.Position is not maintained here
	volume  int
	paused  bool
	filters json.RawMessage
	voice   voiceState
	// connected follows the voice connection: true from the first full voice
	// state until a voice close. Only a connected player pulls audio, so only
	// a connected player's clock runs.
	connected bool

	// The playback clock: position = pos + (now - since) * speed while running.
	pos     int64
	since   time.Time
	endTime int64 // 0: none

	frozen     bool // FreezePlayer: lasts across tracks until UnfreezePlayer
	stuck      bool // a StickWhenPlayed rule tripped: lasts until the track ends
	stuckSent  bool
	stuckSince time.Time // when frames stopped coming (for TrackStuckEvent)
	idleSince  time.Time // when nobody started pulling frames (for cleanup)

	// faultAt caps the clock at the position where an armed track fault rule
	// trips (-1: none armed), so that nothing reports a position past it
	// before the rule's timer has run. faultFired: the rule tripped during
	// this play; it trips once per play.
	faultAt    int64
	faultFired bool

	gen       uint64 // invalidates timers armed for an older state
	timers    []*time.Timer
	destroyed bool
}

func (e *Emulator) newPlayerLocked(s *session, guildID uint64) *player {
	p := &player{e: e, s: s, guildID: guildID, volume: 100, filters: json.RawMessage(`{}`), since: time.Now(), faultAt: -1}
	s.players[guildID] = p
	return p
}

func (p *player) running() bool {
	return p.track != nil && !p.paused && p.connected && !p.stalled()
}

// stalled: a track is loaded but no frames come (FreezePlayer or a
// StickWhenPlayed rule).
func (p *player) stalled() bool { return p.frozen || p.stuck }

func (p *player) position(now time.Time) int64 {
	if p.track == nil {
		return 0
	}
	pos := p.pos
	if p.running() {
		pos += int64(float64(now.Sub(p.since)) * p.e.cfg.Speed / float64(time.Millisecond))
		if p.faultAt >= 0 && pos > p.faultAt {
			pos = max(p.faultAt, p.pos)
		}
	}
	if !p.track.Info.IsStream && pos > p.track.Info.Length {
		pos = p.track.Info.Length
	}
	if p.endTime > 0 && pos > p.endTime {
		pos = p.endTime
	}
	return pos
}

// rebase folds the elapsed time into pos; every state change starts with it so
// that the change takes effect from now and not retroactively. The fault cap
// belongs to the timers of the old state; schedule arms it again if it still
// applies.
func (p *player) rebase(now time.Time) {
	p.pos = p.position(now)
	p.since = now
	p.faultAt = -1
}

func (p *player) stopTimers() {
	p.gen++
	for _, t := range p.timers {
		t.Stop()
	}
	p.timers = nil
}

func (p *player) destroy() {
	p.stopTimers()
	p.destroyed = true
}

// wall converts a span of track time into wall time at the configured speed.
func (p *player) wall(trackTime time.Duration) time.Duration {
	d := time.Duration(float64(trackTime) / p.e.cfg.Speed)
	if d < 0 {
		return 0
	}
	return d
}

func (p *player) after(d time.Duration, fn func()) {
	gen := p.gen
	p.timers = append(p.timers, time.AfterFunc(d, func() {
		p.e.mu.Lock()
		defer p.e.mu.Unlock()
		if p.gen != gen || p.destroyed || p.s.dead {
			return
		}
		fn()
	}))
}

// schedule re-arms the timers for the current state: the end of the track
// (or of endTime), a track fault rule, a TrackStuckEvent for a stalled
// player, and lavaplayer's cleanup of a track nobody is listening to. Callers
// rebase first.
func (p *player) schedule(now time.Time) {
	p.stopTimers()
	p.faultAt = -1
	if p.track == nil {
		return
	}
	target := p.track.Info.Length
	if p.endTime > 0 && p.endTime < target {
		target = p.endTime
	}
	if p.running() && !p.track.Info.IsStream {
		p.after(p.wall(time.Duration(target-p.pos)*time.Millisecond), func() {
			// The timer is still current, so the end was reached; snapping
			// avoids reporting target-1 when the wall time was rounded down.
			now := time.Now()
			p.rebase(now)
			p.pos = max(p.pos, target)
			p.end(now, EndFinished)
		})
	}
	if f, ok := p.e.trackFaults[p.track.Info.Identifier]; ok && p.running() && !p.faultFired {
		// 0 is a failure to load: it happens at once whatever position the
		// play started at. Any other position trips only if the clock gets
		// there before the track ends.
		at := f.atMs
		if at == 0 {
			at = p.pos
		}
		if at >= p.pos && (p.track.Info.IsStream || at < target) {
			p.faultAt = at
			p.after(p.wall(time.Duration(at-p.pos)*time.Millisecond), func() { p.trip(f) })
		}
	}
	if p.stalled() && p.connected && !p.paused && !p.stuckSent {
		threshold := p.e.cfg.StuckThreshold
		p.after(p.wall(threshold)-now.Sub(p.stuckSince), func() {
			p.stuckSent = true
			p.emit(trackStuckEvent{Op: "event", Type: "TrackStuckEvent", GuildID: p.gid(),
				Track: p.trackJSON(time.Now()), ThresholdMs: threshold.Milliseconds()})
		})
	}
	if !p.connected {
		p.after(p.wall(p.e.cfg.CleanupThreshold)-now.Sub(p.idleSince), func() { p.end(time.Now(), EndCleanup) })
	}
}

// trip applies a track fault rule whose position the clock has reached (the
// cap in position makes the position exactly that).
func (p *player) trip(f trackFault) {
	now := time.Now()
	p.rebase(now)
	p.faultFired = true
	if f.stick {
		// As FreezePlayer, but only for this play of the track.
		p.stuck = true
		p.stuckSince, p.stuckSent = now, false
		p.schedule(now)
		return
	}
	p.fail(now, f.message)
}

// fail reports a track that broke as lavaplayer does: TrackExceptionEvent,
// then TrackEnd "loadFailed" if no audio had been produced yet (position 0)
// or "finished" otherwise.
func (p *player) fail(now time.Time, message string) {
	p.emit(trackExceptionEvent{Op: "event", Type: "TrackExceptionEvent", GuildID: p.gid(), Track: p.trackJSON(now),
		Exception: faultException(message)})
	if p.position(now) == 0 {
		p.end(now, EndLoadFailed)
	} else {
		p.end(now, EndFinished)
	}
}

// faultException is how lavaplayer wraps an error while decoding: severity
// fault, with the cause and its stack trace (Lavalink 4.1+).
func faultException(message string) Exception {
	return Exception{Message: message, Severity: "fault", Cause: "java.lang.RuntimeException: " + message,
		CauseStackTrace: "java.lang.RuntimeException: " + message + "\n\tat lavalinkemu (emulated)"}
}

// end finishes the current track with reason and emits TrackEndEvent. now is
// the caller's, so that the events of one change report one position.
func (p *player) end(now time.Time, reason string) {
	if p.track == nil {
		return
	}
	p.rebase(now)
	ev := trackEndEvent{Op: "event", Type: "TrackEndEvent", GuildID: p.gid(), Track: p.trackJSON(now), Reason: reason}
	p.track, p.pos, p.endTime, p.stuckSent, p.stuck = nil, 0, 0, false, false
	p.schedule(now)
	p.emit(ev)
}

// play starts t as lavaplayer's playTrack does: TrackEnd "replaced" for the
// old track, then TrackStart, then (from LavalinkPlayer.play) a playerUpdate.
func (p *player) play(t Track, start int64, endTime int64) {
	now := time.Now()
	p.rebase(now)
	if p.track != nil {
		p.emit(trackEndEvent{Op: "event", Type: "TrackEndEvent", GuildID: p.gid(), Track: p.trackJSON(now), Reason: EndReplaced})
	}
	if start < 0 {
		start = 0
	}
	t.Info.Position = 0
	p.track = &t
	p.pos, p.since, p.endTime = start, now, endTime
	p.stuckSent, p.stuckSince, p.stuck, p.faultFired = false, now, false, false
	if !p.connected {
		p.idleSince = now
	}
	p.emit(trackStartEvent{Op: "event", Type: "TrackStartEvent", GuildID: p.gid(), Track: p.trackJSON(now)})
	p.schedule(now)
	p.s.send(p.e.playerUpdateMsg(p, now))
}

func (p *player) gid() string { return strconv.FormatUint(p.guildID, 10) }

// trackJSON renders the current track as Lavalink's toTrack does: info and
// the encoding carry the current position, so an encoded track captured
// mid-play resumes from there when sent back.
func (p *player) trackJSON(now time.Time) *Track {
	if p.track == nil {
		return nil
	}
	t := *p.track
	t.Info.Position = p.position(now)
	if enc, err := EncodeTrack(t.Info); err == nil {
		t.Encoded = enc
	}
	return &t
}

func (e *Emulator) playerUpdateMsg(p *player, now time.Time) playerUpdateMsg {
	return playerUpdateMsg{Op: "playerUpdate", GuildID: p.gid(), State: p.state(now)}
}

type playerState struct {
	Time      int64 `json:"time"`
	Position  int64 `json:"position"`
	Connected bool  `json:"connected"`
	Ping      int   `json:"ping"`
}

func (p *player) state(now time.Time) playerState {
	ping := -1
	if p.connected {
		ping = pingConnected
	}
	return playerState{Time: now.UnixMilli(), Position: p.position(now), Connected: p.connected, Ping: ping}
}

type playerJSON struct {
	GuildID string          `json:"guildId"`
	Track   *Track          `json:"track"`
	Volume  int             `json:"volume"`
	Paused  bool            `json:"paused"`
	State   playerState     `json:"state"`
	Voice   voiceState      `json:"voice"`
	Filters json.RawMessage `json:"filters"`
}

func (p *player) json(now time.Time) playerJSON {
	return playerJSON{GuildID: p.gid(), Track: p.trackJSON(now), Volume: p.volume, Paused: p.paused,
		State: p.state(now), Voice: p.voice, Filters: p.filters}
}

type playerUpdateMsg struct {
	Op      string      `json:"op"`
	GuildID string      `json:"guildId"`
	State   playerState `json:"state"`
}

type trackStartEvent struct {
	Op      string `json:"op"`
	Type    string `json:"type"`
	GuildID string `json:"guildId"`
	Track   *Track `json:"track"`
}

type trackEndEvent struct {
	Op      string `json:"op"`
	Type    string `json:"type"`
	GuildID string `json:"guildId"`
	Track   *Track `json:"track"`
	Reason  string `json:"reason"`
}

type trackStuckEvent struct {
	Op          string `json:"op"`
	Type        string `json:"type"`
	GuildID     string `json:"guildId"`
	Track       *Track `json:"track"`
	ThresholdMs int64  `json:"thresholdMs"`
}

type trackExceptionEvent struct {
	Op        string    `json:"op"`
	Type      string    `json:"type"`
	GuildID   string    `json:"guildId"`
	Track     *Track    `json:"track"`
	Exception Exception `json:"exception"`
}

type wsClosedEvent struct {
	Op       string `json:"op"`
	Type     string `json:"type"`
	GuildID  string `json:"guildId"`
	Code     int    `json:"code"`
	Reason   string `json:"reason"`
	ByRemote bool   `json:"byRemote"`
}

// PlayerInfo is a snapshot of one player, for assertions.
type PlayerInfo struct {
	SessionID string
	GuildID   uint64
	Track     *Track // with the current position
	Position  int64
	Paused    bool
	Volume    int
	Connected bool
	Frozen    bool // FreezePlayer, or a StickWhenPlayed rule tripped
	EndTime   int64
	Voice     VoiceInfo
	Filters   json.RawMessage
}

// VoiceInfo is the voice state a player holds.
type VoiceInfo struct {
	Token, Endpoint, SessionID, ChannelID string
}

// Players returns the players of one session (all sessions if sessionID is
// empty), sorted by session and guild.
func (e *Emulator) Players(sessionID string) []PlayerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	var out []PlayerInfo
	for _, si := range e.sortedSessionIDsLocked() {
		s := e.sessions[si]
		if sessionID != "" && s.id != sessionID {
			continue
		}
		for _, p := range s.sortedPlayers() {
			out = append(out, PlayerInfo{
				SessionID: s.id, GuildID: p.guildID, Track: p.trackJSON(now), Position: p.position(now),
				Paused: p.paused, Volume: p.volume, Connected: p.connected, Frozen: p.stalled(), EndTime: p.endTime,
				Voice:   VoiceInfo{p.voice.Token, p.voice.Endpoint, p.voice.SessionID, p.voice.ChannelID},
				Filters: append(json.RawMessage(nil), p.filters...),
			})
		}
	}
	return out
}

func (p *player) setPaused(now time.Time, v bool) {
	if p.paused == v {
		return
	}
	p.rebase(now)
	p.paused = v
	if !v {
		// lavaplayer resets its stuck clock on resume.
		p.stuckSince = now
	}
	p.schedule(now)
}

// seek moves the clock. Streams are not seekable and ignore it; a position
// past the end finishes the track at once if it is running.
func (p *player) seek(now time.Time, pos int64) {
	if p.track == nil || p.track.Info.IsStream {
		return
	}
	p.rebase(now)
	p.pos = max(pos, 0)
	p.schedule(now)
}

// applyVoice connects the player. Like PlayerRestHandler, it reconnects only
// when the voice state changed (or nothing is connected), and a new
// connection reports itself with a playerUpdate (Koe's gatewayReady).
func (p *player) applyVoice(now time.Time, v voiceState) {
	changed := !p.connected || p.voice != v
	p.voice = v
	if !changed {
		return
	}
	p.rebase(now)
	p.connected = true
	p.stuckSince = now
	p.schedule(now)
	p.s.send(p.e.playerUpdateMsg(p, now))
}
