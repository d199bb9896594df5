package config

import (
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/secret"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestRepoDefaultMatchesBuiltIn(t *testing.T) {
	cfg, err := Load("../../cluster.yaml", env(nil))
	if err != nil {
		t.Fatalf("cluster.yaml: %v", err)
	}
	want := Default()
	want.Cluster.Members, want.Cluster.EtcdEndpoints = []string{}, []string{}
	want.Lavalink.Nodes = []LavalinkNode{{Name: "local", Address: "127.0.0.1:2333", PasswordEnv: "LAVALINK_PASSWORD"}}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("cluster.yaml differs from Default():\n got %+v\nwant %+v", cfg, want)
	}
}

// validYAML is a minimal config the invalid cases below edit one field of.
const validYAML = `
lavalink:
  nodes:
    - name: a
      address: 127.0.0.1:2333
`

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		field string
	}{
		{"admin port out of range", "node: {admin_addr: '127.0.0.1:99999'}", "node.admin_addr"},
		{"admin addr without port", "node: {admin_addr: localhost}", "node.admin_addr"},
		{"admin addr without host", "node: {admin_addr: ':9090'}", "node.admin_addr"},
		{"negative shutdown timeout", "node: {shutdown_timeout: -1s}", "node.shutdown_timeout"},
		{"negative GC heap floor", "node: {gc_heap_floor_mib: -1}", "node.gc_heap_floor_mib"},
		{"GC heap floor over 64 GiB", "node: {gc_heap_floor_mib: 65537}", "node.gc_heap_floor_mib"},
		{"unknown provider", "cluster: {provider: zookeeper}", "cluster.provider"},
		{"empty cluster name", "cluster: {name: ''}", "cluster.name"},
		{"bind port not a number", "cluster: {bind_addr: '127.0.0.1:http'}", "cluster.bind_addr"},
		{"negative request timeout", "cluster: {request_timeout: -5s}", "cluster.request_timeout"},
		{"automanaged without members", "cluster: {provider: automanaged}\nstore: {kind: redis}", "cluster.members"},
		{"automanaged bad member", "cluster: {provider: automanaged, members: ['x']}\nstore: {kind: redis}", "cluster.members[0]"},
		{"automanaged duplicate member", "cluster: {provider: automanaged, automanaged_addr: '127.0.0.1:6330', members: ['127.0.0.1:6330', '127.0.0.1:6330']}\nstore: {kind: redis}", "cluster.members[1]"},
		{"automanaged without its own address", "cluster: {provider: automanaged, members: ['127.0.0.1:6330']}\nstore: {kind: redis}", "cluster.automanaged_addr"},
		{"automanaged address on port 0", "cluster: {provider: automanaged, automanaged_addr: '127.0.0.1:0', members: ['127.0.0.1:6330']}\nstore: {kind: redis}", "cluster.automanaged_addr"},
		{"automanaged address without host", "cluster: {automanaged_addr: ':6330'}", "cluster.automanaged_addr"},
		{"automanaged refresh too short", "cluster: {automanaged_refresh: 100ms}", "cluster.automanaged_refresh"},
		{"automanaged refresh too long", "cluster: {automanaged_refresh: 2m}", "cluster.automanaged_refresh"},
		{"automanaged on an unspecified bind address", "cluster: {provider: automanaged, automanaged_addr: '127.0.0.1:6330', members: ['127.0.0.1:6330'], bind_addr: '0.0.0.0:0'}\nstore: {kind: redis}", "cluster.bind_addr"},
		{"etcd on an unspecified bind address", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], bind_addr: '0.0.0.0:7000'}\nstore: {kind: redis}", "cluster.bind_addr"},
		{"advertised address unspecified", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], bind_addr: '0.0.0.0:7000', advertise_addr: '0.0.0.0:7000'}\nstore: {kind: redis}", "cluster.advertise_addr"},
		{"advertised address without port", "cluster: {advertise_addr: '10.0.0.5'}", "cluster.advertise_addr"},
		{"advertised with a bind port picked at random", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], bind_addr: '0.0.0.0:0', advertise_addr: '10.0.0.5:7000'}\nstore: {kind: redis}", "cluster.bind_addr"},
		{"etcd without endpoints", "cluster: {provider: etcd}\nstore: {kind: redis}", "cluster.etcd_endpoints"},
		{"etcd bad endpoint", "cluster: {provider: etcd, etcd_endpoints: ['http://127.0.0.1']}\nstore: {kind: redis}", "cluster.etcd_endpoints[0]"},
		{"etcd lease below etcd's minimum", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], etcd_lease_ttl: 1s}\nstore: {kind: redis}", "cluster.etcd_lease_ttl"},
		{"etcd lease not whole seconds", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], etcd_lease_ttl: 2500ms}\nstore: {kind: redis}", "cluster.etcd_lease_ttl"},
		{"etcd prefix without slash", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], etcd_prefix: ensemble}\nstore: {kind: redis}", "cluster.etcd_prefix"},
		{"etcd prefix ending in slash", "cluster: {provider: etcd, etcd_endpoints: ['127.0.0.1:2379'], etcd_prefix: /ensemble/}\nstore: {kind: redis}", "cluster.etcd_prefix"},
		{"bbolt with a multi-member provider", "cluster: {provider: etcd, etcd_endpoints: ['http://127.0.0.1:2379']}", "store.kind"},
		{"empty bbolt path", "store: {bbolt: {path: ''}}", "store.bbolt.path"},
		{"unknown store", "store: {kind: memory}", "store.kind"},
		{"redis db out of range", "store: {kind: redis, redis: {db: 16}}", "store.redis.db"},
		{"redis zero port", "store: {kind: redis, redis: {addr: '127.0.0.1:0'}}", "store.redis.addr"},
		{"shard count 0", "discord: {shard_count: 0}", "discord.shard_count"},
		{"dev guild not a snowflake", "discord: {dev_guild_id: abc}", "discord.dev_guild_id"},
		{"relative rest url", "discord: {rest_url: 'api/v10'}", "discord.rest_url"},
		{"missing lavalink nodes", "lavalink: {nodes: []}", "lavalink.nodes"},
		{"duplicate node names", "lavalink: {nodes: [{name: a, address: '127.0.0.1:1'}, {name: a, address: '127.0.0.1:2'}]}", "lavalink.nodes[1].name"},
		{"node without address port", "lavalink: {nodes: [{name: a, address: '127.0.0.1'}]}", "lavalink.nodes[0].address"},
		{"breaker ratio above 1", "lavalink: {breaker: {failure_ratio: 1.5}}", "lavalink.breaker.failure_ratio"},
		{"breaker zero reset", "lavalink: {breaker: {reset_timeout: 0s}}", "lavalink.breaker.reset_timeout"},
		{"queue max 0", "limits: {queue_max: 0}", "limits.queue_max"},
		{"negative cooldown", "limits: {command_cooldown: -1s}", "limits.command_cooldown"},
		{"guild commands in flight 0", "limits: {guild_commands_in_flight: 0}", "limits.guild_commands_in_flight"},
		{"guild backlog 0", "limits: {guild_backlog: 0}", "limits.guild_backlog"},
		{"interactions in flight 0", "limits: {interactions_in_flight: 0}", "limits.interactions_in_flight"},
		{"shard max lag 0", "limits: {shard_max_lag: 0s}", "limits.shard_max_lag"},
		{"shard max lag past the deadline", "limits: {shard_max_lag: 3s}", "limits.shard_max_lag"},
		{"user commands negative", "limits: {user_commands: -1}", "limits.user_commands"},
		{"guild commands negative", "limits: {guild_commands: -1}", "limits.guild_commands"},
		{"rate window too short", "limits: {rate_window: 500ms}", "limits.rate_window"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Decode(strings.NewReader(validYAML))
			if err != nil {
				t.Fatal(err)
			}
			// Overlay the case on the valid base, as an operator's edit would.
			cfg, err = decodeOver(cfg, tc.yaml)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			err = cfg.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a FieldError for %s", err, tc.field)
			}
			if fe.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), "got ") {
				t.Fatalf("message %q does not name the field and value", err)
			}
		})
	}
}

