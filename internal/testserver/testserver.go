// Package testserver starts real Redis and etcd servers for tests, each on
// a free loopback port in the test's temporary directory, stopped when the
// test ends. Tests use the real servers, never mocks: the fencing scripts,
// expiries and transactions they check only mean something against Redis
// itself.
package testserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// TB is what the Start functions need of a test (testing.TB has it). A
// small interface of our own keeps the testing package out of the
// binaries that start servers without a test (the cluster sandbox).
type TB interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
	Cleanup(func())
}

// Redis is a running redis-server.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
	port int
	// durable: every write is on disk before Redis answers it, so a
	// Restart keeps the data (an outage, not a loss).
	durable bool
	// Password, when set, is required of clients (requirepass).
	Password string
}

// StartRedis starts redis-server with persistence off and fails the test if
// it cannot (run `make deps` as root to install it).
func StartRedis(t TB) *Redis {
	t.Helper()
	r, err := NewRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// StartDurableRedis is StartRedis with an append-only file synced on
// every write: Stop and Restart make an outage that loses nothing.
func StartDurableRedis(t TB) *Redis {
	t.Helper()
	r := &Redis{dir: t.TempDir(), durable: true}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// StartRedisWithPassword is StartRedis with clients required to
// authenticate with password.
func StartRedisWithPassword(t TB, password string) *Redis {
	t.Helper()
	r := &Redis{dir: t.TempDir(), Password: password}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// NewRedis is StartRedis outside tests (load scenarios): its files go to
// dir, and the caller stops it.
func NewRedis(dir string) (*Redis, error) {
	r := &Redis{dir: dir}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not installed (make deps installs it): %w", err)
	}
	// A port taken between FreePort and the server's bind makes the start
	// fail; retry with a new port a few times.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := r.port
		if port == 0 || attempt > 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		appendOnly := []string{"--appendonly", "no"}
		if r.durable {
			appendOnly = []string{"--appendonly", "yes", "--appendfsync", "always"}
		}
		args := append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--dir", r.dir,
			"--protected-mode", "yes", "--loglevel", "warning",
		}, appendOnly...)
		if r.Password != "" {
			args = append(args, "--requirepass", r.Password)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start redis-server: %w", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitRedis(addr, cmd, 10*time.Second); err != nil {
			lastErr = err
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			continue
		}
		r.cmd, r.Addr, r.port = cmd, addr, port
		return nil
	}
	return fmt.Errorf("redis-server did not start: %w", lastErr)
}

// Restart kills the server (as a crash would) and starts a new one on the
// same port. Data is lost: persistence is off.
func (r *Redis) Restart(t TB) {
	t.Helper()
	r.stop()
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop kills the server; tests of Redis outages call it.
func (r *Redis) Stop() { r.stop() }

// Pause freezes the server (SIGSTOP): it keeps its connections and
// answers nothing, a hung Redis. Resume thaws it.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume thaws a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	if r.cmd == nil || r.cmd.Process == nil {
		return errors.New("redis-server is not running")
	}
	return r.cmd.Process.Signal(sig)
}

func (r *Redis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// waitRedis pings until the server answers PONG.
func waitRedis(addr string, cmd *exec.Cmd, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cmd.ProcessState != nil {
			return fmt.Errorf("redis-server exited: %v", cmd.ProcessState)
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			// NOAUTH: up, and asking for the password.
			if strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PONG from %s within %s", addr, timeout)
}

// Etcd is a running etcd server.
type Etcd struct {
	// Endpoint is the client URL.
	Endpoint string
	bin      string
	dir      string
	peer     string
	cmd      *exec.Cmd
}

// StartEtcd starts a single-member etcd with its data in a temporary
// directory.
func StartEtcd(t TB) *Etcd {
	t.Helper()
	e, err := NewEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// NewEtcd is StartEtcd outside tests (load scenarios): its data goes to
// dir, and the caller stops it.
func NewEtcd(dir string) (*Etcd, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not installed (make deps installs etcd-server): %w", err)
	}
	e := &Etcd{bin: bin, dir: dir}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		client, err := freePort()
		if err != nil {
			return nil, err
		}
		peer, err := freePort()
		if err != nil {
			return nil, err
		}
		e.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", client)
		e.peer = fmt.Sprintf("http://127.0.0.1:%d", peer)
		if lastErr = e.start(); lastErr == nil {
			return e, nil
		}
		_ = os.RemoveAll(e.dir)
	}
	return nil, fmt.Errorf("etcd did not start: %w", lastErr)
}

func (e *Etcd) start() error {
	// etcd warns about a data directory others can read.
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(e.dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(e.bin,
		"--name", "test", "--data-dir", e.dir,
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "test="+e.peer, "--logger", "zap", "--log-level", "error",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	if err := waitHTTP(e.Endpoint+"/health", cmd, 20*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	e.cmd = cmd
	return nil
}

// Stop kills the server (as a crash would); its data stays for Restart.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
	e.cmd = nil
}

// Restart starts the stopped server again on the same ports with its data
// (leases included: etcd renews them when it elects its leader).
func (e *Etcd) Restart(t TB) {
	t.Helper()
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
}

// Start is Restart outside tests.
func (e *Etcd) Start() error {
	e.Stop()
	if err := e.start(); err != nil {
		return fmt.Errorf("restart etcd: %w", err)
	}
	return nil
}

func waitHTTP(url string, cmd *exec.Cmd, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		if cmd.ProcessState != nil {
			return fmt.Errorf("process exited: %v", cmd.ProcessState)
		}
		if ok := httpOK(ctx, url); ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within %s", url, timeout)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
