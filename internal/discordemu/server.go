// Package discordemu is a Discord gateway and REST emulator on a loopback port.
//
// It exists so that the bot can be tested, demonstrated (sandbox) and load-tested against
// the real disgo client without a Discord account. Fidelity is the point: the emulator
// speaks the wire protocol disgo v0.19 speaks (zstd-stream, zlib-stream or plain JSON over
// one websocket per shard, REST under /api/v10), and it is strict where Discord is strict —
// a late or double interaction response, an expired interaction token, a bad gateway token,
// an op 4 on the wrong shard, or too many identifies in a window are refused or recorded
// exactly where Discord would refuse them, so a bot bug fails a test instead of passing
// silently. Everything the bot sends is kept by a Recorder with timestamps.
//
// A test builds a world (guilds with channels, roles, members and voice states), lets the
// bot connect, then acts as users: JoinVoice, InvokeCommand, Autocomplete and PressButton
// return an *Interaction handle whose Wait methods return what the bot answered
// (InvokeUnregistered plays a client with an outdated command list). Faults are injected
// with Reconnect, InvalidateSession, CloseShard and RateLimitNext; Config.OpaqueToken and
// Config.OmitInteractionChannel play a third-party Discord-compatible server.
//
// For load tests, AddLoadGuilds builds many guilds with listeners in voice and RunLoad
// sends a fixed-rate, open-loop mix of commands and reports what happened to each
// interaction (package emuctl serves this to a driver in another process);
// Config.MaxRecorded and Config.GatewayQueue keep such runs cheap.
package discordemu

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config tunes an emulator. Zero values take Discord's defaults.
type Config struct {
	// Addr to listen on; it must be a loopback address. Default "127.0.0.1:0".
	Addr string
	// Shards is the shard count recommended by GET /gateway/bot. Default 1.
	Shards int
	// MaxConcurrency is session_start_limit.max_concurrency: how many identify buckets
	// exist (bucket = shard_id % max_concurrency, one identify per bucket per 5 s). Default 1.
	MaxConcurrency int
	// HeartbeatInterval sent in HELLO. Default 41.25 s, as Discord.
	HeartbeatInterval time.Duration
	// InteractionDeadline is the time allowed for the initial interaction response. Default 3 s.
	InteractionDeadline time.Duration
	// TokenLifetime is how long an interaction token accepts edits and follow-ups. Default 15 min.
	TokenLifetime time.Duration
	// IdentifyWindow is the identify rate-limit window per bucket. Default 5 s.
	IdentifyWindow time.Duration
	// SessionStartTotal is session_start_limit.total (and the initial remaining). Default 1000.
	SessionStartTotal int
	// VoiceEndpoint is sent in VOICE_SERVER_UPDATE. Default "voice.discordemu.invalid:443".
	VoiceEndpoint string
	// ReplayBuffer is how many dispatches a session keeps for RESUME. Default 10000.
	ReplayBuffer int
	// AppID of the bot application; generated when zero. The bot user has the same ID
	// unless BotUserID is set (as for every bot created since 2017... and most before).
	// READY carries both (application.id, user.id).
	AppID     Snowflake
	BotUserID Snowflake
	// OpaqueToken makes the bot token a random string instead of Discord's shape
	// (base64(ID).timestamp.hmac), as third-party Discord-compatible servers issue
	// (Spacebar's are not base64 of the ID). Discord documents no token format, so a bot
	// must take its application and user IDs from READY. disgo.New cannot build a client
	// with such a token (it parses the application ID out of it); rest.NewClient and
	// gateway.New take it as is.
	OpaqueToken bool
	// OmitInteractionChannel sends INTERACTION_CREATE with channel_id but without the
	// channel object, as some Discord-compatible servers do (both are optional in
	// Discord's documentation; disgo reads only the object).
	OmitInteractionChannel bool
	// GlobalRateLimit, when positive, enforces Discord's global REST limit: at most this
	// many bot-authenticated requests per second (Discord: 50); interaction callbacks and
	// webhook-token routes are exempt, as on Discord. Zero leaves it off.
	GlobalRateLimit int
	// BotName is the bot user's username. Default "Ensemble".
	BotName string
	// MaxRecorded bounds the Recorder (for load runs): 0 keeps everything, a negative
	// value records nothing, a positive one keeps the newest MaxRecorded REST requests
	// and as many gateway payloads.
	MaxRecorded int
	// GatewayQueue is how many frames may wait to be written to one gateway connection
	// before the client is deemed too slow and disconnected. Default 4096; a world of
	// many guilds needs more, since READY is followed by one GUILD_CREATE per guild at once.
	GatewayQueue int
	// Logger for emulator diagnostics. Default: discard.
	Logger *slog.Logger
}

