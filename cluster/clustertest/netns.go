package clustertest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Target is what a partition cuts a node from.
type Target string

// The targets a node reaches, each through forwarders of its own.
const (
	TargetEtcd     Target = "etcd"
	TargetRedis    Target = "redis"
	TargetDiscord  Target = "discord"
	TargetLavalink Target = "lavalink"
	// TargetPeers is the other members, both ways: their calls to this
	// node's grains and its calls to theirs.
	TargetPeers Target = "peers"
)

// AllTargets cuts a node from everything: its host lost the network.
var AllTargets = []Target{TargetEtcd, TargetRedis, TargetDiscord, TargetLavalink, TargetPeers}

// CanPartition says why nodes cannot run in network namespaces of their
// own here (nil if they can): it takes root, the ip command (iproute2) and
// a kernel and container that let root make namespaces (it makes one).
func CanPartition() error {
	if os.Geteuid() != 0 {
		return errors.New("partitioning needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("partitioning needs the ip command (Debian: apt-get install iproute2): %w", err)
	}
	probe := fmt.Sprintf("ens-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

// netns is a node's network namespace: nothing in it but loopback, on
// which the fixture listens at every address the node dials (etcd, Redis,
// the emulators, the other members) and forwards to the same address
// outside; outside, it listens at the node's cluster and admin addresses
// and forwards in. A partition stops the forwarders of the cut targets:
// their open connections close and new ones are held, silent, until the
// partition heals; the node's own sockets never notice anything but what
// a lost network shows.
type netns struct {
	name string
	path string

	mu     sync.Mutex
	cut    map[Target]bool
	lns    []net.Listener
	conns  map[net.Conn]Target // forwarded connections' ends, by target
	held   map[net.Conn]Target // accepted while their target was cut
	closed bool
}

func newNetns(name string) (*netns, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &netns{name: name, path: filepath.Join("/var/run/netns", name), cut: map[Target]bool{},
		conns: map[net.Conn]Target{}, held: map[net.Conn]Target{}}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		ns.close()
		return nil, fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return ns, nil
}

// command runs name in the namespace (ip netns exec execs it, so the
// process is the node itself: signals reach it).
func (ns *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// inside runs f on a thread that entered the namespace: sockets made
// there belong to it for good. The thread goes back to the namespace it
// came from before others may use it; if it cannot, it is thrown away
// (the goroutine ends locked). Threads must not die otherwise: a node's
// SIGKILL-on-parent-death is tied to the thread that started it.
func (ns *netns) inside(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open %s: %w", ns.path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// out forwards addr inside the namespace to addr outside.
func (ns *netns) out(t Target, addr string) error {
	var ln net.Listener
	if err := ns.inside(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return fmt.Errorf("listen on %s in %s: %w", addr, ns.name, err)
	}
	return ns.serve(ln, t, func() (net.Conn, error) { return net.Dial("tcp", addr) })
}

// in forwards addr outside to addr inside the namespace.
func (ns *netns) in(t Target, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s for %s: %w", addr, ns.name, err)
	}
	return ns.serve(ln, t, func() (c net.Conn, err error) {
		err = ns.inside(func() error {
			c, err = net.Dial("tcp", addr)
			return err
		})
		return c, err
	})
}

func (ns *netns) serve(ln net.Listener, t Target, dial func() (net.Conn, error)) error {
	ns.mu.Lock()
	if ns.closed {
		ns.mu.Unlock()
		ln.Close()
		return errors.New("namespace closed")
	}
	ns.lns = append(ns.lns, ln)
	ns.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go ns.forward(c, t, dial)
		}
	}()
	return nil
}

func (ns *netns) forward(c net.Conn, t Target, dial func() (net.Conn, error)) {
	ns.mu.Lock()
	if ns.cut[t] || ns.closed {
		// A lost network: the connection hangs until the partition heals
		// (then it closes, as a timed-out one would).
		ns.held[c] = t
		ns.mu.Unlock()
		return
	}
	ns.mu.Unlock()
	d, err := dial()
	if err != nil {
		c.Close()
		return
	}
	ns.mu.Lock()
	if ns.cut[t] || ns.closed {
		ns.mu.Unlock()
		c.Close()
		d.Close()
		return
	}
	ns.conns[c], ns.conns[d] = t, t
	ns.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close, as the peer did: HTTP and gRPC clients close the
		// way they opened.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(d, c)
	go pipe(c, d)
	<-done
	<-done
	c.Close()
	d.Close()
	ns.mu.Lock()
	delete(ns.conns, c)
	delete(ns.conns, d)
	ns.mu.Unlock()
}

// partition cuts the targets: their connections close and new ones hang.
func (ns *netns) partition(targets ...Target) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, t := range targets {
		ns.cut[t] = true
	}
	for c, t := range ns.conns {
		if ns.cut[t] {
			c.Close()
			delete(ns.conns, c)
		}
	}
}

// heal ends every cut; the connections held meanwhile close.
func (ns *netns) heal() {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	clear(ns.cut)
	for c := range ns.held {
		c.Close()
	}
	clear(ns.held)
}

func (ns *netns) close() {
	ns.mu.Lock()
	ns.closed = true
	for _, ln := range ns.lns {
		ln.Close()
	}
	for c := range ns.conns {
		c.Close()
	}
	for c := range ns.held {
		c.Close()
	}
	clear(ns.conns)
	clear(ns.held)
	ns.mu.Unlock()
	_ = exec.Command("ip", "netns", "del", ns.name).Run()
}
