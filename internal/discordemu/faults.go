package discordemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Reconnect sends op 7 RECONNECT on every live connection of the shard. The session stays
// resumable; dispatches made before the client resumes are replayed to it.
func (e *Emulator) Reconnect(shard int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.sessions {
		if s.shard == shard && s.conn != nil {
			s.conn.sendLocked([]byte(`{"op":7,"s":null,"t":null,"d":null}`), nil)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: shard %d", ErrNotConnected, shard)
	}
	return nil
}

// RequestHeartbeat sends op 1 to the shard: Discord may ask for a heartbeat at any time
// and the client must answer at once.
func (e *Emulator) RequestHeartbeat(shard int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.sessions {
		if s.shard == shard && s.conn != nil {
			s.conn.sendLocked([]byte(`{"op":1,"s":null,"t":null,"d":null}`), nil)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: shard %d", ErrNotConnected, shard)
	}
	return nil
}

// InvalidateSession sends op 9 INVALID SESSION on the shard. When resumable is false the
// session is forgotten, so the client must identify again.
func (e *Emulator) InvalidateSession(shard int, resumable bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	payload := []byte(`{"op":9,"s":null,"t":null,"d":false}`)
	if resumable {
		payload = []byte(`{"op":9,"s":null,"t":null,"d":true}`)
	}
	n := 0
	for _, s := range e.sessions {
		if s.shard == shard && s.conn != nil {
			s.conn.sendLocked(payload, nil)
			if !resumable {
				e.dropSessionLocked(s)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: shard %d", ErrNotConnected, shard)
	}
	return nil
}

// CloseShard closes the shard's connections with a gateway close code. Codes after which
// Discord will not resume (4007, 4009, and the fatal ones) also end the session.
func (e *Emulator) CloseShard(shard, code int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.sessions {
		if s.shard == shard && s.conn != nil {
			c := s.conn
			if closeEndsSession(code) {
				e.dropSessionLocked(s)
			}
			c.closeLocked(code, "")
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: shard %d", ErrNotConnected, shard)
	}
	return nil
}

// RateLimit describes 429 answers to inject.
type RateLimit struct {
	Method     string        // "" matches any method
	Path       string        // pattern without /api/v10, "{x}" or "*" match one segment, "/**" the rest; "" matches all
	Count      int           // how many requests to refuse; default 1
	RetryAfter time.Duration // default 1 s; Retry-After is sent rounded up to whole seconds
	Global     bool
	Scope      string // "user" (default), "shared" or "global"
	Bucket     string // X-RateLimit-Bucket; default derived from the pattern
}

type rateLimitRule struct {
	RateLimit
	left int
}

// RateLimitNext makes the next matching requests fail with 429 and Discord's headers.
func (e *Emulator) RateLimitNext(rl RateLimit) {
	if rl.Count <= 0 {
		rl.Count = 1
	}
	if rl.RetryAfter <= 0 {
		rl.RetryAfter = time.Second
	}
	if rl.Scope == "" {
		rl.Scope = "user"
		if rl.Global {
			rl.Scope = "global"
		}
	}
	if rl.Bucket == "" {
		sum := sha256.Sum256([]byte(rl.Method + " " + rl.Path))
		rl.Bucket = hex.EncodeToString(sum[:16])
	}
	e.mu.Lock()
	e.rateLimits = append(e.rateLimits, &rateLimitRule{RateLimit: rl, left: rl.Count})
	e.mu.Unlock()
}

// PendingRateLimits is how many injected 429s have not been served yet.
func (e *Emulator) PendingRateLimits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.rateLimits {
		n += r.left
	}
	return n
}

// takeRateLimit serves an injected 429 if one matches. Global limits do not apply to
// interaction callbacks and webhook-token routes (botAuth false), as on Discord.
func (e *Emulator) takeRateLimit(w http.ResponseWriter, method, path string, botAuth bool) bool {
	e.mu.Lock()
	var hit *rateLimitRule
	for _, r := range e.rateLimits {
		if r.Global && !botAuth {
			continue
		}
		if r.left > 0 && (r.Method == "" || r.Method == method) && (r.Path == "" || matchPath(r.Path, path)) {
			r.left--
			hit = r
			break
		}
	}
	e.mu.Unlock()
	if hit == nil {
		return false
	}
	writeRateLimited(w, hit.RateLimit)
	return true
}

// ServerError describes 5xx answers to inject: Discord's front end answers 500, 502,
// 503 or 504 now and then, sometimes after the request took effect.
type ServerError struct {
	Method string // "" matches any method
	Path   string // as in RateLimit
	Count  int    // how many requests to fail; default 1
	Status int    // default 502
	// AfterHandling handles the request first and answers the error instead of its
	// response, as when the answer is lost on its way back: a client that retries
	// must not do twice what was done.
	AfterHandling bool
}

type serverErrorRule struct {
	ServerError
	left int
}

// FailNext makes the next matching requests fail with a 5xx.
func (e *Emulator) FailNext(se ServerError) {
	if se.Count <= 0 {
		se.Count = 1
	}
	if se.Status == 0 {
		se.Status = http.StatusBadGateway
	}
	e.mu.Lock()
	e.serverErrors = append(e.serverErrors, &serverErrorRule{ServerError: se, left: se.Count})
	e.mu.Unlock()
}

// takeServerError finds an injected 5xx for the request, if one matches.
func (e *Emulator) takeServerError(method, path string) *ServerError {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.serverErrors {
		if r.left > 0 && (r.Method == "" || r.Method == method) && (r.Path == "" || matchPath(r.Path, path)) {
			r.left--
			se := r.ServerError
			return &se
		}
	}
	return nil
}

func writeServerError(w http.ResponseWriter, status int) {
	writeJSON(w, status, map[string]any{"message": fmt.Sprintf("%d: %s", status, http.StatusText(status)), "code": 0})
}

// discardWriter takes a handler's response when an injected 5xx replaces it.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// overGlobalLimit counts a bot-authenticated request against Config.GlobalRateLimit.
func (e *Emulator) overGlobalLimit(now time.Time) bool {
	if e.cfg.GlobalRateLimit <= 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cut := 0
	for cut < len(e.globalWindow) && now.Sub(e.globalWindow[cut]) >= time.Second {
		cut++
	}
	e.globalWindow = e.globalWindow[cut:]
	if len(e.globalWindow) >= e.cfg.GlobalRateLimit {
		return true
	}
	e.globalWindow = append(e.globalWindow, now)
	return false
}

func writeRateLimited(w http.ResponseWriter, hit RateLimit) {
	secs := hit.RetryAfter.Seconds()
	reset := float64(time.Now().Add(hit.RetryAfter).UnixMilli()) / 1000
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(secs))))
	h.Set("X-RateLimit-Scope", hit.Scope)
	if hit.Global {
		// Discord's global 429 carries no bucket: the limit is the bot's,
		// not a route's (the rate-limits topic's global example).
		h.Set("X-RateLimit-Global", "true")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"message": "You are being rate limited.", "retry_after": secs, "global": true,
		})
		return
	}
	h.Set("X-RateLimit-Limit", "5")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(reset, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", strconv.FormatFloat(secs, 'f', 3, 64))
	h.Set("X-RateLimit-Bucket", hit.Bucket)
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"message": "You are being rate limited.", "retry_after": secs, "global": false,
	})
}

// WaitRequests waits until n recorded requests match method and pattern and returns them.
func (e *Emulator) WaitRequests(ctx context.Context, method, pattern string, n int) ([]RecordedRequest, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if got := e.rec.RequestsMatching(method, pattern); len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
