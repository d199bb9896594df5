// Package clustertest runs an Ensemble cluster on loopback, for the
// multi-process tests and cmd/loadgen's cluster scenarios: a real etcd
// (membership) and a real Redis (store), the Discord and Lavalink emulators
// in the calling process, and cmd/node processes it starts, kills
// (SIGKILL) and stops (SIGTERM) one by one.
//
// With Config.Partitionable each node runs in a network namespace of its
// own (root and iproute2 needed, see CanPartition), reaching the rest
// only through the fixture, so Node.Partition can cut it from etcd,
// Redis, the emulators or the other members, and Node.Heal can end that.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// LavalinkPassword is the emulated Lavalink's password; the nodes get it
// in their environment.
const LavalinkPassword = "clustertest-lavalink"

// Config is a cluster to start.
type Config struct {
	// Node is the cmd/node binary.
	Node string
	// Dir holds the servers' data, the configuration and the nodes' logs.
	Dir string
	// Shards is the Discord shard count (default 2).
	Shards int
	// LeaseTTL is the members' etcd lease TTL (default 2s): how long a
	// killed member goes unnoticed.
	LeaseTTL time.Duration
	// Limits is the `limits:` map of cluster.yaml, in YAML flow style
	// (default: no command cooldown, no rate limits and a 2.5 s shard lag
	// allowance, so a busy test machine does not shed commands).
	Limits string
	// PlayerUpdateInterval is the Lavalink emulator's (default 200 ms).
	PlayerUpdateInterval time.Duration
	// Partitionable runs each node in a network namespace of its own, so
	// that Node.Partition works (CanPartition says whether it can here).
	Partitionable bool
	// Env is added to the nodes' environment (OTEL_* for traces, say).
	Env []string
}

// Cluster is a running cluster.
type Cluster struct {
	Discord  *discordemu.Emulator
	Lavalink *lavalinkemu.Emulator
	Etcd     *testserver.Etcd
	Redis    *testserver.Redis

	cfg     Config
	cfgPath string

	mu    sync.Mutex
	nodes []*Node
}

// Start starts etcd, Redis and the emulators; nodes start with StartNode.
// Close stops everything.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Node == "" || cfg.Dir == "" {
		return nil, errors.New("clustertest: Config.Node and Config.Dir are required")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 2
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 2 * time.Second
	}
	if cfg.Limits == "" {
		cfg.Limits = "{command_cooldown: 0s, user_commands: 0, guild_commands: 0, shard_max_lag: 2500ms}"
	}
	if cfg.PlayerUpdateInterval <= 0 {
		cfg.PlayerUpdateInterval = 200 * time.Millisecond
	}
	c := &Cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, d := range []string{"etcd", "redis", "nodes"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if c.Etcd, err = testserver.NewEtcd(filepath.Join(cfg.Dir, "etcd")); err != nil {
		return nil, err
	}
	if c.Redis, err = testserver.NewRedis(filepath.Join(cfg.Dir, "redis")); err != nil {
		return nil, err
	}
	if c.Discord, err = discordemu.Start(ctx, discordemu.Config{Shards: cfg.Shards}); err != nil {
		return nil, err
	}
	if c.Lavalink, err = lavalinkemu.Start(ctx, lavalinkemu.Config{Password: LavalinkPassword,
		PlayerUpdateInterval: cfg.PlayerUpdateInterval, MaxRecordedRequests: 10_000, MaxRecordedEvents: 100_000}); err != nil {
		return nil, err
	}
	c.cfgPath = filepath.Join(cfg.Dir, "cluster.yaml")
	if err := c.writeConfig(c.cfgPath, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return c, nil
}

// writeConfig writes a node's cluster.yaml.
func (c *Cluster) writeConfig(path, bindAddr string) error {
	yaml := fmt.Sprintf(`node: {admin_addr: "127.0.0.1:0"}
cluster: {provider: etcd, etcd_endpoints: [%q], etcd_lease_ttl: %s, bind_addr: %q}
store: {kind: redis, redis: {addr: %q}}
discord: {shard_count: %d, rest_url: %q, gateway_url: %q}
lavalink: {nodes: [{name: emu, address: %q}]}
limits: %s
`, c.Etcd.Endpoint, c.cfg.LeaseTTL, bindAddr, c.Redis.Addr, c.cfg.Shards, c.Discord.RESTURL(), c.Discord.GatewayURL(), c.Lavalink.Addr(), c.cfg.Limits)
	return os.WriteFile(path, []byte(yaml), 0o600)
}

// Close kills the nodes still running and stops the servers and emulators.
func (c *Cluster) Close() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, n := range nodes {
		_ = n.Kill()
		if n.ns != nil {
			n.ns.close()
		}
	}
	if c.Discord != nil {
		c.Discord.Close()
	}
	if c.Lavalink != nil {
		c.Lavalink.Close()
	}
	if c.Redis != nil {
		c.Redis.Stop()
	}
	if c.Etcd != nil {
		c.Etcd.Stop()
	}
}

