package admin

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/trace"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func debugGet(t *testing.T, remote, target string) *httptest.ResponseRecorder {
	t.Helper()
	h := Handler(prometheus.NewRegistry(), NewReadiness())
	rq := httptest.NewRequest("GET", target, nil)
	rq.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, rq)
	return rec
}

func TestMemStatsAfterGC(t *testing.T) {
	rec := debugGet(t, "127.0.0.1:5555", "/debug/memstats?gc=1")
	if rec.Code != 200 {
		t.Fatalf("memstats: %d %s", rec.Code, rec.Body)
	}
	var ms MemStats
	if err := json.Unmarshal(rec.Body.Bytes(), &ms); err != nil {
		t.Fatal(err)
	}
	if !ms.GC || ms.NumGC == 0 || ms.HeapAlloc == 0 || ms.Goroutines < 1 {
		t.Fatalf("memstats %+v; want a collection counted, a heap and goroutines", ms)
	}
	// What a sync.Pool keeps is not live: one collection only moves it aside.
	var pool sync.Pool
	buf := make([]byte, 64<<20)
	pool.Put(&buf)
	rec = debugGet(t, "127.0.0.1:5555", "/debug/memstats?gc=1")
	runtime.KeepAlive(&pool)
	if err := json.Unmarshal(rec.Body.Bytes(), &ms); err != nil {
		t.Fatal(err)
	}
	if ms.HeapAlloc >= 64<<20 {
		t.Fatalf("heap %d B after ?gc=1 counts a pooled 64 MiB buffer", ms.HeapAlloc)
	}
	// Without gc=1 no collection is forced.
	rec = debugGet(t, "[::1]:5555", "/debug/memstats")
	if err := json.Unmarshal(rec.Body.Bytes(), &ms); err != nil {
		t.Fatal(err)
	}
	if ms.GC {
		t.Fatalf("memstats without gc=1 says it collected: %+v", ms)
	}
}

func TestDebugOnlyFromLoopback(t *testing.T) {
	for _, target := range []string{"/debug/memstats", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1", "/debug/pprof/goroutine?debug=1"} {
		if rec := debugGet(t, "192.0.2.7:4444", target); rec.Code != http.StatusNotFound {
			t.Errorf("%s from 192.0.2.7: %d, want 404", target, rec.Code)
		}
	}
}

func TestProfiles(t *testing.T) {
	// Binary profiles are gzipped protobuf, as go tool pprof reads them.
	rec := debugGet(t, "127.0.0.1:1", "/debug/pprof/heap?gc=1")
	if rec.Code != 200 {
		t.Fatalf("heap: %d", rec.Code)
	}
	if _, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes())); err != nil {
		t.Fatalf("heap profile is not gzipped protobuf: %v", err)
	}
	rec = debugGet(t, "127.0.0.1:1", "/debug/pprof/goroutine?debug=1")
	if b, _ := io.ReadAll(rec.Body); rec.Code != 200 || !bytes.Contains(b, []byte("goroutine profile:")) {
		t.Fatalf("goroutine?debug=1: %d %.100s", rec.Code, b)
	}
	for _, target := range []string{"/debug/pprof/cmdline", "/debug/pprof/nosuch"} {
		if rec := debugGet(t, "127.0.0.1:1", target); rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", target, rec.Code)
		}
	}
	for _, target := range []string{"/debug/pprof/profile?seconds=0", "/debug/pprof/profile?seconds=121", "/debug/pprof/profile?seconds=x", "/debug/pprof/trace?seconds=0"} {
		if rec := debugGet(t, "127.0.0.1:1", target); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", target, rec.Code)
		}
	}
}

func TestCPUProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second")
	}
	rec := debugGet(t, "127.0.0.1:1", "/debug/pprof/profile?seconds=1")
	if rec.Code != 200 {
		t.Fatalf("profile: %d %s", rec.Code, rec.Body)
	}
	if _, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes())); err != nil {
		t.Fatalf("CPU profile is not gzipped protobuf: %v", err)
	}
}

func TestExecTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second")
	}
	rec := debugGet(t, "127.0.0.1:1", "/debug/pprof/trace?seconds=1")
	// An execution trace starts with its version header ("go 1.26 trace").
	if rec.Code != 200 || !bytes.HasPrefix(rec.Body.Bytes(), []byte("go 1.")) {
		t.Fatalf("trace: %d %.40q", rec.Code, rec.Body.Bytes())
	}
	// One trace at a time: a second one is refused, not mixed into the first.
	if err := trace.Start(io.Discard); err != nil {
		t.Fatal(err)
	}
	defer trace.Stop()
	if rec := debugGet(t, "127.0.0.1:1", "/debug/pprof/trace?seconds=1"); rec.Code != http.StatusConflict {
		t.Fatalf("a trace while another runs: %d, want 409", rec.Code)
	}
}
