package lavalinkemu

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Request is one HTTP request the emulator received (REST calls and websocket
// handshakes alike), recorded before any fault or auth check so tests can
// assert on what the client really sent.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Query  url.Values
	// Header is a copy with Authorization redacted: recordings end up in test
	// logs, and the password must not.
	Header http.Header
	Body   []byte
}

// Redacted replaces the Authorization header value in recordings.
const Redacted = "[redacted]"

const maxRecordedBody = 1 << 20

type recorder struct {
	max  int
	mu   sync.Mutex
	reqs []Request
}

func (rc *recorder) record(r *http.Request) {
	if rc.max < 0 {
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxRecordedBody+1))
		// Handlers read the body again; give them the same bytes (and let an
		// oversized one fail there, as it would on the real server).
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		if len(body) > maxRecordedBody {
			body = body[:maxRecordedBody]
		}
	}
	h := r.Header.Clone()
	if _, ok := h["Authorization"]; ok {
		h["Authorization"] = []string{Redacted}
	}
	req := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: h, Body: body}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	// Trimming only at twice the bound keeps recording O(1) amortized.
	if rc.max > 0 && len(rc.reqs) >= 2*rc.max {
		rc.reqs = append([]Request(nil), rc.reqs[len(rc.reqs)-rc.max:]...)
	}
	rc.mu.Unlock()
}

// Requests returns a copy of every request recorded so far, oldest first.
// Recordings survive Kill and Restart.
func (e *Emulator) Requests() []Request {
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	reqs := e.rec.reqs
	if e.rec.max > 0 && len(reqs) > e.rec.max {
		reqs = reqs[len(reqs)-e.rec.max:]
	}
	return append([]Request(nil), reqs...)
}

// RequestsTo returns the recorded requests with the given method whose path
// starts with pathPrefix.
func (e *Emulator) RequestsTo(method, pathPrefix string) []Request {
	var out []Request
	for _, r := range e.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

// ResetRequests forgets all recorded requests.
func (e *Emulator) ResetRequests() {
	e.rec.mu.Lock()
	e.rec.reqs = nil
	e.rec.mu.Unlock()
}
