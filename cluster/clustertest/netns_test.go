package clustertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestNetnsForwardsAndPartitions: a listener outside is reached from
// inside the namespace only through the forwarder; a partition closes the
// open connection and holds new ones without reaching the listener; after
// the heal the held connection closes and new ones go through again.
func TestNetnsForwardsAndPartitions(t *testing.T) {
	if err := CanPartition(); err != nil {
		t.Skipf("not partitionable here: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { // echo
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ns, err := newNetns(fmt.Sprintf("ens-test-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.close()
	addr := ln.Addr().String()
	// Outside the forwarder, the namespace has no way to the listener.
	if err := ns.inside(func() error {
		c, err := net.Dial("tcp", "127.0.0.1:1")
		if err == nil {
			c.Close()
			return errors.New("dialled 127.0.0.1:1 inside an empty namespace")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ns.out(TargetRedis, addr); err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		t.Helper()
		var c net.Conn
		if err := ns.inside(func() (err error) {
			c, err = net.Dial("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	echo := func(c net.Conn) (string, error) {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	open := dial()
	defer open.Close()
	if got, err := echo(open); err != nil || got != "ping\n" {
		t.Fatalf("echo through the forwarder: %q, %v", got, err)
	}

	ns.partition(TargetEtcd) // another target: nothing changes
	if got, err := echo(open); err != nil || got != "ping\n" {
		t.Fatalf("echo while another target is cut: %q, %v", got, err)
	}
	ns.partition(TargetRedis)
	if _, err := io.ReadAll(open); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("the open connection ended with %v", err) // EOF or a reset: both are a close
	}
	before := accepted.Load()
	held := dial()
	defer held.Close()
	if _, err := held.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	// Healed only once the forwarder holds it (it accepts on its own).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Poll(ctx, func() bool {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		return len(ns.held) == 1
	}); err != nil {
		t.Fatal("the forwarder never held the connection made during the partition")
	}
	ns.heal()
	// The held connection closes without an answer, and it never reached
	// the listener.
	if rest, _ := io.ReadAll(held); len(rest) != 0 {
		t.Fatalf("a connection made during the partition got %q", rest)
	}
	if got := accepted.Load(); got != before {
		t.Fatalf("the listener accepted %d connections during the partition", got-before)
	}
	healed := dial()
	defer healed.Close()
	if got, err := echo(healed); err != nil || got != "ping\n" {
		t.Fatalf("echo after the heal: %q, %v", got, err)
	}
}