func (c *Config) applyDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Shards <= 0 {
		c.Shards = 1
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = 1
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 41250 * time.Millisecond
	}
	if c.InteractionDeadline <= 0 {
		c.InteractionDeadline = 3 * time.Second
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = 15 * time.Minute
	}
	if c.IdentifyWindow <= 0 {
		c.IdentifyWindow = 5 * time.Second
	}
	if c.SessionStartTotal <= 0 {
		c.SessionStartTotal = 1000
	}
	if c.VoiceEndpoint == "" {
		c.VoiceEndpoint = "voice.discordemu.invalid:443"
	}
	if c.ReplayBuffer <= 0 {
		c.ReplayBuffer = 10000
	}
	if c.AppID == 0 {
		c.AppID = NewSnowflake()
	}
	if c.BotUserID == 0 {
		c.BotUserID = c.AppID
	}
	if c.BotName == "" {
		c.BotName = "Ensemble"
	}
	if c.GatewayQueue <= 0 {
		c.GatewayQueue = outQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Emulator is a running Discord emulator. All methods are safe for concurrent use.
type Emulator struct {
	cfg   Config
	token string
	ln    net.Listener
	srv   *http.Server
	rec   *Recorder
	log   *slog.Logger
	base  string // http://127.0.0.1:P

	mu                  sync.Mutex
	closed              bool
	guilds              map[Snowflake]*guildState
	sessions            map[string]*session
	conns               map[*gwConn]struct{}
	identifies          map[int][]time.Time // bucket → identify times
	startLimitRemaining int
	errs                []ProtocolError
	changed             chan struct{}
	interactions        map[Snowflake]*Interaction
	byToken             map[string]*Interaction
	messages            map[Snowflake]*storedMessage
	channelMsgs         map[Snowflake][]Snowflake
	globalCmds          []*Command
	guildCmds           map[Snowflake][]*Command
	channelGuild        map[Snowflake]*guildState // channel → guild, so REST lookups do not scan every guild
	pruneAt             int                       // interaction count at which the next sweep runs
	slowDisconnects     int                       // connections dropped for not reading (GatewayQueue)
	rateLimits          []*rateLimitRule
	serverErrors        []*serverErrorRule
	globalWindow        []time.Time // bot-authenticated request times in the last second
	done                chan struct{}

	wg sync.WaitGroup
}

// Start listens on cfg.Addr and serves until ctx is done or Close is called.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg.applyDefaults()
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("discordemu: bad address %q: %w", cfg.Addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("discordemu: refusing to listen on non-loopback address %q", cfg.Addr)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("discordemu: listen: %w", err)
	}
	e := &Emulator{
		cfg:                 cfg,
		token:               makeToken(cfg),
		ln:                  ln,
		rec:                 &Recorder{max: cfg.MaxRecorded},
		log:                 cfg.Logger,
		base:                "http://" + ln.Addr().String(),
		guilds:              map[Snowflake]*guildState{},
		sessions:            map[string]*session{},
		conns:               map[*gwConn]struct{}{},
		identifies:          map[int][]time.Time{},
		startLimitRemaining: cfg.SessionStartTotal,
		changed:             make(chan struct{}),
		interactions:        map[Snowflake]*Interaction{},
		byToken:             map[string]*Interaction{},
		messages:            map[Snowflake]*storedMessage{},
		channelMsgs:         map[Snowflake][]Snowflake{},
		guildCmds:           map[Snowflake][]*Command{},
		channelGuild:        map[Snowflake]*guildState{},
		pruneAt:             minPruneAt,
		done:                make(chan struct{}),
	}
	e.srv = &http.Server{Handler: e.routes(), ReadHeaderTimeout: 10 * time.Second}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("discordemu: serve", "err", err)
		}
	}()
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				e.Close()
			case <-e.done:
			}
		}()
	}
	return e, nil
}

// Close stops the server and drops every gateway connection without a close frame, as a
// Discord outage would.
func (e *Emulator) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	close(e.done)
	conns := make([]*gwConn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	for _, c := range conns {
		c.kill()
	}
	e.wg.Wait()
}

// Addr is the host:port the emulator listens on.
func (e *Emulator) Addr() string { return e.ln.Addr().String() }

// RESTURL is the REST base for rest.WithURL: http://127.0.0.1:P/api/v10 (no trailing slash).
func (e *Emulator) RESTURL() string { return e.base + "/api/v10" }

// GatewayURL is the websocket URL for gateway.WithURL (no query string).
func (e *Emulator) GatewayURL() string { return "ws://" + e.ln.Addr().String() + "/gateway" }

