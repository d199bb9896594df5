package lavalinkemu

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	// Lavalink accepts any origin; clients are bots, not browsers.
	CheckOrigin: func(*http.Request) bool { return true },
}

const writeTimeout = 10 * time.Second

// wsConn owns one websocket. gorilla allows one writer at a time, so every
// message goes through a queue drained by a single writer goroutine; the
// queue is unbounded so that senders, which hold the emulator lock, never
// block on a slow or hung client.
type wsConn struct {
	c       *websocket.Conn
	session *session // guarded by Emulator.mu

	mu    sync.Mutex
	queue [][]byte
	wake  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (c *wsConn) enqueue(b []byte) {
	c.mu.Lock()
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// kill drops the TCP connection without a close frame, like a crashed node or
// a broken network would.
func (c *wsConn) kill() {
	c.once.Do(func() {
		close(c.done)
		_ = c.c.NetConn().Close()
	})
}

func (e *Emulator) handleWebsocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, r, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' is not supported")
		return
	}
	// HandshakeInterceptorImpl rejects with a bare status and no body.
	if r.Header.Get("Authorization") != e.cfg.Password {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	userID, err := strconv.ParseUint(r.Header.Get("User-Id"), 10, 64)
	if err != nil || userID == 0 {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	clientName := r.Header.Get("Client-Name")

	// Claim the session before upgrading so that the Session-Resumed header
	// and the ready message agree even if the timeout fires in between.
	e.mu.Lock()
	var resumable *session
	if sid := r.Header.Get("Session-Id"); sid != "" {
		resumable = e.claimLocked(sid)
	}
	e.mu.Unlock()

	hdr := http.Header{}
	hdr.Set("Session-Resumed", strconv.FormatBool(resumable != nil))
	hdr.Set(apiVersionHeader, "4")
	conn, err := upgrader.Upgrade(w, r, hdr)

	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil || !e.running {
		if conn != nil {
			_ = conn.Close()
		}
		if resumable != nil {
			e.unclaimLocked(resumable)
		}
		return
	}
	c := &wsConn{c: conn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	e.conns[c] = struct{}{}
	if resumable != nil && !resumable.dead {
		e.resumeLocked(resumable, c)
	} else {
		s := e.newSessionLocked(userID, clientName)
		s.conn, c.session = c, s
		s.send(readyMsg{Op: "ready", Resumed: false, SessionID: s.id})
		// StatsTask starts with no initial delay.
		s.send(e.statsLocked(true))
	}
	e.bg.Add(2)
	go e.writeLoop(c)
	go e.readLoop(c)
}

func (e *Emulator) writeLoop(c *wsConn) {
	defer e.bg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, b := range batch {
				if !e.waitUnhung(c) {
					return
				}
				_ = c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
				if err := c.c.WriteMessage(websocket.TextMessage, b); err != nil {
					c.kill()
					return
				}
			}
		}
	}
}

// waitUnhung holds outgoing messages while the node hangs; they go out in
// order once it answers again.
func (e *Emulator) waitUnhung(c *wsConn) bool {
	e.mu.Lock()
	hang := e.hang
	e.mu.Unlock()
	if hang == nil {
		return true
	}
	select {
	case <-hang:
		return true
	case <-c.done:
		return false
	}
}

// readLoop discards what the client sends (Lavalink v4 takes no websocket
// messages) and turns the end of the connection into a session close.
func (e *Emulator) readLoop(c *wsConn) {
	defer e.bg.Done()
	for {
		if _, _, err := c.c.ReadMessage(); err != nil {
			break
		}
	}
	c.kill()
	e.mu.Lock()
	e.connClosedLocked(c)
	e.mu.Unlock()
}
