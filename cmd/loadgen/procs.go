package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
)

// binaries are the programs a run starts, built once into a temporary directory.
type binaries struct {
	Node     string // cmd/node
	Emulator string // cmd/emulator
	// Bare is this package's test binary: TestBareBotProcess is the bare disgo bot
	// (barebot_test.go says why it lives in a test file).
	Bare string
}

func binariesIn(dir string) binaries {
	return binaries{Node: filepath.Join(dir, "node"), Emulator: filepath.Join(dir, "emulator"), Bare: filepath.Join(dir, "barebot")}
}

// build compiles the binaries into dir from the module the working directory is in,
// without -race (disgo's gateway races inside the library).
func build(ctx context.Context, dir string, log *slog.Logger) (binaries, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return binaries{}, fmt.Errorf("build: run loadgen inside the ensemble module (go env GOMOD = %q): %w", gomod, err)
	}
	root := filepath.Dir(gomod)
	b := binariesIn(dir)
	steps := [][]string{
		{"build", "-o", b.Node, "./cmd/node"},
		{"build", "-o", b.Emulator, "./cmd/emulator"},
		{"test", "-c", "-o", b.Bare, "./cmd/loadgen"},
	}
	for _, s := range steps {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", s...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return binaries{}, fmt.Errorf("go %s: %w\n%s", strings.Join(s, " "), err, out)
		}
		log.Debug("built", "cmd", "go "+strings.Join(s, " "), "took", time.Since(start).Round(time.Millisecond))
	}
	return b, nil
}

// child is a process this driver started. It is in its own process group (a Ctrl-C at
// the terminal reaches only the driver, which stops it in order) and gets SIGKILL if the
// driver dies without stopping it (Pdeathsig; a backstop, since it fires when the
// thread that started it exits).
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // path of its combined output
	done chan struct{}
	err  error
}

// childEnv is the driver's environment without anything a bot would take as its own
// credentials or settings (a real DISCORD_TOKEN_FILE next to the emulator's
// DISCORD_TOKEN would make the node refuse to start), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DISCORD_") || strings.HasPrefix(k, "LAVALINK_") || strings.HasPrefix(k, "REDIS_") || strings.HasPrefix(k, "LOADGEN_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// startChild starts bin with its output in logPath. If lines is not nil, every output
// line is also passed to it (from one goroutine, in order) until it returns false.
func startChild(name, bin string, args, env []string, logPath string, lines func(string) bool) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var pr *os.File
	if lines == nil {
		cmd.Stdout, cmd.Stderr = lf, lf
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("%s output: %w", name, err)
		}
		pr = r
		cmd.Stdout, cmd.Stderr = w, w
		defer w.Close() // the child has its own copy; ours must go for EOF to come
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		if pr != nil {
			pr.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	var copied sync.WaitGroup
	if pr != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			defer pr.Close()
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			watching := true
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(lf, line)
				if watching {
					watching = lines(line)
				}
			}
			// A line too long for the scanner: keep the rest as it is.
			_, _ = io.Copy(lf, pr)
		}()
	}
	go func() {
		c.err = cmd.Wait()
		copied.Wait()
		lf.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the process to stop (SIGTERM) and kills its group if it has not within
// grace. It is safe to call more than once.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
	<-c.done
}

// tail returns the last n lines of the child's log, for error messages. Logs hold no
// secret: the node and the bare bot keep disgo's loggers at INFO and above, and the
// only credentials are the emulators' loopback fakes.
func (c *child) tail(n int) string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// failure wraps err with the end of the child's log.
func (c *child) failure(err error) error {
	return fmt.Errorf("%s: %w\n--- last lines of %s ---\n%s", c.name, err, c.log, c.tail(15))
}