func decodeOver(base Config, overlay string) (Config, error) {
	return base, decodeInto(&base, strings.NewReader(overlay))
}

func TestValidBaseAndAlternatives(t *testing.T) {
	for _, y := range []string{
		validYAML,
		validYAML + "cluster: {provider: etcd, etcd_endpoints: ['http://127.0.0.1:2379']}\nstore: {kind: redis}\n",
		validYAML + "cluster: {provider: automanaged, automanaged_addr: '127.0.0.1:6330', members: ['127.0.0.1:6330', '127.0.0.1:6331']}\nstore: {kind: redis}\n",
		validYAML + "cluster: {provider: automanaged, automanaged_addr: '0.0.0.0:6330', bind_addr: '192.168.1.5:7000', members: ['192.168.1.5:6330', '192.168.1.6:6330'], automanaged_refresh: 500ms}\nstore: {kind: redis}\n",
		validYAML + "discord: {shard_count: 16, dev_guild_id: '81384788765712384'}\n",
		validYAML + "cluster: {provider: etcd, etcd_endpoints: ['etcd:2379'], bind_addr: '0.0.0.0:7000', advertise_addr: '10.0.0.5:7000'}\nstore: {kind: redis}\n",
	} {
		cfg, err := Decode(strings.NewReader(y))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("valid config refused: %v\n%s", err, y)
		}
	}
}

