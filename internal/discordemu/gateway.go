package discordemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opPresenceUpdate = 3
	opVoiceState     = 4
	opResume         = 6
	opReconnect      = 7
	opRequestMembers = 8
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatACK   = 11
	opRequestSounds  = 31

	intentGuilds           = 1 << 0
	intentGuildVoiceStates = 1 << 7
	intentsKnown           = 1<<26 - 1

	// Discord allows 120 gateway sends per connection per 60 s.
	sendLimit       = 120
	sendLimitWindow = 60 * time.Second

	outQueue = 4096
)

// Gateway close codes (Discord's opcodes-and-status-codes).
const (
	CloseUnknownError         = 4000
	CloseUnknownOpcode        = 4001
	CloseDecodeError          = 4002
	CloseNotAuthenticated     = 4003
	CloseAuthenticationFailed = 4004
	CloseAlreadyAuthenticated = 4005
	CloseInvalidSeq           = 4007
	CloseRateLimited          = 4008
	CloseSessionTimedOut      = 4009
	CloseInvalidShard         = 4010
	CloseShardingRequired     = 4011
	CloseInvalidAPIVersion    = 4012
	CloseInvalidIntents       = 4013
	CloseDisallowedIntents    = 4014
)

var closeTexts = map[int]string{
	CloseUnknownError:         "Unknown error.",
	CloseUnknownOpcode:        "Unknown opcode.",
	CloseDecodeError:          "Error while decoding payload.",
	CloseNotAuthenticated:     "Not authenticated.",
	CloseAuthenticationFailed: "Authentication failed.",
	CloseAlreadyAuthenticated: "Already authenticated.",
	CloseInvalidSeq:           "Invalid seq.",
	CloseRateLimited:          "Rate limited.",
	CloseSessionTimedOut:      "Session timed out.",
	CloseInvalidShard:         "Invalid shard.",
	CloseShardingRequired:     "Sharding required.",
	CloseInvalidAPIVersion:    "Invalid API version.",
	CloseInvalidIntents:       "Invalid intent(s).",
	CloseDisallowedIntents:    "Disallowed intent(s).",
}

// closeEndsSession lists the close codes after which Discord will not resume the session.
func closeEndsSession(code int) bool {
	switch code {
	case CloseInvalidSeq, CloseSessionTimedOut, CloseAuthenticationFailed, CloseInvalidShard,
		CloseShardingRequired, CloseInvalidAPIVersion, CloseInvalidIntents, CloseDisallowedIntents:
		return true
	}
	return false
}

// session is a Discord gateway session: it outlives connections so that a client can
// RESUME and receive, in order, every dispatch it missed.
type session struct {
	id          string
	shard       int
	count       int
	intents     int
	seq         int
	buf         []bufferedDispatch
	conn        *gwConn
	compression Compression
	identified  time.Time
	resumes     int
	replayed    int  // dispatches replayed by the last RESUME
	ready       bool // READY or RESUMED sent on the current connection
}

// replayable is what a RESUME can replay: the last n dispatches.
func (s *session) replayable(n int) []bufferedDispatch {
	if len(s.buf) > n {
		return s.buf[len(s.buf)-n:]
	}
	return s.buf
}

type bufferedDispatch struct {
	seq     int
	payload []byte
	onSent  func(time.Time)
}

// SessionInfo describes a gateway session for tests.
type SessionInfo struct {
	ID          string
	Shard       int
	ShardCount  int
	Intents     int
	Seq         int
	Connected   bool
	Ready       bool
	Resumes     int
	Replayed    int // dispatches replayed by the last RESUME
	Compression Compression
}

type outFrame struct {
	replay    bool // part of a RESUME replay (gwConn.replaying counts them)
	payload   []byte
	closeCode int
	closeText string
	onSent    func(time.Time)
}