// emulators is the running cmd/emulator process: a Lavalink emulator and the control
// API that makes Discord worlds.
type emulators struct {
	*child
	ctl          *emuctl.Client
	lavalinkAddr string
	password     string
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// emulatorGOGC makes the emulator collect less often: on a small machine its CPU is taken
// from the bot being measured, and a load run's heap is a few hundred MB at most. The
// bots run with the runtime's defaults, as deployed.
const emulatorGOGC = "GOGC=400"

// startEmulators starts cmd/emulator and reads the addresses it prints.
func startEmulators(ctx context.Context, bins binaries, dir string) (*emulators, error) {
	password := randomSecret()
	type addrs struct{ control, lavalink string }
	found := make(chan addrs, 1)
	var got addrs
	c, err := startChild("emulator", bins.Emulator, []string{
		"-discord=false", "-lavalink-addr", "127.0.0.1:0", "-lavalink-password", password,
		"-control-addr", "127.0.0.1:0", "-max-recorded", "-1",
	}, childEnv(emulatorGOGC), filepath.Join(dir, "emulator.log"), func(line string) bool {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "url="); ok && strings.HasPrefix(line, "control") {
				got.control = v
			}
			if v, ok := strings.CutPrefix(f, "address="); ok && strings.HasPrefix(line, "lavalink") {
				got.lavalink = v
			}
		}
		if strings.HasPrefix(line, "ready;") {
			found <- got
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	select {
	case a := <-found:
		if a.control == "" || a.lavalink == "" {
			c.stop(5 * time.Second)
			return nil, c.failure(errors.New("did not print its control URL and Lavalink address"))
		}
		return &emulators{child: c, ctl: &emuctl.Client{URL: a.control}, lavalinkAddr: a.lavalink, password: password}, nil
	case <-c.done:
		return nil, c.failure(fmt.Errorf("exited: %v", c.err))
	case <-ctx.Done():
		c.stop(5 * time.Second)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.stop(5 * time.Second)
		return nil, c.failure(errors.New("not ready after 30 s"))
	}
}

// nodeSettings are the configuration values a scenario chooses.
type nodeSettings struct {
	guildIdle   time.Duration // limits.guild_idle_timeout (0: the default)
	sessionIdle time.Duration // limits.session_idle_timeout (0: the default)
	logLevel    string
	env         []string // Go runtime settings for the node alone (nodeEnvKeys)
}

// nodeEnvKeys are the settings --node-env may give the node: the Go runtime's, which a
// deployment sets in the node's environment (deploy/compose.yaml sets GOMEMLIMIT).
var nodeEnvKeys = []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"}

// unreachedLimit is the rate limits of a load run: per minute, far above any rate loadgen
// offers.
const unreachedLimit = 1_000_000_000

// nodeConfig is the node's cluster.yaml: only the keys the run needs, the rest stays at
// the node's defaults. Command cooldowns are off and the rate limits far above the load, or
// most of the mix would be refused; the limiter still counts every command, so its cost is in
// the figures.
func nodeConfig(dir string, w emuctl.World, lavalinkAddr string, s nodeSettings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: {admin_addr: \"127.0.0.1:0\"}\n")
	fmt.Fprintf(&b, "store: {kind: bbolt, bbolt: {path: %q}}\n", filepath.Join(dir, "ensemble.db"))
	fmt.Fprintf(&b, "discord: {shard_count: 1, rest_url: %q, gateway_url: %q}\n", w.RESTURL, w.GatewayURL)
	fmt.Fprintf(&b, "lavalink: {nodes: [{name: emu, address: %q}]}\n", lavalinkAddr)
	fmt.Fprintf(&b, "limits:\n  command_cooldown: 0s\n  user_commands: %d\n  guild_commands: %d\n", unreachedLimit, unreachedLimit)
	if s.guildIdle > 0 {
		fmt.Fprintf(&b, "  guild_idle_timeout: %s\n", s.guildIdle)
	}
	if s.sessionIdle > 0 {
		fmt.Fprintf(&b, "  session_idle_timeout: %s\n", s.sessionIdle)
	}
	return b.String()
}

// nodeProc is a running cmd/node.
type nodeProc struct {
	*child
	admin string // http://127.0.0.1:P
}

// startNode starts cmd/node on the world and waits until /readyz says ready.
func startNode(ctx context.Context, bins binaries, dir string, emu *emulators, w emuctl.World, s nodeSettings) (*nodeProc, error) {
	cfg := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cfg, []byte(nodeConfig(dir, w, emu.lavalinkAddr, s)), 0o600); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	level := s.logLevel
	if level == "" {
		level = "info"
	}
	// The admin port is the node's own pick (port 0): it says which in its log.
	adminAddr := make(chan string, 1)
	c, err := startChild("node", bins.Node, []string{"--config", cfg, "--log-format", "json", "--log-level", level},
		childEnv(append([]string{"DISCORD_TOKEN=" + w.Token, "LAVALINK_PASSWORD=" + emu.password}, s.env...)...), filepath.Join(dir, "node.log"),
		func(line string) bool {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "admin HTTP listening" && rec.Addr != "" {
				adminAddr <- rec.Addr
				return false
			}
			return true
		})
	if err != nil {
		return nil, err
	}
	n := &nodeProc{child: c}
	select {
	case a := <-adminAddr:
		n.admin = "http://" + a
	case <-c.done:
		return nil, c.failure(fmt.Errorf("exited: %v", c.err))
	case <-ctx.Done():
		c.stop(10 * time.Second)
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.stop(10 * time.Second)
		return nil, c.failure(errors.New("no admin address logged after 30 s"))
	}
	if err := poll(ctx, 90*time.Second, func() (bool, error) {
		if c.exited() {
			return false, fmt.Errorf("exited: %v", c.err)
		}
		rs, err := http.Get(n.admin + "/readyz")
		if err != nil {
			return false, nil
		}
		rs.Body.Close()
		return rs.StatusCode == http.StatusOK, nil
	}); err != nil {
		c.stop(10 * time.Second)
		return nil, c.failure(fmt.Errorf("not ready: %w", err))
	}
	return n, nil
}

// startBare starts the bare disgo bot on the world; it spends work of CPU on each
// interaction before it answers.
func startBare(bins binaries, dir string, w emuctl.World, inline bool, work time.Duration) (*child, error) {
	env := childEnv("LOADGEN_BAREBOT=1", "DISCORD_TOKEN="+w.Token,
		"LOADGEN_REST_URL="+w.RESTURL, "LOADGEN_GATEWAY_URL="+w.GatewayURL,
		fmt.Sprintf("LOADGEN_BARE_INLINE=%t", inline), "LOADGEN_BARE_CPU="+work.String())
	// -test.timeout=0: the helper runs until it is stopped, not for go test's 10 minutes.
	return startChild("bare bot", bins.Bare, []string{"-test.run=^TestBareBotProcess$", "-test.timeout=0"},
		env, filepath.Join(dir, "barebot.log"), nil)
}

// waitConnected waits until the bot behind c has a ready gateway session on the world
// and has registered its commands.
func waitConnected(ctx context.Context, emu *emulators, c *child, w emuctl.World) error {
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		if c.exited() {
			return false, fmt.Errorf("exited: %v", c.err)
		}
		st, err := emu.ctl.Status(ctx, w.ID)
		if err != nil {
			return false, err
		}
		return st.ReadyShards >= 1 && st.Commands > 0, nil
	})
	if err != nil {
		return c.failure(fmt.Errorf("not connected with its commands registered: %w", err))
	}
	return nil
}

// poll calls cond every 100 ms until it is true, fails, or limit passes.
func poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
