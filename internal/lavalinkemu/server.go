package lavalinkemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config configures an Emulator. Zero values mean Lavalink's defaults.
type Config struct {
	// Addr is the listen address; it must be a loopback address. Default
	// "127.0.0.1:0" (a free port, kept across Restart).
	Addr string
	// Password is what clients must send in the Authorization header.
	Password string
	// PlayerUpdateInterval is the wall-clock period of playerUpdate messages
	// (Lavalink's playerUpdateInterval, default 5 s).
	PlayerUpdateInterval time.Duration
	// StatsInterval is the wall-clock period of stats messages (60 s).
	StatsInterval time.Duration
	// Speed multiplies the playback clock: at 1000 a 3-minute track finishes
	// in 180 ms of wall time. Default 1.
	Speed float64
	// BrokenIdentifier, when non-empty, makes loadtracks answer loadType
	// "error" for exactly this identifier.
	BrokenIdentifier string
	// SearchResults is the number of tracks a search returns (default 5).
	SearchResults int
	// StuckThreshold is lavaplayer's trackStuckThreshold in track time
	// (default 10 s): a frozen player reports TrackStuckEvent after
	// StuckThreshold/Speed of wall time.
	StuckThreshold time.Duration
	// CleanupThreshold is lavaplayer's trackCleanupThreshold in track time
	// (default 60 s): a player that has a track but no voice connection for
	// that long ends it with reason "cleanup".
	CleanupThreshold time.Duration
	// Version is reported by /version and /v4/info (default DefaultVersion).
	// It is only reported: the behaviour is always Lavalink 4.2's.
	Version string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// MaxRecordedRequests bounds the recorder, dropping the oldest requests
	// (for load tests); 0 keeps everything, a negative value records nothing.
	MaxRecordedRequests int
	// MaxRecordedEvents bounds the player event log (PlayerEvents) the same
	// way: 0 keeps everything, a negative value records nothing.
	MaxRecordedEvents int
	// NoResume makes the node behave like a Lavalink-compatible server
	// without session resuming (NodeLink): PATCH /v4/sessions/{id} does not
	// exist (404), so every session is destroyed with its players as soon as
	// its websocket closes.
	NoResume bool
}

// DefaultVersion is the Lavalink release the emulator reports by default and
// whose behaviour it follows.
const DefaultVersion = "4.2.2"

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.PlayerUpdateInterval <= 0 {
		c.PlayerUpdateInterval = 5 * time.Second
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = time.Minute
	}
	if c.Speed <= 0 {
		c.Speed = 1
	}
	if c.SearchResults <= 0 {
		c.SearchResults = 5
	}
	if c.StuckThreshold <= 0 {
		c.StuckThreshold = 10 * time.Second
	}
	if c.CleanupThreshold <= 0 {
		c.CleanupThreshold = time.Minute
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Emulator is a running Lavalink v4 node. All methods are safe for concurrent
// use.
type Emulator struct {
	cfg    Config
	cat    catalogue
	rec    recorder
	events eventLog
	log    *slog.Logger

	// mu guards everything below and all session and player state: one lock
	// keeps event order identical to the order of the changes that cause them.
	mu       sync.Mutex
	addr     string
	ln       net.Listener
	srv      *http.Server
	running  bool
	closed   bool
	down     chan struct{} // closed when this "process" dies; releases hung requests
	started  time.Time
	sessions map[string]*session
	conns    map[*wsConn]struct{}
	hang     chan struct{} // non-nil while hanging; closed on release
	hangStop *time.Timer
	failN    int
	failCode int
	cpuLoad  float64
	deficit  int
	// trackFaults are the FailWhenPlayed/StickWhenPlayed rules by track
	// identifier. Like the recorder they belong to the test and survive
	// Restart.
	trackFaults map[string]trackFault
	bg          sync.WaitGroup // session loops and websocket goroutines
}

// Start listens on cfg.Addr and serves until Close or until ctx is done.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg = cfg.withDefaults()
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("lavalinkemu: bad Addr %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("lavalinkemu: Addr %q is not a loopback address", cfg.Addr)
	}
	e := &Emulator{
		cfg:         cfg,
		cat:         newCatalogue(cfg),
		log:         cfg.Logger,
		addr:        cfg.Addr,
		rec:         recorder{max: cfg.MaxRecordedRequests},
		events:      eventLog{max: cfg.MaxRecordedEvents, changed: make(chan struct{})},
		trackFaults: map[string]trackFault{},
	}
	if err := e.boot(); err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, e.Close)
	return e, nil
}

// boot starts a fresh "process": new listener on the same address, no
// sessions, no node faults. The recorder, the event log, the track fault
// rules and the synthetic load survive, because they belong to the test, not
// to the node.
func (e *Emulator) boot() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("lavalinkemu: emulator is closed")
	}
	if e.running {
		return errors.New("lavalinkemu: already running")
	}
	var ln net.Listener
	var err error
	// The old socket may linger for a moment after Kill; the port is ours, so
	// retrying briefly is enough.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", e.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lavalinkemu: listen %s: %w", e.addr, err)
	}
	e.addr = ln.Addr().String()
	e.ln = ln
	e.down = make(chan struct{})
	e.started = time.Now()
	e.sessions = map[string]*session{}
	e.conns = map[*wsConn]struct{}{}
	e.hang, e.hangStop, e.failN = nil, nil, 0
	e.srv = &http.Server{Handler: e.handler(), ReadHeaderTimeout: 10 * time.Second}
	e.running = true
	srv := e.srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Addr returns host:port, the form disgolink's NodeConfig.Address takes.
func (e *Emulator) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// URL returns the REST base URL, e.g. http://127.0.0.1:41234.
func (e *Emulator) URL() string { return "http://" + e.Addr() }

