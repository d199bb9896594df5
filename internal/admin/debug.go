package admin

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"
)

// MemStats is the /debug/memstats body: the figures a load driver divides by the number
// of actors it activated.
type MemStats struct {
	// GC is set when collections ran just before the figures were read (?gc=1), so
	// HeapAlloc is the live heap, sync.Pool caches left out.
	GC          bool   `json:"gc"`
	HeapAlloc   uint64 `json:"heap_alloc"`
	HeapInuse   uint64 `json:"heap_inuse"`
	HeapObjects uint64 `json:"heap_objects"`
	StackInuse  uint64 `json:"stack_inuse"`
	Sys         uint64 `json:"sys"`
	NumGC       uint32 `json:"num_gc"`
	Goroutines  int    `json:"goroutines"`
}

// Bounds of a CPU profile's duration.
const (
	defaultProfileSeconds = 30
	maxProfileSeconds     = 120
)

// registerDebug adds the runtime diagnostics: /debug/memstats and a few pprof profiles
// (written with runtime/pprof rather than by importing net/http/pprof, whose init
// registers the handlers on http.DefaultServeMux for anything that serves it).
//
// They answer only requests from a loopback address, whatever address the admin server
// binds: profiles reveal the process's internals, and a CPU profile or a forced GC costs
// the node CPU. From elsewhere they do not exist (404).
func registerDebug(mux *http.ServeMux) {
	mux.Handle("GET /debug/memstats", loopbackOnly(http.HandlerFunc(memStats)))
	mux.Handle("GET /debug/pprof/profile", loopbackOnly(http.HandlerFunc(cpuProfile)))
	mux.Handle("GET /debug/pprof/trace", loopbackOnly(http.HandlerFunc(execTrace)))
	mux.Handle("GET /debug/pprof/{name}", loopbackOnly(http.HandlerFunc(namedProfile)))
}

func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func memStats(w http.ResponseWriter, r *http.Request) {
	gc := r.URL.Query().Get("gc") == "1"
	if gc {
		// Twice: a collection moves sync.Pool caches (gzip writers of /metrics,
		// encoders, buffers) aside and only the next one frees them. After one,
		// whether a pool was used in the last cycle moved a 10,000-guild idle
		// sample by up to 200 B per guild.
		runtime.GC()
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(MemStats{
		GC: gc, HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, HeapObjects: ms.HeapObjects,
		StackInuse: ms.StackInuse, Sys: ms.Sys, NumGC: ms.NumGC, Goroutines: runtime.NumGoroutine(),
	})
}

// cpuProfile writes a CPU profile of ?seconds=N (default 30, at most 120), in the format
// `go tool pprof` reads.
func cpuProfile(w http.ResponseWriter, r *http.Request) {
	record(w, r, "profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// execTrace writes an execution trace of ?seconds=N (default 30, at most 120), which
// `go tool trace` reads: where a latency tail comes from (goroutines runnable but not
// running, GC, syscalls) shows there and not in a CPU profile.
func execTrace(w http.ResponseWriter, r *http.Request) {
	record(w, r, "trace", trace.Start, trace.Stop)
}

// record runs start, waits ?seconds=N (or until the client leaves), and runs stop.
func record(w http.ResponseWriter, r *http.Request, name string, start func(io.Writer) error, stop func()) {
	secs := defaultProfileSeconds
	if s := r.URL.Query().Get("seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxProfileSeconds {
			http.Error(w, "seconds must be 1 to "+strconv.Itoa(maxProfileSeconds), http.StatusBadRequest)
			return
		}
		secs = n
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if err := start(w); err != nil {
		// Nothing is written yet: one recording runs at a time, and this is the second.
		w.Header().Del("Content-Disposition")
		http.Error(w, "cannot record: "+err.Error(), http.StatusConflict)
		return
	}
	select {
	case <-time.After(time.Duration(secs) * time.Second):
	case <-r.Context().Done():
	}
	stop()
}

// profiles lists what /debug/pprof/{name} serves; ?gc=1 collects before a heap profile,
// ?debug=N selects the text forms (goroutine?debug=2: every stack).
var profiles = map[string]bool{"heap": true, "allocs": true, "goroutine": true, "threadcreate": true, "mutex": true, "block": true}

func namedProfile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if !profiles[name] || p == nil {
		http.NotFound(w, r)
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if name == "heap" && r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	_ = p.WriteTo(w, debug)
}