// Nodes returns the nodes started so far, running or not.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Node is one cmd/node process.
type Node struct {
	// Admin is its admin HTTP address (/readyz, /metrics).
	Admin string
	// Bind is its cluster (gRPC) address, set with Config.Partitionable.
	Bind string
	cmd  *exec.Cmd
	out  *lockedBuffer
	log  *os.File
	done chan struct{}
	err  error
	ns   *netns
}

// StartNode starts a node process; it joins the cluster by itself.
func (c *Cluster) StartNode() (*Node, error) {
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	i := len(c.nodes)
	c.mu.Unlock()
	logFile, err := os.Create(filepath.Join(c.cfg.Dir, "nodes", fmt.Sprintf("node-%d.log", i)))
	if err != nil {
		return nil, err
	}
	n := &Node{Admin: admin, out: &lockedBuffer{}, log: logFile, done: make(chan struct{})}
	args := []string{"--config", c.cfgPath, "--admin-addr", admin}
	if c.cfg.Partitionable {
		if err := c.isolate(n, i); err != nil {
			logFile.Close()
			return nil, err
		}
		args[1] = filepath.Join(c.cfg.Dir, "nodes", fmt.Sprintf("node-%d.yaml", i))
		if err := c.writeConfig(args[1], n.Bind); err != nil {
			logFile.Close()
			n.ns.close()
			return nil, err
		}
		n.cmd = n.ns.command(c.cfg.Node, args...)
	} else {
		n.cmd = exec.Command(c.cfg.Node, args...)
	}
	n.cmd.Env = Env(append([]string{"DISCORD_TOKEN=" + c.Discord.Token(), "LAVALINK_PASSWORD=" + LavalinkPassword}, c.cfg.Env...)...)
	w := io.MultiWriter(n.out, logFile)
	n.cmd.Stdout, n.cmd.Stderr = w, w
	// Killed with the driver if it dies first (a backstop: it fires when
	// the starting thread exits).
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		if n.ns != nil {
			n.ns.close()
		}
		return nil, fmt.Errorf("start node: %w", err)
	}
	go func() {
		n.err = n.cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, nil
}

