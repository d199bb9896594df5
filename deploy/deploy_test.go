package deploy_test

import (
	"bufio"
	"debug/elf"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ensemble-bot/ensemble/internal/config"
)

// The tests run in deploy/; the repository's root is one up.
const root = ".."

// fakeToken has a bot token's shape (base64 of a snowflake, then two
// parts), so the loader's shape check passes the way a real token does.
var fakeToken = base64.RawStdEncoding.EncodeToString([]byte("1579319138227060737")) + ".ZmFrZQ.ZmFrZS1zaWduYXR1cmUtZm9yLXRlc3Rz"

// runtimeEnv are variables a node reads that internal/config does not:
// the Go runtime's. OTEL_* (OpenTelemetry, internal/telemetry) are allowed
// too, by prefix.
var runtimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// ---------------------------------------------------------------------------
// YAML helpers
// ---------------------------------------------------------------------------

// readDocs decodes every document of a (multi-document) YAML file; empty
// documents are skipped.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for i := 1; ; i++ {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d does not parse: %v", path, i, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, path ...string) string {
	switch x := get(v, path...).(type) {
	case string:
		return x
	case int, float64, bool:
		return fmt.Sprint(x)
	}
	return ""
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func mapping(v any, path ...string) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

func strs(v any, path ...string) []string {
	var out []string
	for _, x := range list(v, path...) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// flagValue returns the value of flag name in args ("--f v" or "--f=v").
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// cmd/node's flags
// ---------------------------------------------------------------------------

// flagDef matches a flag definition in cmd/node/main.go's parseFlags, such
// as fs.StringVar(&f.bindAddr, "bind-addr", ...).
var flagDef = regexp.MustCompile(`fs\.(\w+)Var\(&f\.\w+,\s*"([a-z][a-z0-9-]*)"`)

// nodeFlags returns the flags cmd/node defines, read from its source so
// the list cannot drift from main.go: "--name" -> whether it is a bool.
func nodeFlags(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "cmd", "node", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, m := range flagDef.FindAllStringSubmatch(string(src), -1) {
		defined["--"+m[2]] = m[1] == "Bool"
	}
	for _, want := range []string{"--config", "--admin-addr", "--bind-addr", "--advertise-addr"} {
		if _, ok := defined[want]; !ok {
			t.Fatalf("cmd/node/main.go: no %s among the flags found (%v): did the flag or the way flags are defined change?", want, sortedKeys(defined))
		}
	}
	return defined
}

// nodeArgs parses a member's arguments the way cmd/node's flag set does
// (--name value or --name=value; a bool flag takes no value). Each must be
// a flag cmd/node defines, given once; cmd/node refuses stray arguments.
func nodeArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	defined := nodeFlags(t)
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			t.Errorf("%s: argument %q is not a flag: cmd/node refuses stray arguments", where, args[i])
			continue
		}
		name, value, hasValue := strings.Cut(args[i], "=")
		name = "--" + strings.TrimLeft(name, "-")
		isBool, ok := defined[name]
		if !ok {
			t.Errorf("%s: %s is not a flag of cmd/node (it has %s)", where, name, strings.Join(sortedKeys(defined), ", "))
			continue
		}
		if !hasValue && !isBool {
			if i+1 >= len(args) {
				t.Errorf("%s: %s has no value", where, name)
				continue
			}
			i++
			value = args[i]
		}
		if _, twice := flags[name]; twice {
			t.Errorf("%s: %s is given twice (the last one wins)", where, name)
		}
		flags[name] = value
	}
	return flags
}

// flagFields are cmd/node's flags that override a configuration field (its
// loadConfig hands them to config.LoadWith as config.Flags);
// notConfigFlags are those that do not touch the configuration.
var (
	flagFields = map[string]func(*config.Flags) *string{
		"--admin-addr":     func(f *config.Flags) *string { return &f.AdminAddr },
		"--bind-addr":      func(f *config.Flags) *string { return &f.BindAddr },
		"--advertise-addr": func(f *config.Flags) *string { return &f.AdvertiseAddr },
	}
	notConfigFlags = map[string]bool{"--config": true, "--log-format": true, "--log-level": true}
)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---------------------------------------------------------------------------
// Configuration helpers
// ---------------------------------------------------------------------------

// secretEnv returns the variables the configuration's secrets are read
// from, as config.ApplyEnv itself asks for them (NAME and NAME_FILE each):
// the list cannot drift from config.go.
func secretEnv(cfg config.Config) map[string]bool {
	c := cfg
	c.Lavalink.Nodes = slices.Clone(cfg.Lavalink.Nodes)
	names := map[string]bool{}
	_ = c.ApplyEnv(func(name string) string { names[name] = true; return "" })
	return names
}

