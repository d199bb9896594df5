package discordemu

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// RecordedRequest is one REST call the bot made, with the emulator's answer.
type RecordedRequest struct {
	At     time.Time
	Method string
	Path   string // without the /api/v10 prefix
	Query  string
	Header http.Header
	Body   []byte
	Status int
}

// RecordedPayload is one gateway payload the bot sent.
type RecordedPayload struct {
	At        time.Time
	Shard     int // -1 before IDENTIFY or RESUME told us which shard this connection is
	SessionID string
	Op        int
	Data      json.RawMessage
}

// Recorder keeps everything the bot sent, in arrival order, so tests can assert on what
// actually went over the wire and benchmarks can measure latencies from the timestamps.
type Recorder struct {
	mu       sync.Mutex
	requests []RecordedRequest
	payloads []RecordedPayload
}

func (r *Recorder) addRequest(rq RecordedRequest) {
	r.mu.Lock()
	r.requests = append(r.requests, rq)
	r.mu.Unlock()
}

// addPayload records p and returns its index, so the gateway can record a payload before
// answering it and fill in the shard and session once the payload is handled.
func (r *Recorder) addPayload(p RecordedPayload) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.payloads = append(r.payloads, p)
	return len(r.payloads) - 1
}

func (r *Recorder) setPayload(i int, p RecordedPayload) {
	r.mu.Lock()
	r.payloads[i] = p
	r.mu.Unlock()
}

// Requests returns a copy of every REST request so far.
func (r *Recorder) Requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecordedRequest(nil), r.requests...)
}

// Payloads returns a copy of every gateway payload the bot sent so far.
func (r *Recorder) Payloads() []RecordedPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecordedPayload(nil), r.payloads...)
}

// PayloadsWithOp returns the gateway payloads with the given opcode.
func (r *Recorder) PayloadsWithOp(op int) []RecordedPayload {
	var out []RecordedPayload
	for _, p := range r.Payloads() {
		if p.Op == op {
			out = append(out, p)
		}
	}
	return out
}

// RequestsMatching returns the REST requests with the given method whose path matches
// pattern, where a pattern segment "*" matches any one segment.
func (r *Recorder) RequestsMatching(method, pattern string) []RecordedRequest {
	var out []RecordedRequest
	for _, rq := range r.Requests() {
		if (method == "" || rq.Method == method) && matchPath(pattern, rq.Path) {
			out = append(out, rq)
		}
	}
	return out
}