// gwConn is one websocket connection. Frames go through a queue to a single writer so that
// dispatch order is fixed under e.mu without doing network I/O while holding it.
type gwConn struct {
	// recIdx is the recorder's index of the payload being handled: its
	// shard and session are filled in before the answer can reach the
	// client, which may read the recording as soon as it sees READY.
	recIdx int
	e      *Emulator
	ws     *websocket.Conn
	enc    frameEncoder
	comp   Compression
	out    chan outFrame
	done   chan struct{}
	once   sync.Once
	// replaying counts replayed frames not yet written, which the GatewayQueue bound
	// leaves out.
	replaying atomic.Int64

	// guarded by e.mu
	sess          *session
	closing       bool
	lastHeartbeat time.Time
	sends         []time.Time
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func (e *Emulator) serveGateway(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 0, "message": "400: Bad Request"})
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	q := r.URL.Query()
	comp := Compression(q.Get("compress"))
	enc, encErr := newFrameEncoder(comp)
	if encErr != nil {
		enc, comp = plainEncoder{}, CompressionNone
	}
	// Room for a full RESUME replay on top of the live queue: a replay must not count as
	// the client being slow (Discord streams it), or a client that fell behind could never
	// resume.
	c := &gwConn{e: e, ws: ws, enc: enc, comp: comp, out: make(chan outFrame, e.cfg.GatewayQueue+e.cfg.ReplayBuffer), done: make(chan struct{})}

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ws.Close()
		return
	}
	e.conns[c] = struct{}{}
	c.lastHeartbeat = time.Now()
	e.wg.Add(2)
	e.mu.Unlock()

	go func() { defer e.wg.Done(); c.writeLoop() }()
	go func() { defer e.wg.Done(); c.heartbeatWatch() }()

	e.mu.Lock()
	switch {
	case encErr != nil:
		c.closeLocked(CloseDecodeError, "")
	case q.Get("v") != "" && q.Get("v") != "10":
		c.closeLocked(CloseInvalidAPIVersion, "")
	case q.Get("encoding") != "" && q.Get("encoding") != "json":
		c.closeLocked(CloseDecodeError, "")
	default:
		c.sendLocked(mustJSON(map[string]any{"op": opHello, "s": nil, "t": nil,
			"d": map[string]any{"heartbeat_interval": e.cfg.HeartbeatInterval.Milliseconds()}}), nil)
	}
	e.mu.Unlock()

	c.readLoop()
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	buf.Grow(2048) // an INTERACTION_CREATE's size: no regrowth on the hot path
	if err := appendJSON(&buf, v); err != nil {
		panic(err) // only emulator-built values are marshalled here
	}
	return buf.Bytes()
}

// sendLocked queues a payload. A client that cannot keep up with Config.GatewayQueue
// queued payloads is disconnected rather than allowed to grow the emulator's memory
// without bound.
func (c *gwConn) sendLocked(payload []byte, onSent func(time.Time)) {
	if c.closing {
		return
	}
	if len(c.out)-int(c.replaying.Load()) < c.e.cfg.GatewayQueue {
		// Never blocks (the channel has room for a replay on top), and must not: the
		// writer takes e.mu to report a write.
		select {
		case c.out <- outFrame{payload: payload, onSent: onSent}:
			return
		default:
		}
	}
	c.e.slowDisconnects++
	c.closing = true
	go c.kill()
}

// replayLocked queues a payload of a RESUME replay, in the room the queue keeps for one.
func (c *gwConn) replayLocked(payload []byte, onSent func(time.Time)) {
	if c.closing {
		return
	}
	c.replaying.Add(1)
	select {
	case c.out <- outFrame{payload: payload, onSent: onSent, replay: true}:
	default:
		c.replaying.Add(-1)
		c.closing = true
		go c.kill()
	}
}

// closeLocked queues a close frame; nothing is sent after it.
func (c *gwConn) closeLocked(code int, text string) {
	if c.closing {
		return
	}
	if text == "" {
		text = closeTexts[code]
	}
	c.closing = true
	select {
	case c.out <- outFrame{closeCode: code, closeText: text}:
	default:
		go c.kill()
	}
}

