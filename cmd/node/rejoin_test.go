package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestDroppedNodeRejoinsAsANewMember: when etcd drops a running node's
// membership (here its lease is revoked from outside, as happens when it
// expires while the node cannot reach etcd), the node stops that member
// and starts a new one under a new ID, which the cluster accepts, and it
// is ready again without a restart of the process.
func TestDroppedNodeRejoinsAsANewMember(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := startEmulated(ctx, t, lavalinkemu.Config{})
	etcd := testserver.StartEtcd(t)
	redis := testserver.StartRedis(t)
	cfgPath := filepath.Join(t.TempDir(), "cluster.yaml")
	cfg := fmt.Sprintf(`node: {admin_addr: "127.0.0.1:0"}
cluster: {provider: etcd, etcd_endpoints: [%q], etcd_lease_ttl: 2s}
store: {kind: redis, redis: {addr: %q}}
discord: {rest_url: %q, gateway_url: %q}
lavalink: {nodes: [{name: emu, address: %q}]}
limits: {shard_max_lag: 2500ms}
`, etcd.Endpoint, redis.Addr, e.dc.RESTURL(), e.dc.GatewayURL(), e.lava.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "--config", cfgPath, "--admin-addr", admin)
	cmd.Env = cleanEnv("DISCORD_TOKEN="+e.dc.Token(), "LAVALINK_PASSWORD="+lavalinkSecret)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("node output:\n%s", out.String())
		}
	}()
	waitReady(t, admin, "discord")

	etc, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer etc.Close()
	members := func() map[string]clientv3.LeaseID {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := etc.Get(c, "/ensemble/ensemble/members/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]clientv3.LeaseID{}
		for _, kv := range res.Kvs {
			out[filepath.Base(string(kv.Key))] = clientv3.LeaseID(kv.Lease)
		}
		return out
	}
	first := members()
	if len(first) != 1 {
		t.Fatalf("members in etcd: %v, want the node alone", first)
	}
	var firstID string
	for id, lease := range first {
		firstID = id
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := etc.Revoke(c, lease)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	var now map[string]clientv3.LeaseID
	waitFor(t, "the node registered again under a new ID", func() bool {
		now = members()
		_, old := now[firstID]
		return len(now) == 1 && !old
	})
	var started [][]string
	waitFor(t, "the new member started", func() bool {
		started = regexp.MustCompile(`msg="cluster member started" member=(\S+)`).FindAllStringSubmatch(out.String(), -1)
		return len(started) >= 2
	})
	if len(started) != 2 || started[0][1] != firstID || started[1][1] == firstID {
		t.Fatalf("member starts in the log: %v; want %s, then a new ID", started, firstID)
	}
	waitReady(t, admin, "discord")
	waitReady(t, admin, "lavalink")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node exit after rejoining: %v", err)
	}
}
