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
//
// Config.MaxRecorded bounds it for load runs, where keeping every request would grow the
// emulator's heap (and its GC work, which shows in the latencies it measures) for nothing.
type Recorder struct {
	// max is Config.MaxRecorded: 0 keeps everything, a negative value records nothing,
	// a positive one keeps the newest max of each kind.
	max      int
	mu       sync.Mutex
	requests []RecordedRequest
	payloads []RecordedPayload
	// droppedPayloads counts payloads trimmed from the front, so the indices addPayload
	// hands out stay valid for setPayload after a trim.
	droppedPayloads int
}

func (r *Recorder) addRequest(rq RecordedRequest) {
	if r.max < 0 {
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, rq)
	// Trimming only at twice the bound keeps recording O(1) amortized.
	if r.max > 0 && len(r.requests) >= 2*r.max {
		r.requests = append([]RecordedRequest(nil), r.requests[len(r.requests)-r.max:]...)
	}
	r.mu.Unlock()
}

// addPayload records p and returns its index, so the gateway can record a payload before
// answering it and fill in the shard and session once the payload is handled. The index is
// -1 when nothing is recorded.
func (r *Recorder) addPayload(p RecordedPayload) int {
	if r.max < 0 {
		return -1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.payloads = append(r.payloads, p)
	idx := r.droppedPayloads + len(r.payloads) - 1
	if r.max > 0 && len(r.payloads) >= 2*r.max {
		drop := len(r.payloads) - r.max
		r.payloads = append([]RecordedPayload(nil), r.payloads[drop:]...)
		r.droppedPayloads += drop
	}
	return idx
}

func (r *Recorder) setPayload(i int, p RecordedPayload) {
	if i < 0 {
		return
	}
	r.mu.Lock()
	if j := i - r.droppedPayloads; j >= 0 && j < len(r.payloads) {
		r.payloads[j] = p
	}
	r.mu.Unlock()
}

// Requests returns a copy of every REST request so far (the newest Config.MaxRecorded
// when that is positive).
func (r *Recorder) Requests() []RecordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.requests
	if r.max > 0 && len(reqs) > r.max {
		reqs = reqs[len(reqs)-r.max:]
	}
	return append([]RecordedRequest(nil), reqs...)
}

// Payloads returns a copy of every gateway payload the bot sent so far (the newest
// Config.MaxRecorded when that is positive).
func (r *Recorder) Payloads() []RecordedPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := r.payloads
	if r.max > 0 && len(ps) > r.max {
		ps = ps[len(ps)-r.max:]
	}
	return append([]RecordedPayload(nil), ps...)
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
