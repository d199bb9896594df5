// Package emuctl is a loopback HTTP control API over Discord emulators, so that a load
// driver in another process (cmd/loadgen) can create worlds, see when the bot is
// connected and has registered its commands, and run loads whose latencies are measured
// inside the emulator, next to the socket the bot reads.
//
// Each world is a fresh discordemu.Emulator on its own port: a driver that measures two
// bots one after the other gives each a world of its own, so neither sees the other's
// commands, messages or gateway sessions.
//
//	POST   /worlds            WorldSpec   → World
//	GET    /worlds/{id}                   → Status
//	POST   /worlds/{id}/load  LoadRequest → discordemu.LoadResult (when the load is done)
//	DELETE /worlds/{id}                   → 204
package emuctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// loadGatewayQueue is a load world's gateway queue and replay buffer: about 20 s of
// interactions at 3000/s (at most ~85 MB per connection).
const loadGatewayQueue = 65536

// Bounds on a world: a typo must not build a world that exhausts the machine.
const (
	MaxGuilds  = 100000
	MaxMembers = 25
	MaxShards  = 64
)

// WorldSpec asks for a Discord emulator with Guilds load guilds (discordemu.AddLoadGuilds).
type WorldSpec struct {
	Guilds int `json:"guilds"`
	// Members per guild, all in the guild's voice channel. Default 1.
	Members int `json:"members,omitempty"`
	// Shards the emulator recommends and spreads the guilds over. Default 1.
	Shards int `json:"shards,omitempty"`
}

// World is a created world: where the bot connects, and with which token.
type World struct {
	ID         int    `json:"id"`
	RESTURL    string `json:"rest_url"`
	GatewayURL string `json:"gateway_url"`
	// Token is the emulator's bot token, a loopback-only fake credential the driver hands
	// to the bot process in its environment.
	Token  string `json:"token"`
	Guilds int    `json:"guilds"`
}

// Status is what a driver waits on before loading a world.
type Status struct {
	// ReadyShards counts connected gateway sessions that were sent READY.
	ReadyShards int `json:"ready_shards"`
	// Commands counts the registered global commands.
	Commands int `json:"commands"`
	// ProtocolErrors counts the emulator's ProtocolErrors by kind.
	ProtocolErrors map[string]int `json:"protocol_errors,omitempty"`
}

// LoadRequest runs spec over the world's guilds [From, To) (To 0: to the end).
type LoadRequest struct {
	discordemu.LoadSpec
	From int `json:"from,omitempty"`
	To   int `json:"to,omitempty"`
}

// Server holds the worlds. The zero value is not usable; use NewServer.
type Server struct {
	base discordemu.Config
	log  *slog.Logger

	mu     sync.Mutex
	closed bool
	next   int
	worlds map[int]*world
}

type world struct {
	emu    *discordemu.Emulator
	guilds []discordemu.LoadGuild
}

// NewServer makes worlds from base (its Addr, Shards and GatewayQueue are set per world).
func NewServer(base discordemu.Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{base: base, log: log, worlds: map[int]*world{}}
}

// Close closes every world.
func (s *Server) Close() {
	s.mu.Lock()
	ws := s.worlds
	s.worlds, s.closed = map[int]*world{}, true
	s.mu.Unlock()
	for _, w := range ws {
		w.emu.Close()
	}
}

