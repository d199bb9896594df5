// Package config decodes and validates a node's configuration: cluster.yaml
// plus secrets from the environment.
//
// Decoding is strict (an unknown field is an error, so a typo cannot silently
// fall back to a default) and Validate names the field and value at fault, so
// an operator sees "store.bbolt.path: must not be empty" rather than a
// failure deep inside start-up. Secrets are never read from the YAML file:
// they come from environment variables or files named by them, and are held
// in secret.String.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// Config is the whole configuration of one node.
type Config struct {
	Node     Node     `yaml:"node"`
	Cluster  Cluster  `yaml:"cluster"`
	Store    Store    `yaml:"store"`
	Discord  Discord  `yaml:"discord"`
	Lavalink Lavalink `yaml:"lavalink"`
	Limits   Limits   `yaml:"limits"`
}

// Node holds the settings of this process.
type Node struct {
	// AdminAddr is where /healthz, /readyz and /metrics are served.
	AdminAddr string `yaml:"admin_addr"`
	// ShutdownTimeout bounds a graceful stop after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// OTLPEndpoint, when set, exports traces over OTLP/HTTP to this URL
	// (e.g. http://collector:4318/v1/traces). Empty: the standard OTEL_*
	// variables decide, and without them tracing is off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// GCHeapFloorMiB keeps the garbage collector's heap goal at or above
	// this many MiB (internal/heapfloor): a node with a small live heap
	// then collects a few times a minute instead of several times a
	// second. 0 leaves GOGC alone.
	GCHeapFloorMiB int `yaml:"gc_heap_floor_mib"`
	// AdminToken (ADMIN_TOKEN or ADMIN_TOKEN_FILE) is the bearer token
	// /status requires when admin_addr is not a loopback address.
	AdminToken secret.String `yaml:"-"`
}

// Provider names a cluster membership provider.
type Provider string

// The membership providers. ProviderSingle and ProviderEtcd are wired; the
// others are accepted by validation so configuration written for them is
// checked, and refused at start.
const (
	ProviderSingle      Provider = "single"
	ProviderAutomanaged Provider = "automanaged"
	ProviderEtcd        Provider = "etcd"
	ProviderK8s         Provider = "k8s"
)

// Cluster configures the protoactor cluster.
type Cluster struct {
	Name     string   `yaml:"name"`
	Provider Provider `yaml:"provider"`
	// BindAddr is the gRPC remote listener (host:port; port 0 picks a free one).
	BindAddr string `yaml:"bind_addr"`
	// AdvertiseAddr is where the other members reach this one (host:port),
	// when that is not bind_addr: a container binds 0.0.0.0 and is
	// reached at its pod or container address. Empty: bind_addr.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// RequestTimeout is the deadline of grain calls no user waits on
	// (Lavalink events to sessions).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Members lists the automanaged provider's address
	// (cluster.automanaged_addr, as the others reach it) of every member;
	// this member's own may be listed too, so all members can share the
	// list.
	Members []string `yaml:"members"`
	// AutomanagedAddr is this member's listener for the automanaged
	// provider (host:port): the others ask it who this member is. Each
	// member on a machine needs its own port.
	AutomanagedAddr string `yaml:"automanaged_addr"`
	// AutomanagedRefresh is how soon the others drop a member that stopped
	// answering: each address is asked three times per refresh, a member
	// silent for a whole refresh is dropped, and one whose address refuses
	// connections (stopped, or left) is dropped at the next ask.
	AutomanagedRefresh time.Duration `yaml:"automanaged_refresh"`
	// EtcdEndpoints lists the etcd servers of the etcd provider.
	EtcdEndpoints []string `yaml:"etcd_endpoints"`
	// EtcdLeaseTTL is how long a member's key outlives its last keepalive:
	// the time the others take to see a dead member (etcd raises TTLs
	// below its minimum, 2 s with default timings).
	EtcdLeaseTTL time.Duration `yaml:"etcd_lease_ttl"`
	// EtcdPrefix is the key prefix of the cluster's members in etcd.
	EtcdPrefix string `yaml:"etcd_prefix"`
}