func TestDecodeIsStrict(t *testing.T) {
	for name, y := range map[string]string{
		"unknown top-level field": "nodes: []",
		"unknown nested field":    "store: {bolt: {path: x}}",
		"wrong type":              "discord: {shard_count: many}",
		"bad duration":            "node: {shutdown_timeout: soon}",
		"two documents":           validYAML + "---\n" + validYAML,
		"secret in file":          "discord: {token: abc}",
	} {
		if _, err := Decode(strings.NewReader(y)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		c := Default()
		c.Lavalink.Nodes = []LavalinkNode{{Name: "a", Address: "127.0.0.1:1"}, {Name: "b", Address: "127.0.0.1:2", PasswordEnv: "LAVALINK_B_PASSWORD"}}
		return c
	}

	c := base()
	err := c.ApplyEnv(env(map[string]string{
		"DISCORD_TOKEN": "env-token", "REDIS_PASSWORD": "redis-pw",
		"LAVALINK_PASSWORD": "ll-a", "LAVALINK_B_PASSWORD_FILE": tokenFile,
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Discord.Token.Reveal(), c.Store.Redis.Password.Reveal(), c.Lavalink.Nodes[0].Password.Reveal(), c.Lavalink.Nodes[1].Password.Reveal()}
	want := []string{"env-token", "redis-pw", "ll-a", "file-token"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("secrets = %q, want %q", got, want)
	}

	c = base()
	if err := c.ApplyEnv(env(map[string]string{"DISCORD_TOKEN_FILE": tokenFile})); err != nil || c.Discord.Token.Reveal() != "file-token" {
		t.Fatalf("token file: %v %q", err, c.Discord.Token.Reveal())
	}

	for name, e := range map[string]map[string]string{
		"both set":     {"DISCORD_TOKEN": "x", "DISCORD_TOKEN_FILE": tokenFile},
		"missing file": {"REDIS_PASSWORD_FILE": filepath.Join(dir, "nope")},
		"empty file":   {"LAVALINK_PASSWORD_FILE": emptyFile},
	} {
		c := base()
		if err := c.ApplyEnv(env(e)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLoadErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(p, []byte("discord: {shard_count: 0}\n"+validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, env(nil))
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "discord.shard_count") {
		t.Fatalf("Load = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), env(nil)); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestDurationsDecode(t *testing.T) {
	cfg, err := Decode(strings.NewReader(validYAML + "limits: {guild_idle_timeout: 1h30m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.GuildIdleTimeout != 90*time.Minute {
		t.Fatalf("guild_idle_timeout = %v", cfg.Limits.GuildIdleTimeout)
	}
}

// yamlKeys lists every configuration key as a dotted path, lists as [].
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || tag == "" {
			continue
		}
		key := prefix + tag
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() && ft.Name() != "Duration":
			keys = append(keys, yamlKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft.Elem(), key+"[].")...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

// TestReadmeReferenceIsComplete keeps README.md's configuration table and
// the Config struct in step: every key documented, no documented key gone.
func TestReadmeReferenceIsComplete(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Configuration keys are dotted (section.key); other tables in the
	// README (metrics, say) name other things.
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+\\.[a-z_.\\[\\]]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	keys := yamlKeys(reflect.TypeOf(Config{}), "")
	sort.Strings(keys)
	for _, k := range keys {
		if !documented[k] {
			t.Errorf("README.md does not document %s", k)
		}
		delete(documented, k)
	}
	for k := range documented {
		t.Errorf("README.md documents %s, which Config does not have", k)
	}
	if len(keys) < 30 {
		t.Fatalf("only %d keys found; the reflection walk is broken", len(keys))
	}
}

// TestClusterYAMLListsEveryKey keeps the documented default file complete.
func TestClusterYAMLListsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range yamlKeys(reflect.TypeOf(Config{}), "") {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*(- )?` + regexp.QuoteMeta(leaf) + `:`).Match(b) {
			t.Errorf("cluster.yaml does not set %s", k)
		}
	}
}

// FuzzDecode: no input makes decoding or validation panic, and whatever
// validates holds the guarantees the rest of the node relies on.
func FuzzDecode(f *testing.F) {
	seed, _ := os.ReadFile("../../cluster.yaml")
	f.Add(string(seed))
	f.Add(validYAML)
	f.Add("lavalink: {nodes: [{name: a, address: '[::1]:2333'}]}\nnode: {shutdown_timeout: 1h}")
	f.Add("store: {kind: redis, redis: {db: -1}}")
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := Decode(strings.NewReader(doc))
		if err != nil {
			return
		}
		if cfg.Validate() != nil {
			return
		}
		if cfg.Discord.ShardCount < 1 || cfg.Limits.QueueMax < 1 || len(cfg.Lavalink.Nodes) == 0 ||
			cfg.Node.ShutdownTimeout <= 0 || cfg.Limits.GuildCommandsInFlight < 1 || cfg.Limits.GuildBacklog < 1 {
			t.Fatalf("validated config breaks a bound: %+v", cfg)
		}
		for _, n := range cfg.Lavalink.Nodes {
			if _, _, err := net.SplitHostPort(n.Address); err != nil || n.Name == "" {
				t.Fatalf("validated node %+v", n)
			}
		}
		if cfg.Store.Kind == StoreBbolt && cfg.Cluster.Provider != ProviderSingle {
			t.Fatal("bbolt validated with a multi-member provider")
		}
	})
}

// TestTokenShape: a token that cannot be a bot token is refused at start
// with a line that names DISCORD_TOKEN and never the value; opaque tokens
// pass where a Discord-compatible server (discord.rest_url) may issue them.
func TestTokenShape(t *testing.T) {
	// The shape of Discord's bot tokens: base64 of the bot's ID, a
	// timestamp, an HMAC (made up here).
	shaped := base64.RawStdEncoding.EncodeToString([]byte("1234567890123456789")) + ".GhT3kA.q0uN7m2Yc9xVb4rT1sLp8eWz6aKj5dHf3gUo0iE"
	tests := []struct {
		name, token string
		compatible  bool // discord.rest_url set
		wantErr     string
	}{
		{"bot token", shaped, false, ""},
		{"bot token, URL-safe alphabet", "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs-", false, ""},
		{"client secret instead", "k3Jd8s0Qm2Zx7Vb1Nc4Lp9Rt6Yw5Ue0A", false, "three parts"},
		{"public key instead", strings.Repeat("a1f3", 16), false, "three parts"},
		{"application ID instead", "1234567890123456789", false, "three parts"},
		{"first part not an ID", base64.RawStdEncoding.EncodeToString([]byte("hello world")) + ".GhT3kA.q0uN7m2Yc9", false, "bot's ID"},
		{"empty part", shaped[:strings.Index(shaped, ".")] + "..abc", false, "three parts"},
		{"Bot prefix", "Bot " + shaped, false, `"Bot " prefix`},
		{"quoted", `"` + shaped + `"`, false, "quotes"},
		{"line break inside", shaped + "\nsecond", false, "line breaks"},
		{"not base64", shaped[:strings.LastIndex(shaped, ".")] + ".abc!def", false, "base64"},
		{"opaque token on a compatible server", "opaque0123456789abcdef0123456789abcdef", true, ""},
		{"space on a compatible server", "opaque 0123", true, "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if tt.compatible {
				c.Discord.RESTURL = "http://127.0.0.1:1/api/v10"
			}
			c.Discord.Token = secret.New(tt.token)
			err := c.validateDiscord()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "DISCORD_TOKEN") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error naming DISCORD_TOKEN and %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(strings.Trim(tt.token, `"`))) {
				t.Fatalf("the error quotes the token: %v", err)
			}
		})
	}
}

// FuzzTokenShape: no token makes the check panic, a refusal is one of the
// fixed texts (so it never quotes the token), and nothing with spaces or
// quotes passes.
func FuzzTokenShape(f *testing.F) {
	f.Add("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs", false)
	f.Add("Bot abc.def.ghi", false)
	f.Add("opaque0123", true)
	f.Add("a..b", false)
	f.Fuzz(func(t *testing.T, tok string, compatible bool) {
		reason := tokenShape(tok, !compatible)
		switch reason {
		case "", tokenPrefixed, tokenCharacters, tokenParts, tokenBase64, tokenID:
		default:
			t.Fatalf("a reason of its own: %q", reason)
		}
		if reason == "" && strings.ContainsAny(tok, " \n\r\t\"'") {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// TestFlagsApplyBeforeValidation: a file that is only valid with a flag
// (one cluster.yaml for every pod, each with its own --advertise-addr)
// loads with it, and is refused, naming the field, without it.
func TestFlagsApplyBeforeValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	y := validYAML + "cluster: {provider: etcd, etcd_endpoints: ['etcd:2379'], bind_addr: '0.0.0.0:7000'}\nstore: {kind: redis}\n"
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	if _, err := Load(path, noEnv); err == nil || !strings.Contains(err.Error(), "cluster.bind_addr") {
		t.Fatalf("without the flag: %v; want cluster.bind_addr refused", err)
	}
	cfg, err := LoadWith(path, noEnv, Flags{AdvertiseAddr: "10.0.0.5:7000", AdminAddr: "127.0.0.1:9191"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.AdvertiseAddr != "10.0.0.5:7000" || cfg.Node.AdminAddr != "127.0.0.1:9191" || cfg.Cluster.BindAddr != "0.0.0.0:7000" {
		t.Fatalf("flags not applied: %+v %+v", cfg.Cluster, cfg.Node)
	}
	if _, err := LoadWith(path, noEnv, Flags{AdvertiseAddr: "0.0.0.0:7000"}); err == nil || !strings.Contains(err.Error(), "cluster.advertise_addr") {
		t.Fatalf("a bad flag: %v; want cluster.advertise_addr refused", err)
	}
}
