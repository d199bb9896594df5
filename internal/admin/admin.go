// Package admin serves a node's operational HTTP endpoints: /healthz
// (liveness: the process answers), /readyz (readiness: every component the
// node needs to serve users is up, and which are not), /metrics, the routes
// other packages add (the status page), and, to
// loopback clients only, /debug/memstats and /debug/pprof/ (profile, trace, heap,
// allocs, goroutine, threadcreate, mutex, block) for load tests and
// profiling.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness tracks the state of the components a node needs. It is safe for
// concurrent use: components report from their own goroutines and actors.
type Readiness struct {
	mu    sync.Mutex
	comps map[string]Component
}

// Component is one component's state as /readyz reports it.
type Component struct {
	Ready  bool   `json:"ready"`
	Detail string `json:"detail,omitempty"`
}

// NewReadiness returns a tracker with the named components not ready, so a
// component that never reports keeps the node unready.
func NewReadiness(names ...string) *Readiness {
	r := &Readiness{comps: make(map[string]Component, len(names))}
	for _, n := range names {
		r.comps[n] = Component{Detail: "starting"}
	}
	return r
}

// Set records a component's state.
func (r *Readiness) Set(name string, ready bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.comps[name] = Component{Ready: ready, Detail: detail}
}

// Report is the /readyz body.
type Report struct {
	Ready      bool                 `json:"ready"`
	Unready    []string             `json:"unready"`
	Components map[string]Component `json:"components"`
}

// Snapshot returns the current report.
func (r *Readiness) Snapshot() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Ready: true, Unready: []string{}, Components: make(map[string]Component, len(r.comps))}
	for n, c := range r.comps {
		rep.Components[n] = c
		if !c.Ready {
			rep.Ready = false
			rep.Unready = append(rep.Unready, n)
		}
	}
	sort.Strings(rep.Unready)
	return rep
}

// Handler routes the admin endpoints; more adds routes of other packages
// (the status page).
func Handler(g prometheus.Gatherer, r *Readiness, more ...func(*http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		rep := r.Snapshot()
		w.Header().Set("Content-Type", "application/json")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	registerDebug(mux)
	for _, add := range more {
		add(mux)
	}
	return mux
}

// Server is a running admin HTTP server.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Serve listens on addr and serves h until Shutdown.
func Serve(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		addr: l.Addr(),
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.addr.String() }

// Shutdown stops accepting requests and waits for running ones until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return <-s.done
}