// StoreKind names a persistence backend.
type StoreKind string

// The persistence backends.
const (
	StoreBbolt StoreKind = "bbolt"
	StoreRedis StoreKind = "redis"
)

// Store configures persistence.
type Store struct {
	Kind  StoreKind `yaml:"kind"`
	Bbolt Bbolt     `yaml:"bbolt"`
	Redis Redis     `yaml:"redis"`
}

// Bbolt configures the embedded single-node store.
type Bbolt struct {
	Path string `yaml:"path"`
}

// Redis configures the cluster store. The password comes from
// REDIS_PASSWORD or REDIS_PASSWORD_FILE.
type Redis struct {
	Addr     string        `yaml:"addr"`
	DB       int           `yaml:"db"`
	Timeout  time.Duration `yaml:"timeout"`
	Password secret.String `yaml:"-"`
	// Breaker fails store calls at once while Redis fails or hangs,
	// instead of each waiting out Timeout.
	Breaker Breaker `yaml:"breaker"`
}

// Discord configures the gateway connection. The token comes from
// DISCORD_TOKEN or DISCORD_TOKEN_FILE; without one the node runs but is not
// ready.
type Discord struct {
	ShardCount int `yaml:"shard_count"`
	// DevGuildID, when set, registers commands on that guild only (instant
	// updates while developing) instead of globally.
	DevGuildID string `yaml:"dev_guild_id"`
	// RESTURL and GatewayURL override Discord's endpoints (the emulators).
	RESTURL    string        `yaml:"rest_url"`
	GatewayURL string        `yaml:"gateway_url"`
	Token      secret.String `yaml:"-"`
}

// Lavalink configures the audio nodes.
type Lavalink struct {
	Nodes          []LavalinkNode `yaml:"nodes"`
	RequestTimeout time.Duration  `yaml:"request_timeout"`
	Breaker        Breaker        `yaml:"breaker"`
}

// LavalinkNode is one Lavalink server.
type LavalinkNode struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Secure  bool   `yaml:"secure"`
	Region  string `yaml:"region"`
	// PasswordEnv names the environment variable holding this node's
	// password (default LAVALINK_PASSWORD; NAME_FILE is read as a file).
	PasswordEnv string        `yaml:"password_env"`
	Password    secret.String `yaml:"-"`
}

// Breaker configures the per-node circuit breaker.
type Breaker struct {
	// Window is how far back failures are counted.
	Window time.Duration `yaml:"window"`
	// FailureRatio opens the breaker when failures/requests in the window
	// reach it, once MinRequests were seen.
	FailureRatio float64 `yaml:"failure_ratio"`
	MinRequests  int     `yaml:"min_requests"`
	// ResetTimeout is how long the breaker stays open before one probe.
	ResetTimeout time.Duration `yaml:"reset_timeout"`
}

// Limits holds the bounds that protect users and the node.
type Limits struct {
	QueueMax           int           `yaml:"queue_max"`
	CommandCooldown    time.Duration `yaml:"command_cooldown"`
	GuildIdleTimeout   time.Duration `yaml:"guild_idle_timeout"`
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// GuildCommandsInFlight: commands one guild works on at once; past
	// it users get a fast "busy" answer.
	GuildCommandsInFlight int `yaml:"guild_commands_in_flight"`
	// GuildBacklog: interactions and events waiting at the shard for one
	// guild; past it interactions get a fast "busy" answer.
	GuildBacklog int `yaml:"guild_backlog"`
	// ShardMaxLag: how long after Discord created it an interaction may
	// reach its shard grain; past it the member is behind (its gateway
	// reader or the shard's mailbox) and the shard answers busy at once.
	ShardMaxLag time.Duration `yaml:"shard_max_lag"`
	// InteractionsInFlight: interactions the member has taken and not yet
	// answered (or deferred); past it new ones get a fast "busy" answer
	// at the gateway reader. A /play may take up to the deferral budget
	// (~2.5 s) before its first answer, so this is a backstop against a
	// backlog inside the member, sized well above a healthy member's.
	InteractionsInFlight int `yaml:"interactions_in_flight"`
	// UserCommands: commands one user may run across all guilds per
	// RateWindow; GuildCommands: commands one guild's users may run in all
	// per RateWindow. 0 is no limit. Past them the user gets an ephemeral
	// answer saying when to try again. Counted in Redis with the redis
	// store (shared by the cluster; half the limits in memory while Redis
	// fails), in memory with bbolt.
	UserCommands  int           `yaml:"user_commands"`
	GuildCommands int           `yaml:"guild_commands"`
	RateWindow    time.Duration `yaml:"rate_window"`
}