// isolate makes n's network namespace: forwarders out to the servers,
// the emulators and the other members, and in to n's cluster and admin
// addresses; the other members' namespaces get one to n's.
func (c *Cluster) isolate(n *Node, i int) (err error) {
	if err := CanPartition(); err != nil {
		return err
	}
	if n.Bind, err = freeAddr(); err != nil {
		return err
	}
	ns, err := newNetns(fmt.Sprintf("ens-%d-%d", os.Getpid(), i))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ns.close()
		}
	}()
	etcd := strings.TrimPrefix(c.Etcd.Endpoint, "http://")
	for _, f := range []struct {
		t    Target
		addr string
	}{{TargetEtcd, etcd}, {TargetRedis, c.Redis.Addr}, {TargetDiscord, c.Discord.Addr()}, {TargetLavalink, c.Lavalink.Addr()}} {
		if err := ns.out(f.t, f.addr); err != nil {
			return err
		}
	}
	if err := ns.in(TargetPeers, n.Bind); err != nil {
		return err
	}
	// The admin address is the fixture's way in: never cut.
	if err := ns.in("", n.Admin); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.nodes {
		if o.ns == nil {
			continue
		}
		if err := ns.out(TargetPeers, o.Bind); err != nil {
			return err
		}
		if err := o.ns.out(TargetPeers, n.Bind); err != nil {
			return err
		}
	}
	n.ns = ns
	return nil
}

// Partition cuts the node from the targets (all of them if none given):
// their connections close and new ones hang, as on a lost network. It
// needs Config.Partitionable.
func (n *Node) Partition(targets ...Target) error {
	if n.ns == nil {
		return errors.New("clustertest: the node is not partitionable (Config.Partitionable)")
	}
	if len(targets) == 0 {
		targets = AllTargets
	}
	n.ns.partition(targets...)
	return nil
}

// Heal ends the node's partition.
func (n *Node) Heal() {
	if n.ns != nil {
		n.ns.heal()
	}
}

// Env is the environment without anything a node would take as its own
// credentials (a real DISCORD_TOKEN_FILE beside the emulator's token makes
// the node refuse to start) or as its trace exporter's settings, plus
// extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name := strings.SplitN(kv, "=", 2)[0]
		switch name {
		case "DISCORD_TOKEN", "DISCORD_TOKEN_FILE", "LAVALINK_PASSWORD", "LAVALINK_PASSWORD_FILE", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE":
			continue
		}
		if strings.HasPrefix(name, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Running reports whether the process has not exited.
func (n *Node) Running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill kills the process (SIGKILL: a crash) and waits for it.
func (n *Node) Kill() error {
	if !n.Running() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-n.done
	return nil
}

// Stop sends SIGTERM and waits for the exit, at most limit: the node
// drains (hands its shards and sessions over) and exits 0, else Stop says
// why.
func (n *Node) Stop(limit time.Duration) error {
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-n.done:
	case <-time.After(limit):
		_ = n.Kill()
		return fmt.Errorf("node %s did not exit within %s of SIGTERM", n.Admin, limit)
	}
	if n.err != nil {
		return fmt.Errorf("node %s: %w", n.Admin, n.err)
	}
	return nil
}

// Output is what the node wrote so far.
func (n *Node) Output() string { return n.out.String() }

var lavalinkSessionRe = regexp.MustCompile(`msg="lavalink node connected".* session=(\S+)`)

// LavalinkSession is the node's current Lavalink session on the emulated
// node, from its log ("" before it connected).
func (n *Node) LavalinkSession() string {
	m := lavalinkSessionRe.FindAllStringSubmatch(n.Output(), -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

// Ready reports whether /readyz says component is ready.
func (n *Node) Ready(ctx context.Context, component string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/readyz", nil)
	if err != nil {
		return false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return bytes.Contains(b, []byte(`"`+component+`":{"ready":true`))
}

// WaitReady waits until each component is ready on the node.
func (n *Node) WaitReady(ctx context.Context, components ...string) error {
	for _, comp := range components {
		err := Poll(ctx, func() bool { return n.Ready(ctx, comp) })
		if err != nil {
			return fmt.Errorf("node %s: %s not ready: %w\n%s", n.Admin, comp, err, tail(n.Output(), 20))
		}
		if !n.Running() {
			return fmt.Errorf("node %s exited: %v\n%s", n.Admin, n.err, tail(n.Output(), 20))
		}
	}
	return nil
}

// Poll checks cond every 20 ms until it holds or ctx ends.
func Poll(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// lockedBuffer is a node's output, written by the process while the
// caller reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