func (c *gwConn) kill() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *gwConn) writeLoop() {
	defer c.enc.close()
	for {
		select {
		case <-c.done:
			return
		case f := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if f.closeCode != 0 {
				_ = c.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(f.closeCode, f.closeText))
				// Give the client a moment to read the close frame before the TCP close.
				select {
				case <-c.done:
				case <-time.After(time.Second):
				}
				c.kill()
				return
			}
			if f.replay {
				c.replaying.Add(-1)
			}
			mt, data, err := c.enc.encode(f.payload)
			// The clock is read before the write: a bot may read the frame and answer
			// before WriteMessage returns, and a send time after the answer's arrival
			// made a fast answer's latency negative (counted as unanswered by loadgen).
			at := time.Now()
			if err == nil {
				err = c.ws.WriteMessage(mt, data)
			}
			if err != nil {
				c.kill()
				return
			}
			if f.onSent != nil {
				f.onSent(at)
			}
		}
	}
}

// heartbeatWatch disconnects a client that stopped heartbeating, as Discord does with
// zombie connections; the session is then gone (4009), so the client must identify again.
func (c *gwConn) heartbeatWatch() {
	interval := c.e.cfg.HeartbeatInterval
	tick := interval / 4
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			e := c.e
			e.mu.Lock()
			if !c.closing && now.Sub(c.lastHeartbeat) > interval*3/2 {
				if c.sess != nil {
					e.dropSessionLocked(c.sess)
				}
				c.closeLocked(CloseSessionTimedOut, "")
			}
			e.mu.Unlock()
		}
	}
}

type inbound struct {
	Op *int            `json:"op"`
	D  json.RawMessage `json:"d"`
}

func (c *gwConn) readLoop() {
	e := c.e
	clientCode := 0
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				clientCode = ce.Code
			}
			break
		}
		now := time.Now()
		var msg inbound
		decodeErr := json.Unmarshal(data, &msg)

		e.mu.Lock()
		shard, sid := -1, ""
		if c.sess != nil {
			shard, sid = c.sess.shard, c.sess.id
		}
		rec := RecordedPayload{At: now, Shard: shard, SessionID: sid, Op: -1, Data: json.RawMessage(data)}
		if decodeErr == nil && msg.Op != nil {
			rec.Op = *msg.Op
			rec.Data = msg.D
			if *msg.Op == opIdentify || *msg.Op == opResume {
				rec.Data = redactToken(msg.D)
			}
		}
		idx := e.rec.addPayload(rec)
		if c.closing {
			e.mu.Unlock()
			continue
		}
		// Count every payload, heartbeats included, as Discord does.
		cut := 0
		for cut < len(c.sends) && now.Sub(c.sends[cut]) >= sendLimitWindow {
			cut++
		}
		c.sends = append(c.sends[cut:], now)
		switch {
		case len(c.sends) > sendLimit:
			c.closeLocked(CloseRateLimited, "")
		case decodeErr != nil || msg.Op == nil:
			c.closeLocked(CloseDecodeError, "")
		default:
			c.recIdx = idx
			c.handleLocked(*msg.Op, msg.D, now, &rec)
		}
		e.rec.setPayload(idx, rec)
		e.mu.Unlock()
	}

	e.mu.Lock()
	if s := c.sess; s != nil && s.conn == c {
		s.conn = nil
		s.ready = false
		// A client that closes with 1000/1001 ends its session on Discord.
		if clientCode == websocket.CloseNormalClosure || clientCode == websocket.CloseGoingAway {
			e.dropSessionLocked(s)
		}
	}
	delete(e.conns, c)
	c.closing = true
	e.notifyLocked()
	e.mu.Unlock()
	c.kill()
}

// redactToken keeps the bot token out of recordings, which tests may print.
func redactToken(d json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(d, &m) != nil {
		return d
	}
	if _, ok := m["token"]; ok {
		m["token"] = json.RawMessage(`"[redacted]"`)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return d
	}
	return b
}