// Default returns the built-in defaults that cluster.yaml documents.
func Default() Config {
	return Config{
		Node: Node{AdminAddr: "127.0.0.1:9090", ShutdownTimeout: 5 * time.Second, GCHeapFloorMiB: 64},
		Cluster: Cluster{
			Name:               "ensemble",
			Provider:           ProviderSingle,
			BindAddr:           "127.0.0.1:0",
			RequestTimeout:     5 * time.Second,
			AutomanagedRefresh: 3 * time.Second,
			EtcdLeaseTTL:       3 * time.Second,
			EtcdPrefix:         "/ensemble",
		},
		Store: Store{
			Kind:  StoreBbolt,
			Bbolt: Bbolt{Path: "data/ensemble.db"},
			Redis: Redis{Addr: "127.0.0.1:6379", Timeout: 2 * time.Second,
				// The original design's 50 % over a window; its 30 s
				// reset shortened: a user is answered "try again" until
				// the probe after the reset finds Redis back.
				Breaker: Breaker{Window: 30 * time.Second, FailureRatio: 0.5, MinRequests: 10, ResetTimeout: 5 * time.Second}},
		},
		Discord: Discord{ShardCount: 1},
		Lavalink: Lavalink{
			RequestTimeout: 10 * time.Second,
			Breaker: Breaker{
				Window:       60 * time.Second,
				FailureRatio: 0.4,
				MinRequests:  5,
				ResetTimeout: 45 * time.Second,
			},
		},
		Limits: Limits{
			QueueMax:              500,
			CommandCooldown:       2 * time.Second,
			GuildIdleTimeout:      10 * time.Minute,
			SessionIdleTimeout:    5 * time.Minute,
			GuildCommandsInFlight: 16,
			GuildBacklog:          64,
			ShardMaxLag:           250 * time.Millisecond,
			InteractionsInFlight:  512,
			UserCommands:          30,
			GuildCommands:         120,
			RateWindow:            time.Minute,
		},
	}
}

// Decode reads YAML over the defaults. Unknown fields and trailing
// documents are errors.
func Decode(r io.Reader) (Config, error) {
	cfg := Default()
	return cfg, decodeInto(&cfg, r)
}

// Load decodes the file at path, applies the environment and validates.
// getenv is os.Getenv outside tests.
func Load(path string, getenv func(string) string) (Config, error) {
	return LoadWith(path, getenv, Flags{})
}

// Flags are command-line overrides of configuration fields (cmd/node's
// --admin-addr, --bind-addr and --advertise-addr); empty ones change
// nothing. They apply after the file and the environment and before
// validation, so a flag may be what makes the file valid: one cluster.yaml
// with bind_addr 0.0.0.0:7000 for every pod, each started with its own
// --advertise-addr.
type Flags struct {
	AdminAddr, BindAddr, AdvertiseAddr string
}