// loadWith loads the configuration file at path through config.LoadWith,
// with flags and the environment a manifest gives the node: a NAME_FILE
// variable's container path is replaced by a file the test writes (a
// token-shaped fake for the Discord token), and other values (often
// interpolations such as ${LAVALINK_PASSWORD:?...}) by a fake, so the
// loader reads the secrets the way it will in the container.
func loadWith(t *testing.T, path string, env map[string]string, flags config.Flags) (config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	getenv := func(name string) string {
		v, ok := env[name]
		if !ok || v == "" {
			return ""
		}
		secret := "fake-secret"
		if name == "DISCORD_TOKEN" || name == "DISCORD_TOKEN_FILE" {
			secret = fakeToken
		}
		if !strings.HasSuffix(name, "_FILE") {
			return secret
		}
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	return config.LoadWith(path, getenv, flags)
}

// loadAsNode loads a member's configuration the way cmd/node does: the
// file, its secrets and the flags that override fields, validated together
// (config.LoadWith).
func loadAsNode(t *testing.T, path string, env, flags map[string]string) (config.Config, error) {
	t.Helper()
	var f config.Flags
	for _, name := range sortedKeys(flags) {
		if notConfigFlags[name] {
			continue
		}
		field, ok := flagFields[name]
		if !ok {
			t.Fatalf("%s: the test does not know what this flag does to the configuration; teach flagFields (as cmd/node/main.go's loadConfig applies it)", name)
		}
		*field(&f) = flags[name]
	}
	return loadWith(t, path, env, f)
}

// advertised is where the other members reach this one: cluster.advertise_addr,
// or cluster.bind_addr as it is when that is empty.
func advertised(cfg config.Cluster) string {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr
	}
	return cfg.BindAddr
}

// portOf is addr's port, or "" when addr is not host:port.
func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return p
}

// checkEnv checks the variables a manifest gives a node: each is read by
// the node (a secret's variable for this configuration, a runtime one, or
// one of extra), and every secret the deployment needs is set (the Discord
// token, each Lavalink node's password, the Redis password).
func checkEnv(t *testing.T, where string, cfg config.Config, env map[string]string, extra map[string]bool) {
	t.Helper()
	read := secretEnv(cfg)
	for _, name := range sortedKeys(env) {
		if read[name] || runtimeEnv[name] || strings.HasPrefix(name, "OTEL_") || extra[name] {
			continue
		}
		t.Errorf("%s sets %s, which the node does not read (internal/config reads %s for this configuration; the Go runtime %s)",
			where, name, strings.Join(sortedKeys(read), ", "), strings.Join(sortedKeys(runtimeEnv), ", "))
	}
	need := []string{"DISCORD_TOKEN"}
	for _, n := range cfg.Lavalink.Nodes {
		name := n.PasswordEnv
		if name == "" {
			name = "LAVALINK_PASSWORD"
		}
		need = append(need, name)
	}
	if cfg.Store.Kind == config.StoreRedis {
		need = append(need, "REDIS_PASSWORD")
	}
	if host, _, err := net.SplitHostPort(cfg.Node.AdminAddr); err == nil && !isLoopback(host) {
		// Off loopback, /status answers 403 without it (and the node warns).
		need = append(need, "ADMIN_TOKEN")
	}
	for _, name := range need {
		_, plain := env[name]
		_, file := env[name+"_FILE"]
		switch {
		case plain && file:
			t.Errorf("%s sets both %s and %s_FILE: the node refuses to start", where, name, name)
		case !plain && !file:
			t.Errorf("%s sets neither %s nor %s_FILE: the node would run without that secret", where, name, name)
		}
	}
}

// loadChecked loads a deployment's node configuration with the manifest's
// environment and flags, as the node will, and checks what every deployed
// member needs: its secrets, an admin token off loopback, and an address
// the other members reach on the port it listens on.
func loadChecked(t *testing.T, where, path string, env, flags map[string]string) config.Config {
	t.Helper()
	cfg, err := loadAsNode(t, path, env, flags)
	if err != nil {
		t.Fatalf("%s: the node refuses this configuration with these flags and this environment (it would exit 2): %v", where, err)
	}
	if cfg.Cluster.Provider == config.ProviderK8s {
		t.Errorf("%s: provider k8s is validated but refused at start; use etcd", where)
	}
	if !cfg.Discord.Token.IsSet() {
		t.Errorf("%s: no Discord token reaches the node", where)
	}
	for _, n := range cfg.Lavalink.Nodes {
		if !n.Password.IsSet() {
			t.Errorf("%s: no password reaches the node for Lavalink node %s (%s)", where, n.Name, n.PasswordEnv)
		}
	}
	if cfg.Store.Kind == config.StoreRedis && !cfg.Store.Redis.Password.IsSet() {
		t.Errorf("%s: no Redis password reaches the node", where)
	}
	if host, _ := adminPort(t, where, cfg); !isLoopback(host) && !cfg.Node.AdminToken.IsSet() {
		t.Errorf("%s: node.admin_addr %s is not loopback and no ADMIN_TOKEN reaches the node: /status would answer 403", where, cfg.Node.AdminAddr)
	}
	if cl := cfg.Cluster; cl.Provider != config.ProviderSingle {
		adv := advertised(cl)
		advHost, _, _ := net.SplitHostPort(adv)
		if ip := net.ParseIP(advHost); isLoopback(advHost) || (ip != nil && ip.IsUnspecified()) {
			t.Errorf("%s: the member is advertised at %s (cluster.advertise_addr %q, cluster.bind_addr %q): the other members, in their own containers, cannot reach it there",
				where, adv, cl.AdvertiseAddr, cl.BindAddr)
		}
		if bindHost, _, _ := net.SplitHostPort(cl.BindAddr); cl.AdvertiseAddr != "" && isLoopback(bindHost) {
			t.Errorf("%s: cluster.bind_addr %s listens on loopback only: the others cannot connect to it at %s", where, cl.BindAddr, cl.AdvertiseAddr)
		}
		if portOf(cl.BindAddr) != portOf(adv) {
			t.Errorf("%s: the member listens on port %s (cluster.bind_addr %s) but is advertised on port %s (%s); nothing here forwards one to the other",
				where, portOf(cl.BindAddr), cl.BindAddr, portOf(adv), adv)
		}
	}
	return cfg
}