func (c *gwConn) handleLocked(op int, d json.RawMessage, now time.Time, rec *RecordedPayload) {
	if c.sess == nil && op != opHeartbeat && op != opIdentify && op != opResume {
		c.closeLocked(CloseNotAuthenticated, "")
		return
	}
	switch op {
	case opHeartbeat:
		c.lastHeartbeat = now
		c.sendLocked([]byte(`{"op":11,"s":null,"t":null,"d":null}`), nil)
	case opIdentify:
		c.identifyLocked(d, now, rec)
	case opResume:
		c.resumeLocked(d, rec)
	case opVoiceState:
		c.voiceStateLocked(d, now)
	case opPresenceUpdate, opRequestMembers, opRequestSounds:
		// Accepted and recorded; the emulator has no presences or member chunks to send.
	default:
		c.closeLocked(CloseUnknownOpcode, "")
	}
}

type identifyData struct {
	Token   string  `json:"token"`
	Intents *int    `json:"intents"`
	Shard   *[2]int `json:"shard"`
}

func (c *gwConn) identifyLocked(d json.RawMessage, now time.Time, rec *RecordedPayload) {
	e := c.e
	if c.sess != nil {
		c.closeLocked(CloseAlreadyAuthenticated, "")
		return
	}
	var id identifyData
	if err := json.Unmarshal(d, &id); err != nil || id.Intents == nil {
		c.closeLocked(CloseDecodeError, "")
		return
	}
	if id.Token != e.token {
		c.closeLocked(CloseAuthenticationFailed, "")
		return
	}
	shard, count := 0, 1
	if id.Shard != nil {
		shard, count = id.Shard[0], id.Shard[1]
	}
	rec.Shard = shard
	if count < 1 || shard < 0 || shard >= count {
		c.closeLocked(CloseInvalidShard, "")
		return
	}
	if *id.Intents < 0 || *id.Intents&^intentsKnown != 0 {
		c.closeLocked(CloseInvalidIntents, "")
		return
	}
	bucket := shard % e.cfg.MaxConcurrency
	times := e.identifies[bucket]
	if n := len(times); n > 0 && now.Sub(times[n-1]) < e.cfg.IdentifyWindow {
		e.recordErrorLocked(ProtocolError{At: now, Kind: ErrIdentifyConcurrency, Shard: shard,
			Detail: "identify in bucket " + itoa(bucket) + " " + now.Sub(times[n-1]).String() + " after the previous one (window " + e.cfg.IdentifyWindow.String() + ")"})
	}
	e.identifies[bucket] = append(times, now)
	if e.startLimitRemaining > 0 {
		e.startLimitRemaining--
	}

	// A disconnected session for the same shard is abandoned by a fresh identify.
	for _, old := range e.sessions {
		if old.shard == shard && old.count == count && old.conn == nil {
			e.dropSessionLocked(old)
		}
	}
	s := &session{id: randomString(32), shard: shard, count: count, intents: *id.Intents,
		conn: c, compression: c.comp, identified: now}
	e.sessions[s.id] = s
	c.sess = s
	rec.SessionID = s.id
	e.rec.setPayload(c.recIdx, *rec)

	owned := e.ownedGuildsLocked(shard, count)
	stubs := make([]any, 0, len(owned))
	for _, g := range owned {
		stubs = append(stubs, map[string]any{"id": g.g.ID, "unavailable": true})
	}
	e.dispatchLocked(s, "READY", map[string]any{
		"v": 10, "user": readyUser(e.botUser()), "guilds": stubs, "session_id": s.id,
		"resume_gateway_url": e.GatewayURL(), "shard": []int{shard, count},
		"application":      map[string]any{"id": e.cfg.AppID, "flags": 0},
		"private_channels": []any{}, "relationships": []any{}, "presences": []any{},
		"session_type": "normal", "user_settings": map[string]any{}, "guild_join_requests": []any{},
		"geo_ordered_rtc_regions": []string{"emulated"}, "auth_session_id_hash": randomString(16),
	}, nil)
	s.ready = true
	if s.intents&intentGuilds != 0 {
		for _, g := range owned {
			e.dispatchLocked(s, "GUILD_CREATE", e.guildCreatePayloadLocked(g), nil)
		}
	}
	e.notifyLocked()
}