// LoadWith is Load with flags applied before validation.
func LoadWith(path string, getenv func(string) string, flags Flags) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	cfg, err := Decode(f)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return cfg, err
	}
	for _, o := range []struct {
		value string
		field *string
	}{
		{flags.AdminAddr, &cfg.Node.AdminAddr},
		{flags.BindAddr, &cfg.Cluster.BindAddr},
		{flags.AdvertiseAddr, &cfg.Cluster.AdvertiseAddr},
	} {
		if o.value != "" {
			*o.field = o.value
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ApplyEnv reads the secrets: DISCORD_TOKEN, REDIS_PASSWORD, ADMIN_TOKEN
// and each Lavalink node's password variable, or the file named by
// VAR_FILE.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var err error
	if c.Discord.Token, err = secretFromEnv(getenv, "DISCORD_TOKEN"); err != nil {
		return err
	}
	if c.Node.AdminToken, err = secretFromEnv(getenv, "ADMIN_TOKEN"); err != nil {
		return err
	}
	if c.Store.Redis.Password, err = secretFromEnv(getenv, "REDIS_PASSWORD"); err != nil {
		return err
	}
	for i := range c.Lavalink.Nodes {
		n := &c.Lavalink.Nodes[i]
		name := n.PasswordEnv
		if name == "" {
			name = "LAVALINK_PASSWORD"
		}
		if n.Password, err = secretFromEnv(getenv, name); err != nil {
			return err
		}
	}
	return nil
}

// secretFromEnv reads NAME, or the file named by NAME_FILE. Setting both is
// an error: silently preferring one hides a deployment mistake.
func secretFromEnv(getenv func(string) string, name string) (secret.String, error) {
	val, file := getenv(name), getenv(name+"_FILE")
	switch {
	case val != "" && file != "":
		return secret.String{}, fmt.Errorf("%s and %s_FILE are both set; set one", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			// The path is not secret; the content never reaches this message.
			return secret.String{}, fmt.Errorf("%s_FILE: %w", name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return secret.String{}, fmt.Errorf("%s_FILE: %s is empty", name, file)
		}
		return secret.New(v), nil
	default:
		return secret.New(val), nil
	}
}

// unspecified: host binds every interface (0.0.0.0, ::, or empty).
func unspecified(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// FieldError names the configuration field at fault and its value.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s (got %q)", e.Field, e.Reason, e.Value)
}

func fieldErr(field string, value any, reason string) error {
	return &FieldError{Field: field, Value: fmt.Sprint(value), Reason: reason}
}

// Validate checks every field and returns the first problem found, naming
// the field and its value.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateNode, c.validateCluster, c.validateStore,
		c.validateDiscord, c.validateLavalink, c.validateLimits,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateNode() error {
	if err := checkHostPort("node.admin_addr", c.Node.AdminAddr, true); err != nil {
		return err
	}
	if e := c.Node.OTLPEndpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return fieldErr("node.otlp_endpoint", e, "must be an http:// or https:// URL")
	}
	if f := c.Node.GCHeapFloorMiB; f < 0 || f > 65536 {
		return fieldErr("node.gc_heap_floor_mib", f, "must be between 0 (off) and 65536")
	}
	return positive("node.shutdown_timeout", c.Node.ShutdownTimeout)
}

func (c *Config) validateCluster() error {
	cl := c.Cluster
	if cl.Name == "" {
		return fieldErr("cluster.name", cl.Name, "must not be empty")
	}
	switch cl.Provider {
	case ProviderSingle, ProviderAutomanaged, ProviderEtcd, ProviderK8s:
	default:
		return fieldErr("cluster.provider", cl.Provider, "must be one of single, automanaged, etcd, k8s")
	}
	if err := checkHostPort("cluster.bind_addr", cl.BindAddr, true); err != nil {
		return err
	}
	if err := positive("cluster.request_timeout", cl.RequestTimeout); err != nil {
		return err
	}
	if cl.Provider == ProviderAutomanaged && len(cl.Members) == 0 {
		return fieldErr("cluster.members", cl.Members, "must list at least one host:port for the automanaged provider")
	}
	seen := make(map[string]int, len(cl.Members))
	for i, m := range cl.Members {
		field := fmt.Sprintf("cluster.members[%d]", i)
		if err := checkHostPort(field, m, false); err != nil {
			return err
		}
		if j, dup := seen[m]; dup {
			return fieldErr(field, m, fmt.Sprintf("duplicates cluster.members[%d]", j))
		}
		seen[m] = i
	}
	if cl.Provider == ProviderAutomanaged && cl.AutomanagedAddr == "" {
		return fieldErr("cluster.automanaged_addr", cl.AutomanagedAddr, "must be set for the automanaged provider: this member's own host:port, one the others list in cluster.members")
	}
	if cl.AutomanagedAddr != "" {
		if err := checkHostPort("cluster.automanaged_addr", cl.AutomanagedAddr, false); err != nil {
			return err
		}
	}
	if cl.AutomanagedRefresh < 500*time.Millisecond || cl.AutomanagedRefresh > time.Minute {
		return fieldErr("cluster.automanaged_refresh", cl.AutomanagedRefresh, "must be from 500ms to 1m")
	}
	if cl.AdvertiseAddr != "" {
		if err := checkHostPort("cluster.advertise_addr", cl.AdvertiseAddr, false); err != nil {
			return err
		}
		if host, _, _ := net.SplitHostPort(cl.AdvertiseAddr); unspecified(host) {
			return fieldErr("cluster.advertise_addr", cl.AdvertiseAddr, "must name an address the other members can reach (not 0.0.0.0 or ::)")
		}
		if _, port, _ := net.SplitHostPort(cl.BindAddr); port == "0" {
			return fieldErr("cluster.bind_addr", cl.BindAddr, "must have a fixed port when cluster.advertise_addr is set (the others reach the advertised port)")
		}
	} else if cl.Provider == ProviderAutomanaged || cl.Provider == ProviderEtcd {
		// The others reach this member's grains at bind_addr.
		if host, _, _ := net.SplitHostPort(cl.BindAddr); unspecified(host) {
			return fieldErr("cluster.bind_addr", cl.BindAddr, fmt.Sprintf("must name an address the other members can reach (not 0.0.0.0 or ::) with the %s provider, or set cluster.advertise_addr", cl.Provider))
		}
	}
	if cl.Provider == ProviderEtcd && len(cl.EtcdEndpoints) == 0 {
		return fieldErr("cluster.etcd_endpoints", cl.EtcdEndpoints, "must list at least one endpoint for the etcd provider")
	}
	for i, e := range cl.EtcdEndpoints {
		if err := checkHostPort(fmt.Sprintf("cluster.etcd_endpoints[%d]", i), strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), false); err != nil {
			return err
		}
	}
	if cl.EtcdLeaseTTL < 2*time.Second || cl.EtcdLeaseTTL > time.Minute || cl.EtcdLeaseTTL%time.Second != 0 {
		return fieldErr("cluster.etcd_lease_ttl", cl.EtcdLeaseTTL, "must be whole seconds from 2s to 1m")
	}
	if !strings.HasPrefix(cl.EtcdPrefix, "/") || strings.HasSuffix(cl.EtcdPrefix, "/") {
		return fieldErr("cluster.etcd_prefix", cl.EtcdPrefix, `must start with "/" and not end with one`)
	}
	return nil
}