func adminPort(t *testing.T, where string, cfg config.Config) (host string, port int) {
	t.Helper()
	h, p, err := net.SplitHostPort(cfg.Node.AdminAddr)
	if err != nil {
		t.Fatalf("%s: node.admin_addr %q: %v", where, cfg.Node.AdminAddr, err)
	}
	port, _ = strconv.Atoi(p)
	return h, port
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// ---------------------------------------------------------------------------
// Parsing of every manifest
// ---------------------------------------------------------------------------

func TestManifestsParse(t *testing.T) {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"compose.yaml"}, files...)
	if len(files) < 5 {
		t.Fatalf("expected compose.yaml and the Kubernetes manifests, found %v", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			for i, d := range readDocs(t, f) {
				if f == "compose.yaml" {
					if mapping(d, "services") == nil {
						t.Errorf("%s: no services", f)
					}
					continue
				}
				if str(d, "apiVersion") == "" || str(d, "kind") == "" {
					t.Errorf("%s: document %d has no apiVersion or kind", f, i+1)
				}
				if str(d, "kind") != "Kustomization" && str(d, "metadata", "name") == "" {
					t.Errorf("%s: document %d (%s) has no metadata.name", f, i+1, str(d, "kind"))
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Every node configuration under deploy/ and in DEPLOYMENT.md
// ---------------------------------------------------------------------------

// TestConfigFilesLoad loads every file under deploy/ that is a node
// configuration (a YAML file with a top-level node: or cluster: key) through
// the node's loader, on its own as the node first loads it, so a renamed or
// misspelt key fails here. (TestCompose and TestKubernetes load them again
// with the flags and environment the members get.)
func TestConfigFilesLoad(t *testing.T) {
	var found []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var top map[string]any
		if yaml.Unmarshal(b, &top) != nil {
			return nil // multi-document manifests; TestManifestsParse covers them
		}
		if _, ok := top["cluster"]; ok {
			found = append(found, path)
		} else if _, ok := top["node"]; ok {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("expected the compose members' configuration (compose/cluster.yaml) under deploy/, found none")
	}
	for _, path := range found {
		t.Run(path, func(t *testing.T) {
			if _, err := config.Load(path, func(string) string { return "" }); err != nil {
				t.Errorf("the node refuses %s: %v", path, err)
			}
		})
	}
}

// TestDeploymentGuideConfigs loads DEPLOYMENT.md's configurations: the
// ```yaml blocks marked <!-- cluster.yaml -->, and the loopback
// walk-through's configuration with the flags each member starts with
// (scripts/deployment-check.sh runs the walk-through itself).
func TestDeploymentGuideConfigs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "DEPLOYMENT.md"))
	if err != nil {
		t.Fatal(err)
	}
	type block struct{ name, text string }
	var blocks []block
	lines := strings.Split(string(doc), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "<!-- cluster.yaml -->" {
			continue
		}
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j >= len(lines) || strings.TrimSpace(lines[j]) != "```yaml" {
			t.Fatalf("DEPLOYMENT.md:%d: <!-- cluster.yaml --> is not followed by a ```yaml block", i+1)
		}
		var body []string
		for j++; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			body = append(body, lines[j])
		}
		blocks = append(blocks, block{fmt.Sprintf("DEPLOYMENT.md:%d", i+1), strings.Join(body, "\n")})
	}
	if len(blocks) < 2 {
		t.Fatalf("expected the one-node and cluster examples (```yaml blocks marked <!-- cluster.yaml -->), found %d", len(blocks))
	}
	for _, b := range blocks {
		t.Run(b.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, []byte(b.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(path, func(string) string { return "" }); err != nil {
				t.Errorf("%s: the node refuses this configuration: %v", b.name, err)
			}
		})
	}
	t.Run("loopback walk-through", func(t *testing.T) { checkWalkThrough(t, string(doc)) })
}

const walkThrough = "## Three nodes on one machine (loopback)"

// heredoc matches a configuration the walk-through writes: cat > FILE <<'EOF'.
var heredoc = regexp.MustCompile("(?s)cat > (\\S+\\.ya?ml) <<'EOF'\n(.*?)\nEOF\n")

// checkWalkThrough loads the configuration each member of the loopback
// walk-through starts with (its bin/node line's --config and the flags
// beside it), as the node would, and checks that the three members have
// addresses of their own on fixed ports.
func checkWalkThrough(t *testing.T, doc string) {
	_, section, ok := strings.Cut(doc, "\n"+walkThrough+"\n")
	if !ok {
		t.Fatalf("DEPLOYMENT.md: no section %q", walkThrough)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	dir := t.TempDir()
	files := map[string]bool{}
	for _, m := range heredoc.FindAllStringSubmatch(section, -1) {
		if err := os.WriteFile(filepath.Join(dir, m[1]), []byte(m[2]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[m[1]] = true
	}
	if len(files) == 0 {
		t.Fatal("DEPLOYMENT.md's walk-through writes no configuration (cat > FILE.yaml <<'EOF')")
	}
	members := 0
	binds, admins := map[string]int{}, map[string]int{}
	for _, line := range strings.Split(section, "\n") {
		args := strings.Fields(line)
		if len(args) == 0 || args[0] != "bin/node" {
			continue
		}
		members++
		args = args[1:]
		if i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, ">") || a == "&" }); i >= 0 {
			args = args[:i]
		}
		where := fmt.Sprintf("DEPLOYMENT.md walk-through, member %d (bin/node %s)", members, strings.Join(args, " "))
		flags := nodeArgs(t, where, args)
		if !files[flags["--config"]] {
			t.Errorf("%s: --config %q is not a file the walk-through writes (%v)", where, flags["--config"], sortedKeys(files))
			continue
		}
		cfg, err := loadAsNode(t, filepath.Join(dir, flags["--config"]), nil, flags)
		if err != nil {
			t.Errorf("%s: the node refuses this configuration with these flags (it would exit 2): %v", where, err)
			continue
		}
		for _, a := range []struct {
			what, addr string
			seen       map[string]int
		}{
			{"cluster listener (cluster.bind_addr)", cfg.Cluster.BindAddr, binds},
			{"admin server (node.admin_addr)", cfg.Node.AdminAddr, admins},
		} {
			if p := portOf(a.addr); p == "" || p == "0" {
				t.Errorf("%s: its %s %s has no fixed port: the walk-through names its ports, and deployment-check.sh checks they are free", where, a.what, a.addr)
			}
			if other, dup := a.seen[a.addr]; dup {
				t.Errorf("%s: its %s %s is member %d's too: on one machine each member needs its own", where, a.what, a.addr, other)
			}
			a.seen[a.addr] = members
		}
	}
	if members != 3 {
		t.Errorf("DEPLOYMENT.md's walk-through starts %d members (bin/node lines); deployment-check.sh expects 3", members)
	}
}