// WebsocketURL returns the websocket URL clients dial.
func (e *Emulator) WebsocketURL() string { return "ws://" + e.Addr() + "/v4/websocket" }

// Password returns the configured password.
func (e *Emulator) Password() string { return e.cfg.Password }

// Kill stops the node the way a crash does: the listener and every connection
// close without a goodbye, and all sessions and players are lost. Restart
// brings a fresh node up on the same port.
func (e *Emulator) Kill() {
	e.mu.Lock()
	if !e.running {
		e.mu.Unlock()
		return
	}
	e.running = false
	e.log.Debug("lavalinkemu: killed", "addr", e.addr)
	close(e.down)
	if e.hang != nil {
		close(e.hang)
		e.hang = nil
	}
	if e.hangStop != nil {
		e.hangStop.Stop()
	}
	for _, s := range e.sessions {
		e.destroySessionLocked(s)
	}
	conns := make([]*wsConn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.conns = map[*wsConn]struct{}{}
	srv := e.srv
	e.mu.Unlock()

	_ = srv.Close()
	for _, c := range conns {
		c.kill()
	}
	e.bg.Wait()
}

// Restart starts a fresh node on the same port (killing the current one
// first if it is still running). Like a restarted Lavalink process it knows
// no sessions: clients that try to resume get resumed:false.
func (e *Emulator) Restart() error {
	e.Kill()
	return e.boot()
}

// Close kills the node for good.
func (e *Emulator) Close() {
	e.Kill()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
}

func (e *Emulator) handler() http.Handler {
	mux := http.NewServeMux()
	// paths knows every route regardless of method, to tell 405 from 404.
	paths := http.NewServeMux()
	seen := map[string]bool{}
	for _, rt := range []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", "/version", e.handleVersion},
		{"GET", "/v4/info", e.handleInfo},
		{"GET", "/v4/stats", e.handleStats},
		{"GET", "/v4/loadtracks", e.handleLoadTracks},
		{"GET", "/v4/decodetrack", e.handleDecodeTrack},
		{"POST", "/v4/decodetracks", e.handleDecodeTracks},
		{"PATCH", "/v4/sessions/{sid}", e.handleUpdateSession},
		{"GET", "/v4/sessions/{sid}/players", e.handleGetPlayers},
		{"GET", "/v4/sessions/{sid}/players/{gid}", e.handleGetPlayer},
		{"PATCH", "/v4/sessions/{sid}/players/{gid}", e.handleUpdatePlayer},
		{"DELETE", "/v4/sessions/{sid}/players/{gid}", e.handleDestroyPlayer},
	} {
		if e.cfg.NoResume && rt.path == "/v4/sessions/{sid}" {
			// A server without resuming has no such route at all.
			continue
		}
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		if !seen[rt.path] {
			seen[rt.path] = true
			paths.HandleFunc(rt.path, func(http.ResponseWriter, *http.Request) {})
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" {
			writeError(w, r, http.StatusMethodNotAllowed, "Request method '"+r.Method+"' is not supported")
			return
		}
		writeError(w, r, http.StatusNotFound, "No static resource "+strings.TrimPrefix(r.URL.Path, "/")+".")
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Lavalink's ResponseHeaderFilter runs before everything else, so even
		// bodiless auth failures and injected faults carry it. The websocket
		// handshake sets it again: the upgrade writes its own headers.
		w.Header().Set(apiVersionHeader, "4")
		e.rec.record(r)
		if !e.waitWhileHung(r) {
			return
		}
		if r.URL.Path == "/v4/websocket" {
			e.handleWebsocket(w, r)
			return
		}
		if code, ok := e.takeInjectedFailure(); ok {
			writeError(w, r, code, "lavalinkemu: injected failure")
			return
		}
		// Lavalink's RequestAuthorizationFilter answers with a bare status and
		// no body: 401 when the header is missing, 403 when it is wrong.
		switch pw, ok := r.Header["Authorization"]; {
		case !ok:
			w.WriteHeader(http.StatusUnauthorized)
			return
		case len(pw) == 0 || pw[0] != e.cfg.Password:
			w.WriteHeader(http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// waitWhileHung blocks while the node is hanging. It reports false when the
// request should get no answer at all (client gone or node killed).
func (e *Emulator) waitWhileHung(r *http.Request) bool {
	e.mu.Lock()
	hang, down := e.hang, e.down
	e.mu.Unlock()
	if hang == nil {
		return true
	}
	select {
	case <-hang:
	case <-down:
		return false
	case <-r.Context().Done():
		return false
	}
	select {
	case <-down:
		return false
	default:
		return true
	}
}

func (e *Emulator) takeInjectedFailure() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failN <= 0 {
		return 0, false
	}
	e.failN--
	return e.failCode, true
}

func parseVersion(v string) (major, minor, patch int, pre string) {
	core, pre, _ := strings.Cut(v, "-")
	parts := strings.SplitN(core, ".", 3)
	nums := [3]int{}
	for i := 0; i < len(parts) && i < 3; i++ {
		nums[i], _ = strconv.Atoi(parts[i])
	}
	return nums[0], nums[1], nums[2], pre
}

// apiVersionHeader is on every HTTP response of a v4 node.
const apiVersionHeader = "Lavalink-Api-Version"

// Load resolves an identifier exactly as /v4/loadtracks would, without HTTP,
// for tests that need to know the catalogue's answer in advance.
func (e *Emulator) Load(identifier string) LoadResult { return e.cat.load(identifier) }

// Resolve answers identifier exactly as /v4/loadtracks of an emulator with
// the default Config would, for unit tests that need real encodings without
// a server.
func Resolve(identifier string) LoadResult {
	return newCatalogue(Config{}.withDefaults()).load(identifier)
}