func (c *Config) validateStore() error {
	s := c.Store
	switch s.Kind {
	case StoreBbolt:
		if s.Bbolt.Path == "" {
			return fieldErr("store.bbolt.path", s.Bbolt.Path, "must not be empty")
		}
		if c.Cluster.Provider != ProviderSingle {
			// A bbolt file lives on one machine: a second member would
			// either not see the queues or fight over the file lock.
			return fieldErr("store.kind", s.Kind, "bbolt is a single-node store; use redis with provider "+string(c.Cluster.Provider))
		}
	case StoreRedis:
		if err := checkHostPort("store.redis.addr", s.Redis.Addr, false); err != nil {
			return err
		}
		if s.Redis.DB < 0 || s.Redis.DB > 15 {
			return fieldErr("store.redis.db", s.Redis.DB, "must be between 0 and 15")
		}
		if err := positive("store.redis.timeout", s.Redis.Timeout); err != nil {
			return err
		}
		if err := validateBreaker("store.redis.breaker", s.Redis.Breaker); err != nil {
			return err
		}
	default:
		return fieldErr("store.kind", s.Kind, "must be bbolt or redis")
	}
	return nil
}

func (c *Config) validateDiscord() error {
	d := c.Discord
	if d.ShardCount < 1 || d.ShardCount > 4096 {
		return fieldErr("discord.shard_count", d.ShardCount, "must be between 1 and 4096")
	}
	if d.DevGuildID != "" {
		if err := music.ValidateGuildID(d.DevGuildID); err != nil {
			return fieldErr("discord.dev_guild_id", d.DevGuildID, "must be a guild ID (a snowflake)")
		}
	}
	for _, u := range []struct{ field, val string }{{"discord.rest_url", d.RESTURL}, {"discord.gateway_url", d.GatewayURL}} {
		if u.val != "" && !strings.Contains(u.val, "://") {
			return fieldErr(u.field, u.val, "must be an absolute URL")
		}
	}
	if d.Token.IsSet() {
		if reason := tokenShape(d.Token.Reveal(), d.RESTURL == ""); reason != "" {
			// The value is a secret: the message names the variable only.
			return fmt.Errorf("DISCORD_TOKEN: %s", reason)
		}
	}
	return nil
}