func readyUser(u User) map[string]any {
	p := userPayload(u)
	p["verified"] = true
	p["mfa_enabled"] = false
	p["email"] = nil
	return p
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       *int   `json:"seq"`
}

func (c *gwConn) resumeLocked(d json.RawMessage, rec *RecordedPayload) {
	e := c.e
	if c.sess != nil {
		c.closeLocked(CloseAlreadyAuthenticated, "")
		return
	}
	var rd resumeData
	if err := json.Unmarshal(d, &rd); err != nil {
		c.closeLocked(CloseDecodeError, "")
		return
	}
	if rd.Token != e.token {
		c.closeLocked(CloseAuthenticationFailed, "")
		return
	}
	s, ok := e.sessions[rd.SessionID]
	seq := 0
	if rd.Seq != nil {
		seq = *rd.Seq
	}
	if ok && seq > s.seq {
		e.dropSessionLocked(s)
		c.closeLocked(CloseInvalidSeq, "")
		return
	}
	// The dispatches the client missed must all still be buffered, else it cannot resume.
	var buf []bufferedDispatch
	if ok {
		buf = s.replayable(e.cfg.ReplayBuffer)
	}
	if ok && len(buf) > 0 && seq < buf[0].seq-1 {
		e.dropSessionLocked(s)
		ok = false
	}
	if !ok {
		c.sendLocked([]byte(`{"op":9,"s":null,"t":null,"d":false}`), nil)
		return
	}
	rec.Shard, rec.SessionID = s.shard, s.id
	e.rec.setPayload(c.recIdx, *rec)
	if old := s.conn; old != nil && old != c {
		old.sess = nil
		old.closing = true
		go old.kill()
	}
	s.conn = c
	c.sess = s
	s.resumes++
	s.replayed = 0
	for _, b := range buf {
		if b.seq > seq {
			c.replayLocked(b.payload, b.onSent)
			s.replayed++
		}
	}
	e.dispatchLocked(s, "RESUMED", map[string]any{"_trace": []string{"discordemu"}}, nil)
	s.ready = true
	e.notifyLocked()
}

type voiceStateData struct {
	GuildID   Snowflake  `json:"guild_id"`
	ChannelID *Snowflake `json:"channel_id"`
	SelfMute  bool       `json:"self_mute"`
	SelfDeaf  bool       `json:"self_deaf"`
}

func (c *gwConn) voiceStateLocked(d json.RawMessage, now time.Time) {
	e := c.e
	s := c.sess
	var vd voiceStateData
	if err := json.Unmarshal(d, &vd); err != nil {
		c.closeLocked(CloseDecodeError, "")
		return
	}
	if ShardForGuild(vd.GuildID, s.count) != s.shard {
		e.recordErrorLocked(ProtocolError{At: now, Kind: ErrWrongShard, Shard: s.shard, GuildID: vd.GuildID,
			Detail: "guild belongs to shard " + itoa(ShardForGuild(vd.GuildID, s.count)) + " of " + itoa(s.count)})
		return
	}
	gs, ok := e.guilds[vd.GuildID]
	if !ok {
		e.recordErrorLocked(ProtocolError{At: now, Kind: ErrUnknownGuild, Shard: s.shard, GuildID: vd.GuildID, Detail: "op 4 for a guild the bot is not in"})
		return
	}
	var channel Snowflake
	if vd.ChannelID != nil {
		channel = *vd.ChannelID
	}
	if channel != 0 {
		ch, ok := gs.channels[channel]
		if !ok || !ch.Type.isVoice() {
			e.recordErrorLocked(ProtocolError{At: now, Kind: ErrUnknownChannel, Shard: s.shard, GuildID: vd.GuildID, Detail: "op 4 to channel " + channel.String() + ", not a voice channel of the guild"})
			return
		}
	}
	bot := e.cfg.BotUserID
	prev := gs.voice[bot]
	moved := channel != 0 && (prev == nil || prev.ChannelID != channel)
	// A bot's voice session ID is its gateway session ID.
	vs := &VoiceState{UserID: bot, ChannelID: channel, SessionID: s.id, SelfMute: vd.SelfMute, SelfDeaf: vd.SelfDeaf}
	if channel == 0 {
		delete(gs.voice, bot)
	} else {
		gs.voice[bot] = vs
	}
	if s.intents&intentGuildVoiceStates != 0 {
		e.dispatchLocked(s, "VOICE_STATE_UPDATE", e.voiceStatePayloadLocked(gs, vs, gs.members[bot]), nil)
	}
	if moved {
		e.dispatchLocked(s, "VOICE_SERVER_UPDATE", map[string]any{
			"token": randomString(16), "guild_id": gs.g.ID, "endpoint": e.cfg.VoiceEndpoint,
		}, nil)
	}
	e.notifyLocked()
}

