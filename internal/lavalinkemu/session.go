package lavalinkemu

import (
	"crypto/rand"
	"encoding/json"
	"runtime"
	"sort"
	"time"
)

// defaultResumeTimeout is SocketContext.resumeTimeout's initial value (s).
const defaultResumeTimeout = 60

// maxResumeQueue bounds the events buffered for a disconnected resumable
// session; Lavalink does not bound it, but a test that forgets to reconnect
// should not eat the machine's memory.
const maxResumeQueue = 100_000

type session struct {
	id         string
	userID     uint64
	clientName string
	conn       *wsConn // nil while disconnected
	resuming   bool
	timeout    int // seconds
	// paused: the websocket is gone but the session waits for a resume.
	paused bool
	// claimed: a handshake with this Session-Id is in progress; messages keep
	// queueing until the new socket is attached, and no second handshake may
	// take the session meanwhile.
	claimed bool
	queue   [][]byte
	expire  *time.Timer
	players map[uint64]*player
	done    chan struct{}
	dead    bool
}

const sessionIDChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// newSessionIDLocked mimics SocketServer.generateUniqueSessionId: 16 chars of
// [a-z0-9], unique among live sessions.
func (e *Emulator) newSessionIDLocked() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		for i := range b {
			b[i] = sessionIDChars[int(b[i])%len(sessionIDChars)]
		}
		if _, taken := e.sessions[string(b[:])]; !taken {
			return string(b[:])
		}
	}
}

func (e *Emulator) newSessionLocked(userID uint64, clientName string) *session {
	s := &session{
		id:         e.newSessionIDLocked(),
		userID:     userID,
		clientName: clientName,
		timeout:    defaultResumeTimeout,
		players:    map[uint64]*player{},
		done:       make(chan struct{}),
	}
	e.sessions[s.id] = s
	e.log.Debug("lavalinkemu: session created", "session", s.id, "client", clientName)
	e.bg.Add(1)
	go e.sessionLoop(s)
	return s
}

// send delivers a message now, or queues it while a resumable session waits
// for its client, as SocketContext.send does, and reports whether it did
// either. Callers hold e.mu, so messages leave in the order their causes
// happened.
func (s *session) send(msg any) bool {
	b, err := json.Marshal(msg)
	if err != nil {
		return false
	}
	switch {
	case s.conn != nil:
		s.conn.enqueue(b)
	case s.paused:
		if len(s.queue) >= maxResumeQueue {
			s.queue = s.queue[1:]
		}
		s.queue = append(s.queue, b)
	default:
		return false
	}
	return true
}

// connClosedLocked applies SocketServer.afterConnectionClosed: a resumable
// session waits timeout seconds for its client; any other is destroyed with
// its players at once.
func (e *Emulator) connClosedLocked(c *wsConn) {
	delete(e.conns, c)
	s := c.session
	if s == nil || s.conn != c || s.dead {
		return
	}
	s.conn = nil
	if !s.resuming || !e.running {
		e.destroySessionLocked(s)
		return
	}
	s.paused = true
	e.log.Debug("lavalinkemu: session waiting for resume", "session", s.id, "timeout_s", s.timeout)
	e.armExpiryLocked(s)
}

// armExpiryLocked starts the resume timeout of a paused session.
func (e *Emulator) armExpiryLocked(s *session) {
	if s.expire != nil {
		s.expire.Stop()
	}
	s.expire = time.AfterFunc(time.Duration(s.timeout)*time.Second, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if s.paused && !s.claimed && !s.dead {
			e.destroySessionLocked(s)
		}
	})
}

// claimLocked reserves a paused session for a resuming handshake.
func (e *Emulator) claimLocked(sid string) *session {
	s := e.sessions[sid]
	if s == nil || !s.paused || s.claimed || s.dead {
		return nil
	}
	s.claimed = true
	if s.expire != nil {
		s.expire.Stop()
	}
	return s
}

// unclaimLocked returns a session whose resuming handshake failed to waiting,
// with a fresh timeout.
func (e *Emulator) unclaimLocked(s *session) {
	s.claimed = false
	if s.dead {
		return
	}
	if !e.running {
		e.destroySessionLocked(s)
		return
	}
	e.armExpiryLocked(s)
}

// resumeLocked attaches a new websocket to a paused session: ready first
// (disgolink insists on it being the first message), then the buffered
// messages in order, then a playerUpdate per player, as SocketContext.resume.
func (e *Emulator) resumeLocked(s *session, c *wsConn) {
	if s.expire != nil {
		s.expire.Stop()
	}
	e.log.Debug("lavalinkemu: session resumed", "session", s.id, "replayed", len(s.queue))
	s.paused, s.claimed = false, false
	s.conn = c
	c.session = s
	s.send(readyMsg{Op: "ready", Resumed: true, SessionID: s.id})
	for _, b := range s.queue {
		c.enqueue(b)
	}
	s.queue = nil
	now := time.Now()
	for _, p := range s.sortedPlayers() {
		s.send(e.playerUpdateMsg(p, now))
	}
}