// Token is the bot token the emulator accepts. It is shaped like Discord's
// (base64(appID).x.y), which disgo.New needs (it parses the application ID out of it),
// unless Config.OpaqueToken is set.
func (e *Emulator) Token() string { return e.token }

// AppID is the bot's application ID.
func (e *Emulator) AppID() Snowflake { return e.cfg.AppID }

// BotUserID is the bot user's ID.
func (e *Emulator) BotUserID() Snowflake { return e.cfg.BotUserID }

// Config returns the effective configuration (with defaults filled in).
func (e *Emulator) Config() Config { return e.cfg }

// Recorder returns the log of everything the bot sent.
func (e *Emulator) Recorder() *Recorder { return e.rec }

func makeToken(cfg Config) string {
	if cfg.OpaqueToken {
		// No dots and hex only: nothing in it decodes to an ID.
		return "opaque" + randomString(58)
	}
	return base64.RawStdEncoding.EncodeToString([]byte(cfg.AppID.String())) + "." + randomString(6) + "." + randomString(27)
}

func randomString(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// ProtocolError is a bot behaviour that Discord would punish or that breaks a rule the
// project relies on. Tests assert that none happen.
type ProtocolError struct {
	At      time.Time
	Kind    string
	Shard   int
	GuildID Snowflake
	Detail  string
}

func (p ProtocolError) String() string {
	return fmt.Sprintf("%s shard=%d guild=%s: %s", p.Kind, p.Shard, p.GuildID, p.Detail)
}

// Kinds of ProtocolError.
const (
	ErrWrongShard              = "wrong_shard"               // op 4 for a guild the shard does not own
	ErrIdentifyConcurrency     = "identify_concurrency"      // identify bucket used twice within the window
	ErrUnknownGuild            = "unknown_guild"             // op 4 for a guild the bot is not in
	ErrUnknownChannel          = "unknown_channel"           // op 4 to a channel that is not a voice channel of the guild
	ErrLateInteraction         = "late_interaction_response" // initial response after the deadline
	ErrDoubleAck               = "double_ack"                // second initial response
	ErrExpiredInteractionToken = "expired_interaction_token" // webhook call after the token lifetime
)

func (e *Emulator) recordErrorLocked(p ProtocolError) {
	if p.At.IsZero() {
		p.At = time.Now()
	}
	e.errs = append(e.errs, p)
	e.notifyLocked()
	e.log.Warn("discordemu: protocol error", "kind", p.Kind, "shard", p.Shard, "guild", p.GuildID, "detail", p.Detail)
}

// SlowDisconnects counts the gateway connections dropped because the client did not read
// fast enough (more than Config.GatewayQueue payloads waiting).
func (e *Emulator) SlowDisconnects() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slowDisconnects
}

// Errors returns every protocol error recorded so far.
func (e *Emulator) Errors() []ProtocolError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ProtocolError(nil), e.errs...)
}

// ErrorsOfKind returns the recorded protocol errors of one kind.
func (e *Emulator) ErrorsOfKind(kind string) []ProtocolError {
	var out []ProtocolError
	for _, p := range e.Errors() {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// WrongShard returns the op 4 payloads that arrived on a shard that does not own the guild.
func (e *Emulator) WrongShard() []ProtocolError { return e.ErrorsOfKind(ErrWrongShard) }

// IdentifyViolations returns the identifies that broke the max_concurrency pacing.
func (e *Emulator) IdentifyViolations() []ProtocolError {
	return e.ErrorsOfKind(ErrIdentifyConcurrency)
}

// WaitError waits until a protocol error of the kind is recorded.
func (e *Emulator) WaitError(ctx context.Context, kind string) (ProtocolError, error) {
	var found ProtocolError
	err := e.waitFor(ctx, func() bool {
		for _, p := range e.errs {
			if p.Kind == kind {
				found = p
				return true
			}
		}
		return false
	})
	return found, err
}

// notifyLocked wakes every waitFor; callers hold e.mu.
func (e *Emulator) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// waitFor blocks until cond (evaluated under e.mu) holds or ctx ends.
func (e *Emulator) waitFor(ctx context.Context, cond func() bool) error {
	for {
		e.mu.Lock()
		if cond() {
			e.mu.Unlock()
			return nil
		}
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// matchPath reports whether path matches pattern segment by segment; a pattern segment
// "*" or "{name}" matches any one segment, and a trailing "/**" matches the rest.
func matchPath(pattern, path string) bool {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range ps {
		if p == "**" {
			return true
		}
		if i >= len(xs) {
			return false
		}
		if p == "*" || (strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}")) {
			continue
		}
		if p != xs[i] {
			return false
		}
	}
	return len(ps) == len(xs)
}
