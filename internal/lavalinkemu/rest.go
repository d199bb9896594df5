package lavalinkemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrorBody is Lavalink's REST error object.
type ErrorBody struct {
	Timestamp int64  `json:"timestamp"`
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Trace     string `json:"trace,omitempty"`
	Message   string `json:"message"`
	Path      string `json:"path"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	body := ErrorBody{Timestamp: time.Now().UnixMilli(), Status: status, Error: http.StatusText(status), Message: msg, Path: r.URL.Path}
	if r.URL.Query().Get("trace") == "true" {
		body.Trace = fmt.Sprintf("org.springframework.web.server.ResponseStatusException: %d %s \"%s\"\n\tat lavalinkemu (emulated)", status, body.Error, msg)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (e *Emulator) handleVersion(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	_, _ = io.WriteString(w, e.cfg.Version)
}

// buildTime is fixed so that /v4/info is the same on every run (4.2.2 was
// out by then).
var buildTime = time.Date(2026, 4, 17, 0, 0, 0, 0, time.UTC).UnixMilli()

func (e *Emulator) handleInfo(w http.ResponseWriter, _ *http.Request) {
	major, minor, patch, pre := parseVersion(e.cfg.Version)
	var preRelease *string
	if pre != "" {
		preRelease = &pre
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version": map[string]any{
			"semver": e.cfg.Version, "major": major, "minor": minor, "patch": patch,
			"preRelease": preRelease, "build": nil,
		},
		"buildTime":      buildTime,
		"git":            map[string]any{"branch": "main", "commit": "0000000", "commitTime": buildTime},
		"jvm":            "lavalinkemu",
		"lavaplayer":     "2.2.6", // what Lavalink 4.1.2 and later bundle
		"sourceManagers": []string{"youtube", "soundcloud", "http"},
		"filters":        []string{"volume", "equalizer", "karaoke", "timescale", "tremolo", "vibrato", "distortion", "rotation", "channelMix", "lowPass"},
		"plugins":        []any{},
	})
}

func (e *Emulator) handleStats(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	st := e.statsLocked(false)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, restStats{Stats: st})
}

func (e *Emulator) handleLoadTracks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("identifier") {
		writeError(w, r, http.StatusBadRequest, "Required request parameter 'identifier' for method parameter type String is not present")
		return
	}
	writeJSON(w, http.StatusOK, e.cat.load(q.Get("identifier")))
}

// decodeFailure is how Lavalink fails a track it cannot decode: the exception
// from decodeTrack is not mapped to a status, so Spring answers 500.
func decodeFailure(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, http.StatusInternalServerError, "Failed to decode track: "+err.Error())
}

func (e *Emulator) handleDecodeTrack(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	enc := q.Get("encodedTrack")
	if !q.Has("encodedTrack") {
		enc = q.Get("track")
		if !q.Has("track") {
			writeError(w, r, http.StatusBadRequest, "No track to decode provided")
			return
		}
	}
	info, err := DecodeTrack(enc)
	if err != nil {
		decodeFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, decodedTrack(enc, info))
}

func (e *Emulator) handleDecodeTracks(w http.ResponseWriter, r *http.Request) {
	var encs []string
	if err := json.NewDecoder(r.Body).Decode(&encs); err != nil {
		writeError(w, r, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	if len(encs) == 0 {
		writeError(w, r, http.StatusBadRequest, "No tracks to decode provided")
		return
	}
	out := make([]Track, 0, len(encs))
	for _, enc := range encs {
		info, err := DecodeTrack(enc)
		if err != nil {
			decodeFailure(w, r, err)
			return
		}
		out = append(out, decodedTrack(enc, info))
	}
	writeJSON(w, http.StatusOK, out)
}

func decodedTrack(enc string, info TrackInfo) Track {
	return Track{Encoded: enc, Info: info, PluginInfo: emptyObject, UserData: emptyObject}
}

// sessionLocked mirrors util.socketContext: any connected session is
// addressable with the password, whoever's it is. A session waiting for a
// resume is not: SocketServer.afterConnectionClosed moves it from
// `sessions` (where socketContext looks) to `resumableSessions`, so REST
// calls about it (its players, PATCH of the session) answer 404 "Session
// not found" until a websocket resumes it, while its players play on.
func (e *Emulator) sessionLocked(w http.ResponseWriter, r *http.Request) *session {
	s := e.sessions[r.PathValue("sid")]
	if s == nil || s.dead || s.paused {
		writeError(w, r, http.StatusNotFound, "Session not found")
		return nil
	}
	return s
}

func guildParam(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	// Lavalink binds guildId to a Java long.
	g, err := strconv.ParseInt(r.PathValue("gid"), 10, 64)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Failed to convert value of type 'java.lang.String' to required type 'long'; For input string: %q", r.PathValue("gid")))
		return 0, false
	}
	return uint64(g), true
}

func (e *Emulator) handleUpdateSession(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Resuming *bool `json:"resuming"`
		Timeout  *int  `json:"timeout"`
	}
	raw, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessionLocked(w, r)
	if s == nil {
		return
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		writeError(w, r, http.StatusBadRequest, "JSON parse error: "+err.Error())
		return
	}
	if body.Timeout != nil && *body.Timeout < 0 {
		writeError(w, r, http.StatusBadRequest, "Timeout must be greater than or equal to 0")
		return
	}
	if body.Resuming != nil {
		s.resuming = *body.Resuming
	}
	if body.Timeout != nil {
		s.timeout = *body.Timeout
	}
	writeJSON(w, http.StatusOK, map[string]any{"resuming": s.resuming, "timeout": s.timeout})
}

func (e *Emulator) handleGetPlayers(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessionLocked(w, r)
	if s == nil {
		return
	}
	now := time.Now()
	out := make([]playerJSON, 0, len(s.players))
	for _, p := range s.sortedPlayers() {
		out = append(out, p.json(now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) handleGetPlayer(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessionLocked(w, r)
	if s == nil {
		return
	}
	g, ok := guildParam(w, r)
	if !ok {
		return
	}
	p := s.players[g]
	if p == nil {
		writeError(w, r, http.StatusNotFound, "Player not found")
		return
	}
	writeJSON(w, http.StatusOK, p.json(time.Now()))
}

func (e *Emulator) handleDestroyPlayer(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessionLocked(w, r)
	if s == nil {
		return
	}
	g, ok := guildParam(w, r)
	if !ok {
		return
	}
	// SocketContext.destroyPlayer does not care whether the player existed.
	if p := s.players[g]; p != nil {
		// lavaplayer's destroy() is stopTrack(): the socket is still open, so
		// the client gets TrackEnd "stopped" for a loaded track.
		p.end(time.Now(), EndStopped)
		p.destroy()
		delete(s.players, g)
	}
	w.WriteHeader(http.StatusNoContent)
}

// present distinguishes an absent JSON field from an explicit null, which
// Lavalink's Omissible types do and the player update depends on.
type present struct {
	set bool
	raw json.RawMessage
}

func (p *present) UnmarshalJSON(b []byte) error {
	p.set = true
	p.raw = append(json.RawMessage(nil), b...)
	return nil
}

func (p present) null() bool { return p.set && bytes.Equal(bytes.TrimSpace(p.raw), []byte("null")) }

type updateTrack struct {
	Encoded    present `json:"encoded"`
	Identifier present `json:"identifier"`
	UserData   present `json:"userData"`
}

type voiceBody struct {
	Token     string  `json:"token"`
	Endpoint  string  `json:"endpoint"`
	SessionID string  `json:"sessionId"`
	ChannelID *string `json:"channelId"`
}

type playerUpdateBody struct {
	Track        present `json:"track"`
	EncodedTrack present `json:"encodedTrack"`
	Identifier   present `json:"identifier"`
	Position     present `json:"position"`
	EndTime      present `json:"endTime"`
	Volume       present `json:"volume"`
	Paused       present `json:"paused"`
	Filters      present `json:"filters"`
	Voice        present `json:"voice"`
}

var errBadBody = errors.New("bad body")

func decodeField[T any](p present, into *T) error {
	if !p.set {
		return nil
	}
	if err := json.Unmarshal(p.raw, into); err != nil {
		return fmt.Errorf("%w: %v", errBadBody, err)
	}
	return nil
}

// handleUpdatePlayer follows PlayerRestHandler.patchPlayer step by step,
// including its order: validation first, then voice, pause, user data, volume,
// seek, end time and filters, and the track last. A track that fails to
// decode therefore fails the request after the other fields were applied, as
// on the real server.
func (e *Emulator) handleUpdatePlayer(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sessionLocked(w, r)
	if s == nil {
		return
	}
	g, ok := guildParam(w, r)
	if !ok {
		return
	}
	noReplace := false
	if v := r.URL.Query().Get("noReplace"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "Failed to convert value of type 'java.lang.String' to required type 'boolean'")
			return
		}
		noReplace = b
	}

	var body playerUpdateBody
	var tr updateTrack
	var (
		position, endTime *int64
		volume            *int
		paused            *bool
		voice             *voiceBody
		encoded           *string
		identifier        string
	)
	bad := func(err error) {
		writeError(w, r, http.StatusBadRequest, "JSON parse error: "+err.Error())
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		bad(err)
		return
	}
	if body.Track.set && !body.Track.null() {
		if err := json.Unmarshal(body.Track.raw, &tr); err != nil {
			bad(err)
			return
		}
	}
	if body.Track.set && (body.EncodedTrack.set || body.Identifier.set) {
		writeError(w, r, http.StatusBadRequest, "Cannot specify both track and encodedTrack/identifier")
		return
	}
	if !body.Track.set {
		// The deprecated top-level fields mean the same as track.*.
		tr.Encoded, tr.Identifier = body.EncodedTrack, body.Identifier
	}
	if tr.Encoded.set && tr.Identifier.set {
		writeError(w, r, http.StatusBadRequest, "Cannot specify both encodedTrack and identifier")
		return
	}
	for _, err := range []error{
		decodeField(body.Position, &position), decodeField(body.EndTime, &endTime),
		decodeField(body.Volume, &volume), decodeField(body.Paused, &paused),
		decodeField(body.Voice, &voice), decodeField(tr.Encoded, &encoded), decodeField(tr.Identifier, &identifier),
	} {
		if err != nil {
			bad(err)
			return
		}
	}
	if body.Filters.set && !isObject(body.Filters.raw) {
		writeError(w, r, http.StatusBadRequest, "JSON parse error: filters must be an object")
		return
	}
	// PlayerUpdateTrack.userData is an Omissible<JsonObject>: anything but an
	// object, null included, fails deserialization. (Only the server side,
	// toTrack, turns a missing userData into {}.)
	if tr.UserData.set && !isObject(tr.UserData.raw) {
		writeError(w, r, http.StatusBadRequest, "JSON parse error: userData must be an object")
		return
	}
	// Lavalink 4.2 needs channelId for DAVE: without it the voice state is
	// as unusable as without a token.
	if voice != nil && (voice.Endpoint == "" || voice.Token == "" || voice.SessionID == "" || voice.ChannelID == nil || *voice.ChannelID == "") {
		ch := "null"
		if voice.ChannelID != nil {
			ch = *voice.ChannelID
		}
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("Partial Lavalink voice state: VoiceState(token=%s, endpoint=%s, sessionId=%s, channelId=%s)", voice.Token, voice.Endpoint, voice.SessionID, ch))
		return
	}
	if endTime != nil && *endTime <= 0 {
		writeError(w, r, http.StatusBadRequest, "End time must be greater than 0")
		return
	}

	p := s.players[g]
	if p == nil {
		p = e.newPlayerLocked(s, g)
	}
	now := time.Now()
	newTrack := tr.Encoded.set || tr.Identifier.set

	if voice != nil {
		p.applyVoice(now, voiceState{Token: voice.Token, Endpoint: voice.Endpoint, SessionID: voice.SessionID, ChannelID: deref0(voice.ChannelID)})
	}
	if paused != nil && !newTrack {
		p.setPaused(now, *paused)
	}
	if tr.UserData.set && !newTrack && p.track != nil {
		p.track.UserData = tr.UserData.raw
	}
	if volume != nil {
		// lavaplayer clamps instead of rejecting.
		p.volume = min(max(*volume, 0), 1000)
	}
	if position != nil && !newTrack && p.track != nil {
		p.seek(now, *position)
		s.send(e.playerUpdateMsg(p, now))
	}
	if body.EndTime.set && !newTrack && p.track != nil {
		p.rebase(now)
		p.endTime = 0
		if endTime != nil {
			p.endTime = *endTime
		}
		p.schedule(now)
	}
	if body.Filters.set {
		p.filters = body.Filters.raw
		s.send(e.playerUpdateMsg(p, now))
	}

	if newTrack {
		if noReplace && p.track != nil {
			writeJSON(w, http.StatusOK, p.json(now))
			return
		}
		p.setPaused(now, paused != nil && *paused)
		var t *Track
		switch {
		case tr.Encoded.set && encoded != nil:
			info, err := DecodeTrack(*encoded)
			if err != nil {
				decodeFailure(w, r, err)
				return
			}
			start := info.Position
			info.Position = 0
			dt := decodedTrack(*encoded, info)
			t = &dt
			if position == nil {
				position = &start
			}
		case tr.Identifier.set:
			res := e.cat.load(identifier)
			switch res.LoadType {
			case LoadTrack:
				lt := res.Data.(Track)
				t = &lt
			case LoadPlaylist, LoadSearch:
				writeError(w, r, http.StatusBadRequest, "Cannot play a playlist or search result")
				return
			case LoadEmpty:
				writeError(w, r, http.StatusBadRequest, "No matches found for identifier")
				return
			default:
				// Lavalink 4.2 answers a load failure here as a bad request
				// carrying the load exception's message.
				writeError(w, r, http.StatusBadRequest, res.Data.(Exception).Message)
				return
			}
		}
		if t == nil {
			p.end(now, EndStopped)
		} else {
			if tr.UserData.set {
				t.UserData = tr.UserData.raw
			}
			var start, end int64
			if position != nil {
				start = *position
			}
			if endTime != nil {
				end = *endTime
			}
			p.play(*t, start, end)
		}
	}
	writeJSON(w, http.StatusOK, p.json(time.Now()))
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

func deref0(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