// ---------------------------------------------------------------------------
// Docker Compose
// ---------------------------------------------------------------------------

func composeEnv(v any) map[string]string {
	env := map[string]string{}
	switch e := v.(type) {
	case map[string]any:
		for k, x := range e {
			env[k] = fmt.Sprint(x)
		}
	case []any:
		for _, x := range e {
			k, val, _ := strings.Cut(fmt.Sprint(x), "=")
			env[k] = val
		}
	}
	return env
}

// composeSecrets maps a service's secrets to where they are mounted.
func composeSecrets(v any) map[string]string {
	out := map[string]string{}
	for _, s := range list(v) {
		switch x := s.(type) {
		case string:
			out[x] = "/run/secrets/" + x
		case map[string]any:
			target := str(x, "target")
			switch {
			case target == "":
				target = "/run/secrets/" + str(x, "source")
			case !strings.HasPrefix(target, "/"):
				target = "/run/secrets/" + target
			}
			out[str(x, "source")] = target
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	docs := readDocs(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents, want 1", len(docs))
	}
	c := docs[0]
	services := mapping(c, "services")
	nodes := 0
	members := map[string]config.Config{} // by service, as each member runs it
	for _, name := range sortedKeys(services) {
		svc := mapping(services, name)
		args := strs(svc, "command")
		cfgPath := flagValue(args, "--config")
		if cfgPath == "" {
			continue
		}
		nodes++
		t.Run(name, func(t *testing.T) {
			where := "compose.yaml service " + name
			if str(svc, "build", "dockerfile") != "Dockerfile" || str(svc, "build", "context") != ".." {
				t.Errorf("%s: build is %v, want the repository's Dockerfile (context .., dockerfile Dockerfile)", where, get(svc, "build"))
			}
			var local string
			for _, v := range strs(svc, "volumes") {
				parts := strings.Split(v, ":")
				if len(parts) >= 2 && parts[1] == cfgPath {
					local = parts[0]
				}
			}
			if local == "" {
				t.Fatalf("%s: nothing is mounted at --config %s", where, cfgPath)
			}
			env := composeEnv(get(svc, "environment"))
			cfg := loadChecked(t, where+" ("+local+")", local, env, nodeArgs(t, where, args))
			checkEnv(t, where, cfg, env, nil)
			members[name] = cfg

			mounted := composeSecrets(get(svc, "secrets"))
			targets := map[string]string{}
			for src, target := range mounted {
				targets[target] = src
				if mapping(c, "secrets", src) == nil {
					t.Errorf("%s uses secret %s, which compose.yaml's secrets do not define", where, src)
				}
			}
			for _, k := range sortedKeys(env) {
				if strings.HasSuffix(k, "_FILE") && targets[env[k]] == "" {
					t.Errorf("%s: %s=%s is not where one of its secrets is mounted (%v)", where, k, env[k], sortedKeys(targets))
				}
			}

			grace, err := time.ParseDuration(str(svc, "stop_grace_period"))
			if err != nil {
				grace = 10 * time.Second // Docker's default
			}
			if grace <= cfg.Node.ShutdownTimeout {
				t.Errorf("%s: stop_grace_period %s must exceed node.shutdown_timeout %s, or Docker kills the member mid-drain",
					where, grace, cfg.Node.ShutdownTimeout)
			}

			host, port := adminPort(t, where, cfg)
			if isLoopback(host) {
				t.Errorf("%s: node.admin_addr %s is the container's own loopback: nothing outside the container reaches it", where, cfg.Node.AdminAddr)
			}
			for _, p := range strs(svc, "ports") {
				parts := strings.Split(p, ":")
				if len(parts) != 3 || !isLoopback(parts[0]) {
					t.Errorf("%s publishes %q: publish the admin port on the host's loopback only (127.0.0.1:HOST:CONTAINER)", where, p)
					continue
				}
				if parts[2] != strconv.Itoa(port) {
					t.Errorf("%s publishes container port %s, but node.admin_addr is %s", where, parts[2], cfg.Node.AdminAddr)
				}
			}

			// The others dial the advertised host: on the compose network
			// that resolves for a service's name, container_name and
			// network aliases (not for its hostname:, which only the
			// container itself knows).
			names := []string{name}
			if cn := str(svc, "container_name"); cn != "" {
				names = append(names, cn)
			}
			for _, n := range mapping(svc, "networks") {
				names = append(names, strs(n, "aliases")...)
			}
			adv := advertised(cfg.Cluster)
			if h, _, _ := net.SplitHostPort(adv); !slices.Contains(names, h) {
				t.Errorf("%s: advertised at %s, but the other members reach this container by %s: use --advertise-addr %s:%s",
					where, adv, strings.Join(names, " or "), name, portOf(cfg.Cluster.BindAddr))
			}
		})
	}
	if nodes < 2 {
		t.Errorf("compose.yaml: %d node services (with --config), want at least 2 to form a cluster", nodes)
	}
	checkMembersAgree(t, "compose.yaml", members)
	redis := strings.Join(strs(services, "redis", "command"), " ")
	if !strings.Contains(redis, "--appendonly yes") {
		t.Errorf("compose.yaml: Redis must run with --appendonly yes (the store's fencing epochs live there); command: %s", redis)
	}
	if img := str(services, "lavalink", "image"); img != "ghcr.io/lavalink-devs/lavalink:4" {
		t.Errorf("compose.yaml: lavalink image %q, want ghcr.io/lavalink-devs/lavalink:4", img)
	}
	for _, v := range strs(services, "lavalink", "volumes") {
		if src, _, _ := strings.Cut(v, ":"); strings.HasSuffix(src, "application.yml") {
			if _, err := os.Stat(src); err != nil {
				t.Errorf("compose.yaml: Lavalink's %s: %v", src, err)
			}
		}
	}
}

// checkMembersAgree checks the members of one cluster, as each runs its
// configuration: each is advertised at an address of its own, and they
// agree on everything else (name, provider, etcd, store, shard count,
// Lavalink nodes, ...).
func checkMembersAgree(t *testing.T, where string, members map[string]config.Config) {
	t.Helper()
	names := sortedKeys(members)
	at := map[string]string{}
	for _, n := range names {
		adv := advertised(members[n].Cluster)
		if other, dup := at[adv]; dup {
			t.Errorf("%s: %s and %s are both advertised at %s: the others would take them for one member", where, other, n, adv)
		}
		at[adv] = n
	}
	for _, n := range names[min(1, len(names)):] {
		a, b := members[names[0]], members[n]
		a.Cluster.BindAddr, a.Cluster.AdvertiseAddr = "", ""
		b.Cluster.BindAddr, b.Cluster.AdvertiseAddr = "", ""
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: %s's configuration differs from %s's in more than its own address (cluster.bind_addr, cluster.advertise_addr)", where, n, names[0])
		}
	}
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

type object struct {
	file string
	doc  map[string]any
}

func (o object) kind() string { return str(o.doc, "kind") }
func (o object) name() string { return str(o.doc, "metadata", "name") }

// selects reports whether a label selector (matchLabels, or a Service's
// plain selector) picks pods with these labels.
func selects(sel map[string]any, labels map[string]any) bool {
	if m := mapping(sel, "matchLabels"); m != nil {
		sel = m
	}
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// quantity parses Kubernetes and Go memory sizes (512Mi, 460MiB, 1G, bytes).
func quantity(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

var argVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func TestKubernetes(t *testing.T) {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	for _, f := range files {
		for _, d := range readDocs(t, f) {
			objs = append(objs, object{f, d})
		}
	}
	byKind := func(kind string) []object {
		var out []object
		for _, o := range objs {
			if o.kind() == kind {
				out = append(out, o)
			}
		}
		return out
	}
	find := func(kind, name string) (object, bool) {
		for _, o := range byKind(kind) {
			if o.name() == name {
				return o, true
			}
		}
		return object{}, false
	}

	workloads := append(byKind("StatefulSet"), byKind("Deployment")...)
	if len(workloads) == 0 {
		t.Fatal("deploy/k8s: no StatefulSet or Deployment")
	}
	for _, w := range workloads {
		t.Run(w.kind()+"/"+w.name(), func(t *testing.T) {
			checkWorkload(t, w, objs, find)
		})
	}

	t.Run("kustomization", func(t *testing.T) {
		k, ok := find("Kustomization", "") // a Kustomization has no metadata.name
		if !ok {
			t.Fatal("deploy/k8s: no kustomization.yaml")
		}
		var want []string
		for _, f := range files {
			if b := filepath.Base(f); b != "kustomization.yaml" && !strings.Contains(b, ".example.") {
				want = append(want, b)
			}
		}
		got := strs(k.doc, "resources")
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("kustomization.yaml resources %v, want every manifest but itself and the *.example.yaml ones: %v", got, want)
		}
	})
}

// podIP is the address the test gives the pod's status.podIP when it
// expands the arguments, as the kubelet would.
const podIP = "10.244.1.7"

func checkWorkload(t *testing.T, w object, objs []object, find func(kind, name string) (object, bool)) {
	spec := mapping(w.doc, "spec")
	pod := mapping(spec, "template", "spec")
	labels := mapping(spec, "template", "metadata", "labels")
	grace := 30 * time.Second // Kubernetes' default
	if g, ok := get(pod, "terminationGracePeriodSeconds").(int); ok {
		grace = time.Duration(g) * time.Second
	}
	if !selects(mapping(spec, "selector"), labels) {
		t.Errorf("%s: spec.selector does not select the pod template's labels", w.file)
	}

	volumes := map[string]map[string]any{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = mapping(v)
	}

	var admin, cluster int // the node's admin and cluster ports
	var clusterPortName string
	containers := 0
	for _, c := range list(pod, "containers") {
		args := append(strs(c, "command"), strs(c, "args")...)
		if flagValue(args, "--config") == "" {
			continue
		}
		containers++
		cname := str(c, "name")
		where := fmt.Sprintf("%s container %s", w.file, cname)

		env := map[string]string{}
		fieldRefs := map[string]string{}
		for _, e := range list(c, "env") {
			name := str(e, "name")
			if get(e, "valueFrom") != nil {
				fieldRefs[name] = str(e, "valueFrom", "fieldRef", "fieldPath")
				continue
			}
			env[name] = str(e, "value")
		}
		// Variables Kubernetes expands into the arguments are the
		// container's business, not the node's.
		expanded := map[string]bool{}
		for _, m := range argVar.FindAllStringSubmatch(strings.Join(args, " "), -1) {
			expanded[m[1]] = true
			if fieldRefs[m[1]] == "" && env[m[1]] == "" {
				t.Errorf("%s: the arguments use $(%s), which the container's env does not define", where, m[1])
			}
		}
		for name, ref := range fieldRefs {
			if !expanded[name] {
				t.Errorf("%s sets %s from %s, which neither the node nor its arguments use", where, name, ref)
			}
		}

		// One configuration for every pod, so that scaling is replicas
		// alone; what differs per pod comes from the arguments.
		flags := nodeArgs(t, where, args)
		cfgPath := flags["--config"]
		if strings.Contains(cfgPath, "$(") {
			t.Errorf("%s: --config %s differs per pod; give every pod the same configuration (its own addresses come from --advertise-addr), so that scaling is just replicas", where, cfgPath)
		}

		// The others reach a member at its pod's IP: --advertise-addr
		// $(VAR):PORT with VAR from the downward API's status.podIP.
		adv := flags["--advertise-addr"]
		advHost, _, err := net.SplitHostPort(adv)
		m := argVar.FindStringSubmatch(advHost)
		switch {
		case adv == "":
			t.Errorf("%s: no --advertise-addr: each pod must tell the others where to reach it, --advertise-addr $(POD_IP):PORT with POD_IP from fieldRef status.podIP", where)
		case err != nil:
			t.Errorf("%s: --advertise-addr %s is not host:port (an IPv6 pod IP needs [$(POD_IP)]:PORT): %v", where, adv, err)
		case m == nil || m[0] != advHost:
			t.Errorf("%s: --advertise-addr %s: its host must be the pod's IP, $(POD_IP) with POD_IP from fieldRef status.podIP", where, adv)
		case fieldRefs[m[1]] != "status.podIP":
			t.Errorf("%s: --advertise-addr %s uses $(%s), which is not the pod's IP: define %s from fieldRef status.podIP (it is %q)", where, adv, m[1], m[1], fieldRefs[m[1]])
		}

		// The arguments of one pod, expanded as the kubelet does.
		podName := w.name()
		if w.kind() == "StatefulSet" {
			podName += "-0"
		}
		podFlags := map[string]string{}
		for k, v := range flags {
			podFlags[k] = argVar.ReplaceAllStringFunc(v, func(s string) string {
				name := argVar.FindStringSubmatch(s)[1]
				switch fieldRefs[name] {
				case "status.podIP":
					return podIP
				case "metadata.name":
					return podName
				}
				return env[name]
			})
		}

		// The configuration: a key of a ConfigMap mounted where --config points.
		mounts := list(c, "volumeMounts")
		var cm map[string]any
		for _, m := range mounts {
			if filepath.Dir(cfgPath) == str(m, "mountPath") {
				cm = mapping(volumes[str(m, "name")], "configMap")
			}
		}
		if cm == nil {
			t.Fatalf("%s: no ConfigMap volume is mounted where --config %s points", where, cfgPath)
		}
		o, ok := find("ConfigMap", str(cm, "name"))
		if !ok {
			t.Fatalf("%s: ConfigMap %s is not among the manifests", where, str(cm, "name"))
		}
		key := filepath.Base(cfgPath)
		text := str(o.doc, "data", key)
		if text == "" {
			t.Fatalf("%s: --config %s, but ConfigMap %s has no key %s (keys: %v)", where, cfgPath, o.name(), key, sortedKeys(mapping(o.doc, "data")))
		}
		for _, k := range sortedKeys(mapping(o.doc, "data")) {
			if k != key {
				t.Errorf("%s: ConfigMap %s has a key %s that no pod reads (they read %s): a leftover?", where, o.name(), k, key)
			}
		}
		local := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(local, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cw := fmt.Sprintf("%s (pod %s with status.podIP %s, ConfigMap %s key %s)", where, podName, podIP, o.name(), key)
		cfg := loadChecked(t, cw, local, env, podFlags)
		checkEnv(t, cw, cfg, env, expanded)
		if grace <= cfg.Node.ShutdownTimeout {
			t.Errorf("%s: terminationGracePeriodSeconds %s must exceed node.shutdown_timeout %s, or the kubelet kills the member mid-drain",
				cw, grace, cfg.Node.ShutdownTimeout)
		}
		host, port := adminPort(t, cw, cfg)
		if isLoopback(host) {
			t.Errorf("%s: node.admin_addr %s is the pod's loopback: the kubelet's probes and Prometheus cannot reach it", cw, cfg.Node.AdminAddr)
		}
		admin = port
		cluster, _ = strconv.Atoi(portOf(cfg.Cluster.BindAddr))

		// Secret files: each under a mounted Secret that has the key.
		for _, name := range sortedKeys(env) {
			if !strings.HasSuffix(name, "_FILE") {
				continue
			}
			file := env[name]
			ok := false
			for _, m := range mounts {
				vol := volumes[str(m, "name")]
				if filepath.Dir(file) != str(m, "mountPath") || mapping(vol, "secret") == nil {
					continue
				}
				ok = true
				secretName := str(vol, "secret", "secretName")
				if s, found := find("Secret", secretName); found {
					key := filepath.Base(file)
					if get(s.doc, "stringData", key) == nil && get(s.doc, "data", key) == nil {
						t.Errorf("%s: %s=%s, but Secret %s (%s) has no key %s", where, name, file, secretName, s.file, key)
					}
				}
			}
			if !ok {
				t.Errorf("%s: %s=%s is not in a mounted Secret volume", where, name, file)
			}
		}

		// Ports: the cluster port the member listens on is declared (the
		// Services and the NetworkPolicy name it); probes go to the admin
		// port.
		ports := map[string]int{}
		for _, p := range list(c, "ports") {
			n, _ := get(p, "containerPort").(int)
			ports[str(p, "name")] = n
		}
		for name, n := range ports {
			if n == cluster {
				clusterPortName = name
			}
		}
		if clusterPortName == "" {
			t.Errorf("%s: the member listens on port %d (cluster.bind_addr %s), which the container's ports do not declare", where, cluster, cfg.Cluster.BindAddr)
		}
		for _, probe := range []struct{ key, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
			h := mapping(c, probe.key, "httpGet")
			if h == nil {
				t.Errorf("%s: no %s.httpGet", where, probe.key)
				continue
			}
			if got := str(h, "path"); got != probe.path {
				t.Errorf("%s: %s path %q, want %q", where, probe.key, got, probe.path)
			}
			port, isNum := get(h, "port").(int)
			if !isNum {
				port = ports[str(h, "port")]
			}
			if port != admin {
				t.Errorf("%s: %s port %v is %d, but the configuration's node.admin_addr port is %d", where, probe.key, get(h, "port"), port, admin)
			}
		}

		// Resources, and GOMEMLIMIT below the memory limit.
		res := mapping(c, "resources")
		for _, k := range [][]string{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
			if str(res, k...) == "" {
				t.Errorf("%s: resources.%s not set", where, strings.Join(k, "."))
			}
		}
		if limit, err := quantity(str(res, "limits", "memory")); err == nil {
			gml, err := quantity(env["GOMEMLIMIT"])
			switch {
			case env["GOMEMLIMIT"] == "":
				t.Errorf("%s: GOMEMLIMIT not set (deploy/prometheus/alerts.yml's EnsembleHighMemory needs it)", where)
			case err != nil:
				t.Errorf("%s: GOMEMLIMIT %q: %v", where, env["GOMEMLIMIT"], err)
			case gml >= limit:
				t.Errorf("%s: GOMEMLIMIT %s is not below the memory limit %s", where, env["GOMEMLIMIT"], str(res, "limits", "memory"))
			}
		}
		nonRoot, _ := get(pod, "securityContext", "runAsNonRoot").(bool)
		if cNonRoot, ok := get(c, "securityContext", "runAsNonRoot").(bool); ok {
			nonRoot = cNonRoot
		}
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot is not set", where)
		}
	}
	if containers == 0 {
		t.Fatalf("%s: no container runs the node (--config)", w.file)
	}

	// targets reports whether a Service or NetworkPolicy port (a number or
	// a container port's name) is the port p named name.
	targets := func(v any, p int, name string) bool {
		return fmt.Sprint(v) == strconv.Itoa(p) || (name != "" && fmt.Sprint(v) == name)
	}
	clusterPort := strconv.Itoa(cluster) // for messages
	if clusterPortName != "" {
		clusterPort += " (" + clusterPortName + ")"
	}

	// A Service for the admin port; a StatefulSet's governing Service, on
	// the cluster port; and a PodDisruptionBudget.
	adminService := false
	for _, o := range objs {
		if o.kind() != "Service" || !selects(mapping(o.doc, "spec", "selector"), labels) {
			continue
		}
		for _, p := range list(o.doc, "spec", "ports") {
			if targets(get(p, "targetPort"), admin, "admin") {
				adminService = true
			}
		}
	}
	if !adminService {
		t.Errorf("%s: no Service selects the pods on the admin port %d", w.file, admin)
	}
	if w.kind() == "StatefulSet" {
		name := str(spec, "serviceName")
		if svc, ok := find("Service", name); !ok {
			t.Errorf("%s: spec.serviceName %q is not a Service among the manifests", w.file, name)
		} else {
			if !selects(mapping(svc.doc, "spec", "selector"), labels) {
				t.Errorf("%s: the governing Service %s does not select the pods", w.file, name)
			}
			ok := false
			for _, p := range list(svc.doc, "spec", "ports") {
				ok = ok || targets(get(p, "targetPort"), cluster, clusterPortName)
			}
			if !ok {
				t.Errorf("%s: the governing Service %s does not name the cluster port %s", w.file, name, clusterPort)
			}
		}
	}
	pdb := false
	for _, o := range objs {
		if o.kind() == "PodDisruptionBudget" && selects(mapping(o.doc, "spec", "selector"), labels) {
			pdb = true
		}
	}
	if !pdb {
		t.Errorf("%s: no PodDisruptionBudget selects the pods", w.file)
	}

	// A NetworkPolicy over the pods must let the members reach each
	// other's cluster port, or they never form a cluster.
	for _, o := range objs {
		if o.kind() != "NetworkPolicy" || !selects(mapping(o.doc, "spec", "podSelector"), labels) {
			continue
		}
		if types := strs(o.doc, "spec", "policyTypes"); len(types) > 0 && !slices.Contains(types, "Ingress") {
			continue // egress only
		}
		open := false
		for _, rule := range list(o.doc, "spec", "ingress") {
			fromMembers := len(list(rule, "from")) == 0
			for _, from := range list(rule, "from") {
				fromMembers = fromMembers || (get(from, "namespaceSelector") == nil && selects(mapping(from, "podSelector"), labels))
			}
			portOK := len(list(rule, "ports")) == 0
			for _, p := range list(rule, "ports") {
				portOK = portOK || targets(get(p, "port"), cluster, clusterPortName)
			}
			open = open || (fromMembers && portOK)
		}
		if !open {
			t.Errorf("%s: NetworkPolicy %s (%s) does not let the members reach each other's cluster port %s", w.file, o.name(), o.file, clusterPort)
		}
	}
}

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

type instruction struct {
	line int
	op   string // upper case
	args string
}

// dockerfile reads the Dockerfile's instructions, continuation lines
// joined and comments dropped.
func dockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{start, strings.ToUpper(op), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile checks the image's shape and runs its build command: the
// binary it produces must be statically linked (the final image has no
// libc).
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms []instruction
	var final []instruction // the last stage's instructions
	for _, in := range ins {
		if in.op == "FROM" {
			froms = append(froms, in)
			final = nil
		}
		final = append(final, in)
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a builder and a final stage", len(froms))
	}

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	builder := strings.Fields(froms[0].args)[0]
	if !strings.HasPrefix(builder, "golang:"+string(m[1])) {
		t.Errorf("Dockerfile:%d: builder image %s, want golang:%s (go.mod's go directive)", froms[0].line, builder, m[1])
	}
	base := strings.Fields(froms[len(froms)-1].args)[0]
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("Dockerfile:%d: final image %s, want a static one (gcr.io/distroless/static* or scratch): the binary is static", froms[len(froms)-1].line, base)
	}

	var user, cfgDest string
	var cmd []string
	for _, in := range final {
		switch in.op {
		case "USER":
			user = in.args
		case "COPY":
			if f := strings.Fields(in.args); len(f) == 2 && f[0] == "cluster.yaml" {
				cfgDest = f[1]
			}
		case "CMD", "ENTRYPOINT":
			var v []string
			if err := yaml.Unmarshal([]byte(in.args), &v); err != nil {
				t.Errorf("Dockerfile:%d: %s is not in exec form: %v", in.line, in.op, err)
			}
			cmd = append(cmd, v...)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("Dockerfile: the final stage runs as %q; want a non-root USER", user)
	}
	if cfgDest == "" {
		t.Error("Dockerfile: the final stage does not COPY the default cluster.yaml")
	} else if got := flagValue(cmd, "--config"); got != cfgDest {
		t.Errorf("Dockerfile: the node starts with --config %q, but cluster.yaml is copied to %s", got, cfgDest)
	}
	cfg, err := config.Load(filepath.Join(root, "cluster.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatalf("the image's cluster.yaml: %v", err)
	}
	if host, _ := adminPort(t, "cluster.yaml", cfg); !isLoopback(host) {
		t.Errorf("the image's default cluster.yaml binds the admin server to %s; keep the image's default on loopback (deployments mount their own)", cfg.Node.AdminAddr)
	}

	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.TrimSuffix(l, "/")] = true
		}
	}
	for _, p := range []string{"deploy/secrets", "deploy/.env", ".git"} {
		if !ignored[p] {
			t.Errorf(".dockerignore does not exclude %s: it would go into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cluster.yaml", "cmd", "internal", "actors", "cluster"} {
		if ignored[p] {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}

	// The build command, run as the Dockerfile runs it.
	var build *instruction
	for i, in := range ins {
		if in.op == "RUN" && strings.Contains(in.args, "go build") {
			build = &ins[i]
		}
	}
	if build == nil {
		t.Fatal("Dockerfile: no RUN ... go build")
	}
	words := strings.Fields(build.args)
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("Dockerfile:%d: %q is not `[VAR=value ...] go build ...`", build.line, build.args)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile:%d: the build does not set CGO_ENABLED=0: the binary would need libc", build.line)
	}
	if !slices.Contains(words, "-trimpath") {
		t.Errorf("Dockerfile:%d: the build lacks -trimpath (the builder's paths would be in the binary)", build.line)
	}
	if words[len(words)-1] != "./cmd/node" {
		t.Errorf("Dockerfile:%d: the build's package is %s, want ./cmd/node", build.line, words[len(words)-1])
	}
	if testing.Short() {
		t.Skip("-short: not running the Dockerfile's go build")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not on PATH: %v", err)
	}
	out := filepath.Join(t.TempDir(), "node")
	args := slices.Clone(words[1:])
	replaced := false
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1], replaced = out, true
		}
	}
	if !replaced {
		args = append([]string{args[0], "-o", out}, args[1:]...)
	}
	run := exec.Command(goBin, args...)
	run.Dir = root
	run.Env = append(os.Environ(), env...)
	start := time.Now()
	if b, err := run.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build (%s go %s) failed: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, b)
	}
	t.Logf("built %s in %s", out, time.Since(start).Round(time.Millisecond))

	bin, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the build's output is not an ELF binary: %v", err)
	}
	defer bin.Close()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %s program header: it is dynamically linked and cannot run in %s", p.Type, base)
		}
	}
	if libs, err := bin.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary imports %v: it cannot run in %s", libs, base)
	}
}