func (e *Emulator) destroySessionLocked(s *session) {
	if s.dead {
		return
	}
	s.dead = true
	e.log.Debug("lavalinkemu: session destroyed", "session", s.id, "players", len(s.players))
	s.paused = false
	s.queue = nil
	if s.expire != nil {
		s.expire.Stop()
	}
	// Lavalink destroys the players too; the TrackEnd events that causes have
	// no socket to go to.
	for _, p := range s.players {
		p.destroy()
	}
	s.players = map[uint64]*player{}
	delete(e.sessions, s.id)
	close(s.done)
}

func (s *session) sortedPlayers() []*player {
	ps := make([]*player, 0, len(s.players))
	for _, p := range s.players {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].guildID < ps[j].guildID })
	return ps
}

// sessionLoop sends the periodic messages of one session. Lavalink runs one
// playerUpdate schedule per playing player; one tick per session that covers
// every player with a track is indistinguishable to a client.
func (e *Emulator) sessionLoop(s *session) {
	defer e.bg.Done()
	stats := time.NewTicker(e.cfg.StatsInterval)
	defer stats.Stop()
	updates := time.NewTicker(e.cfg.PlayerUpdateInterval)
	defer updates.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-stats.C:
			e.mu.Lock()
			if !s.dead {
				s.send(e.statsLocked(true))
			}
			e.mu.Unlock()
		case <-updates.C:
			e.mu.Lock()
			if !s.dead {
				now := time.Now()
				for _, p := range s.sortedPlayers() {
					if p.track != nil {
						s.send(e.playerUpdateMsg(p, now))
					}
				}
			}
			e.mu.Unlock()
		}
	}
}

type readyMsg struct {
	Op        string `json:"op"`
	Resumed   bool   `json:"resumed"`
	SessionID string `json:"sessionId"`
}

type memoryStats struct {
	Free       int64 `json:"free"`
	Used       int64 `json:"used"`
	Allocated  int64 `json:"allocated"`
	Reservable int64 `json:"reservable"`
}

type cpuStats struct {
	Cores        int     `json:"cores"`
	SystemLoad   float64 `json:"systemLoad"`
	LavalinkLoad float64 `json:"lavalinkLoad"`
}

type frameStats struct {
	Sent    int `json:"sent"`
	Nulled  int `json:"nulled"`
	Deficit int `json:"deficit"`
}

// Stats is Lavalink's stats object as the websocket sends it (StatsEvent:
// op, and frameStats null when there are no players).
type Stats struct {
	Op             string      `json:"op,omitempty"`
	Players        int         `json:"players"`
	PlayingPlayers int         `json:"playingPlayers"`
	Uptime         int64       `json:"uptime"`
	Memory         memoryStats `json:"memory"`
	CPU            cpuStats    `json:"cpu"`
	FrameStats     *frameStats `json:"frameStats"`
}

// restStats is /v4/stats (StatsData): frameStats defaults to null there and
// Lavalink's JSON omits defaults, so the key is absent. The outer field hides
// the embedded one for encoding/json.
type restStats struct {
	Stats
	FrameStats *frameStats `json:"frameStats,omitempty"`
}

// framesPerMinute is what one playing player sends: 50 Opus frames a second.
const framesPerMinute = 3000

// statsLocked reports node-wide figures like StatsCollector. frameStats is
// nil over REST and when the node has no players, as in Lavalink.
func (e *Emulator) statsLocked(ws bool) Stats {
	st := Stats{
		Uptime: time.Since(e.started).Milliseconds(),
		Memory: memoryStats{Free: 200 << 20, Used: 56 << 20, Allocated: 256 << 20, Reservable: 4 << 30},
		CPU:    cpuStats{Cores: runtime.NumCPU(), SystemLoad: e.cpuLoad, LavalinkLoad: e.cpuLoad},
	}
	sending := 0
	for _, s := range e.sessions {
		for _, p := range s.players {
			st.Players++
			if p.track != nil && !p.paused {
				st.PlayingPlayers++
				if p.connected {
					sending++
				}
			}
		}
	}
	if ws {
		st.Op = "stats"
		if st.Players > 0 {
			sent := sending*framesPerMinute - e.deficit
			if sent < 0 {
				sent = 0
			}
			st.FrameStats = &frameStats{Sent: sent, Nulled: 0, Deficit: e.deficit}
		}
	}
	return st
}

// SessionInfo is a snapshot of one session, for assertions.
type SessionInfo struct {
	ID         string
	UserID     uint64
	ClientName string
	Connected  bool // a websocket is attached
	Resumable  bool // disconnected and waiting for a resume
	Resuming   bool
	Timeout    int
	Players    int
}

// Sessions returns every live session, sorted by ID.
func (e *Emulator) Sessions() []SessionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]SessionInfo, 0, len(e.sessions))
	for _, s := range e.sessions {
		out = append(out, SessionInfo{
			ID: s.id, UserID: s.userID, ClientName: s.clientName,
			Connected: s.conn != nil, Resumable: s.paused,
			Resuming: s.resuming, Timeout: s.timeout, Players: len(s.players),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (e *Emulator) sortedSessionIDsLocked() []string {
	ids := make([]string, 0, len(e.sessions))
	for id := range e.sessions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