// What tokenShape finds wrong: fixed texts, so a refusal never quotes the
// token.
const (
	tokenPrefixed   = `must be the token alone, without the "Bot " prefix (the client adds it)`
	tokenCharacters = "contains spaces, quotes, line breaks or other characters a token never has"
	tokenParts      = "does not have a bot token's shape (three parts separated by dots); is it the client secret or the public key? Copy the token from the Bot page of the Discord developer portal"
	tokenBase64     = "does not have a bot token's shape (each part is base64)"
	tokenID         = "does not have a bot token's shape (its first part is the bot's ID in base64)"
)

// tokenShape says what is wrong with a bot token, or "". Discord's bot
// tokens are three dot-separated base64url parts, the first the bot's user
// ID; the common mistakes (the client secret or public key pasted instead,
// a "Bot " prefix, quotes or a line break) would otherwise surface as a
// gateway 4004 after the node started. Discord-compatible servers
// (discord.rest_url set) may issue opaque tokens, so only the characters
// are checked for them.
func tokenShape(tok string, discord bool) string {
	if strings.HasPrefix(tok, "Bot ") || strings.HasPrefix(tok, "Bearer ") {
		return tokenPrefixed
	}
	for _, r := range tok {
		if r <= ' ' || r > '~' || r == '"' || r == '\'' {
			return tokenCharacters
		}
	}
	if !discord {
		return ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return tokenParts
	}
	for _, p := range parts {
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_+/=", r)) {
				return tokenBase64
			}
		}
	}
	first := strings.TrimRight(parts[0], "=")
	id, err := base64.RawStdEncoding.DecodeString(first)
	if err != nil {
		id, err = base64.RawURLEncoding.DecodeString(first)
	}
	if err != nil || music.ValidateSnowflake(string(id)) != nil {
		return tokenID
	}
	return ""
}

func (c *Config) validateLavalink() error {
	l := c.Lavalink
	if len(l.Nodes) == 0 {
		return fieldErr("lavalink.nodes", "[]", "must list at least one Lavalink node")
	}
	names := make(map[string]bool, len(l.Nodes))
	for i, n := range l.Nodes {
		prefix := fmt.Sprintf("lavalink.nodes[%d]", i)
		if n.Name == "" {
			return fieldErr(prefix+".name", n.Name, "must not be empty")
		}
		if names[n.Name] {
			return fieldErr(prefix+".name", n.Name, "duplicates another node's name")
		}
		names[n.Name] = true
		if err := checkHostPort(prefix+".address", n.Address, false); err != nil {
			return err
		}
	}
	if err := positive("lavalink.request_timeout", l.RequestTimeout); err != nil {
		return err
	}
	return validateBreaker("lavalink.breaker", l.Breaker)
}