// dispatchLocked sends an op 0 event on a session, buffering it for RESUME. If the session
// has no live connection the event waits in the buffer, as on Discord.
func (e *Emulator) dispatchLocked(s *session, t string, d any, onSent func(time.Time)) {
	s.seq++
	payload := mustJSON(map[string]any{"op": opDispatch, "s": s.seq, "t": t, "d": d})
	s.buf = append(s.buf, bufferedDispatch{seq: s.seq, payload: payload, onSent: onSent})
	// Trimming only at twice the bound keeps a dispatch O(1) amortized (copying a full
	// buffer on every dispatch was most of the emulator's CPU under load); replayable
	// still offers exactly the last ReplayBuffer dispatches.
	if len(s.buf) >= 2*e.cfg.ReplayBuffer {
		s.buf = append([]bufferedDispatch(nil), s.replayable(e.cfg.ReplayBuffer)...)
	}
	if s.conn != nil {
		s.conn.sendLocked(payload, onSent)
	}
}

func (e *Emulator) dropSessionLocked(s *session) {
	delete(e.sessions, s.id)
	if s.conn != nil && s.conn.sess == s {
		s.conn.sess = nil
	}
	s.conn = nil
	s.ready = false
	e.notifyLocked()
}

// ownersLocked returns the live sessions whose shard owns the guild.
func (e *Emulator) ownersLocked(guildID Snowflake) []*session {
	var out []*session
	for _, s := range e.sessions {
		if ShardForGuild(guildID, s.count) == s.shard {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].identified.Before(out[j].identified) })
	return out
}

func (e *Emulator) ownedGuildsLocked(shard, count int) []*guildState {
	var out []*guildState
	for _, g := range e.guilds {
		if ShardForGuild(g.g.ID, count) == shard {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].g.ID < out[j].g.ID })
	return out
}

// Sessions describes the current gateway sessions, for tests.
func (e *Emulator) Sessions() []SessionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]SessionInfo, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, sessionInfo(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out
}

func sessionInfo(s *session) SessionInfo {
	return SessionInfo{ID: s.id, Shard: s.shard, ShardCount: s.count, Intents: s.intents, Seq: s.seq,
		Connected: s.conn != nil, Ready: s.ready && s.conn != nil, Resumes: s.resumes, Replayed: s.replayed, Compression: s.compression}
}

// WaitReady waits until a session for shard is connected and has been sent READY or
// RESUMED, and returns it.
func (e *Emulator) WaitReady(ctx context.Context, shard int) (SessionInfo, error) {
	var info SessionInfo
	err := e.waitFor(ctx, func() bool {
		for _, s := range e.sessions {
			if s.shard == shard && s.conn != nil && s.ready {
				info = sessionInfo(s)
				return true
			}
		}
		return false
	})
	return info, err
}

// WaitSession waits until some session satisfies cond.
func (e *Emulator) WaitSession(ctx context.Context, cond func(SessionInfo) bool) (SessionInfo, error) {
	var info SessionInfo
	err := e.waitFor(ctx, func() bool {
		for _, s := range e.sessions {
			if cond(sessionInfo(s)) {
				info = sessionInfo(s)
				return true
			}
		}
		return false
	})
	return info, err
}

func itoa(i int) string { return strconv.Itoa(i) }