// Handler serves the control API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /worlds", s.create)
	mux.HandleFunc("GET /worlds/{id}", s.status)
	mux.HandleFunc("POST /worlds/{id}/load", s.load)
	mux.HandleFunc("DELETE /worlds/{id}", s.remove)
	return mux
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var spec WorldSpec
	if !decode(w, r, &spec) {
		return
	}
	spec.Members, spec.Shards = max(spec.Members, 1), max(spec.Shards, 1)
	if spec.Guilds < 0 || spec.Guilds > MaxGuilds || spec.Members > MaxMembers || spec.Shards > MaxShards {
		httpError(w, http.StatusBadRequest, fmt.Errorf("world of %d guilds, %d members, %d shards: out of bounds (%d, %d, %d)",
			spec.Guilds, spec.Members, spec.Shards, MaxGuilds, MaxMembers, MaxShards))
		return
	}
	cfg := s.base
	cfg.Addr = "127.0.0.1:0"
	cfg.Shards = spec.Shards
	// READY is followed by one GUILD_CREATE per guild at once. Beyond that, a load world
	// lets a bot that does not keep up fall seconds behind (its interactions then wait,
	// and expire, as users' would) rather than dropping its connection after a backlog
	// of a second or two, which would make one stall of the bot's process cost tens of
	// thousands of interactions; a drop still resumes with everything it missed.
	cfg.GatewayQueue = max(cfg.GatewayQueue, spec.Guilds/spec.Shards+4096, loadGatewayQueue)
	cfg.ReplayBuffer = max(cfg.ReplayBuffer, loadGatewayQueue)
	// The world outlives this request: it ends with DELETE or Close.
	emu, err := discordemu.Start(context.Background(), cfg)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	guilds, err := emu.AddLoadGuilds(spec.Guilds, spec.Members)
	if err != nil {
		emu.Close()
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		emu.Close()
		httpError(w, http.StatusServiceUnavailable, errors.New("shutting down"))
		return
	}
	s.next++
	id := s.next
	s.worlds[id] = &world{emu: emu, guilds: guilds}
	s.mu.Unlock()
	s.log.Info("world created", "id", id, "guilds", spec.Guilds, "rest_url", emu.RESTURL())
	writeJSON(w, http.StatusCreated, World{ID: id, RESTURL: emu.RESTURL(), GatewayURL: emu.GatewayURL(), Token: emu.Token(), Guilds: len(guilds)})
}

func (s *Server) world(w http.ResponseWriter, r *http.Request) (*world, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	wd, ok := s.worlds[id]
	s.mu.Unlock()
	if err != nil || !ok {
		httpError(w, http.StatusNotFound, fmt.Errorf("no world %q", r.PathValue("id")))
		return nil, false
	}
	return wd, true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	wd, ok := s.world(w, r)
	if !ok {
		return
	}
	st := Status{Commands: len(wd.emu.Commands(0))}
	for _, si := range wd.emu.Sessions() {
		if si.Ready {
			st.ReadyShards++
		}
	}
	for _, pe := range wd.emu.Errors() {
		if st.ProtocolErrors == nil {
			st.ProtocolErrors = map[string]int{}
		}
		st.ProtocolErrors[pe.Kind]++
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) load(w http.ResponseWriter, r *http.Request) {
	wd, ok := s.world(w, r)
	if !ok {
		return
	}
	var req LoadRequest
	if !decode(w, r, &req) {
		return
	}
	to := req.To
	if to == 0 {
		to = len(wd.guilds)
	}
	if req.From < 0 || to > len(wd.guilds) || req.From >= to {
		httpError(w, http.StatusBadRequest, fmt.Errorf("guild range [%d, %d) of %d guilds", req.From, to, len(wd.guilds)))
		return
	}
	// The driver's connection carries the run: if it goes away, the load stops.
	res, err := wd.emu.RunLoad(r.Context(), wd.guilds[req.From:to], req.LoadSpec)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	wd, ok := s.world(w, r)
	if !ok {
		return
	}
	id, _ := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	delete(s.worlds, id)
	s.mu.Unlock()
	wd.emu.Close()
	w.WriteHeader(http.StatusNoContent)
}

// maxBody bounds a request body: specs are small.
const maxBody = 1 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

type errorBody struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen serves s on addr, which must be a loopback address, until ctx ends.
func Listen(ctx context.Context, addr string, s *Server) (net.Addr, <-chan error, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("emuctl: bad address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, nil, fmt.Errorf("emuctl: refusing to listen on non-loopback address %q", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("emuctl: listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// A load in progress holds its request open; it ends with its context anyway.
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	return ln.Addr(), done, nil
}