func validateBreaker(prefix string, b Breaker) error {
	if err := positive(prefix+".window", b.Window); err != nil {
		return err
	}
	if b.FailureRatio <= 0 || b.FailureRatio > 1 {
		return fieldErr(prefix+".failure_ratio", b.FailureRatio, "must be in (0, 1]")
	}
	if b.MinRequests < 1 {
		return fieldErr(prefix+".min_requests", b.MinRequests, "must be at least 1")
	}
	return positive(prefix+".reset_timeout", b.ResetTimeout)
}

func (c *Config) validateLimits() error {
	l := c.Limits
	if l.QueueMax < 1 || l.QueueMax > 10000 {
		return fieldErr("limits.queue_max", l.QueueMax, "must be between 1 and 10000")
	}
	if l.CommandCooldown < 0 {
		return fieldErr("limits.command_cooldown", l.CommandCooldown, "must not be negative")
	}
	if err := positive("limits.guild_idle_timeout", l.GuildIdleTimeout); err != nil {
		return err
	}
	if err := positive("limits.session_idle_timeout", l.SessionIdleTimeout); err != nil {
		return err
	}
	if l.GuildCommandsInFlight < 1 {
		return fieldErr("limits.guild_commands_in_flight", l.GuildCommandsInFlight, "must be at least 1")
	}
	if l.GuildBacklog < 1 {
		return fieldErr("limits.guild_backlog", l.GuildBacklog, "must be at least 1")
	}
	if l.InteractionsInFlight < 1 {
		return fieldErr("limits.interactions_in_flight", l.InteractionsInFlight, "must be at least 1")
	}
	if l.ShardMaxLag < 10*time.Millisecond || l.ShardMaxLag > 2500*time.Millisecond {
		return fieldErr("limits.shard_max_lag", l.ShardMaxLag, "must be between 10ms and 2.5s (Discord's deadline is 3s)")
	}
	if l.UserCommands < 0 {
		return fieldErr("limits.user_commands", l.UserCommands, "must not be negative (0 is no limit)")
	}
	if l.GuildCommands < 0 {
		return fieldErr("limits.guild_commands", l.GuildCommands, "must not be negative (0 is no limit)")
	}
	if (l.UserCommands > 0 || l.GuildCommands > 0) && (l.RateWindow < time.Second || l.RateWindow > time.Hour) {
		return fieldErr("limits.rate_window", l.RateWindow, "must be between 1s and 1h")
	}
	return nil
}

func positive(field string, d time.Duration) error {
	if d <= 0 {
		return fieldErr(field, d, "must be a positive duration such as 5s")
	}
	return nil
}

// checkHostPort accepts host:port with a port in 1..65535 (0 too when
// zeroPortOK, meaning "pick a free port").
func checkHostPort(field, addr string, zeroPortOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fieldErr(field, addr, "must be host:port")
	}
	if host == "" {
		return fieldErr(field, addr, "must name a host (use 127.0.0.1 for loopback)")
	}
	p, err := strconv.Atoi(port)
	min := 1
	if zeroPortOK {
		min = 0
	}
	if err != nil || p < min || p > 65535 {
		return fieldErr(field, addr, fmt.Sprintf("port must be a number between %d and 65535", min))
	}
	return nil
}

// decodeInto strictly decodes one YAML document over cfg, so fields the
// document leaves out keep their value.
func decodeInto(cfg *Config, r io.Reader) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		// yaml lists each bad field on its own line; an operator reads one.
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("decode config: %s", strings.Join(te.Errors, "; "))
		}
		return fmt.Errorf("decode config: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("decode config: more than one YAML document")
	}
	return nil
}
