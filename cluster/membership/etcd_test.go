package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// view is what one member was last told of the membership.
type view struct {
	mu      sync.Mutex
	ids     []string
	changed chan struct{}
}

func newView() *view { return &view{changed: make(chan struct{})} }

func (v *view) publish(members []Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ids = v.ids[:0]
	for _, m := range members {
		v.ids = append(v.ids, m.ID)
	}
	close(v.changed)
	v.changed = make(chan struct{})
}

// waitFor waits until the member has been told exactly want (sorted). The
// bound only turns a hang into a failure.
func (v *view) waitFor(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	timeout := time.After(30 * time.Second)
	for {
		v.mu.Lock()
		got, changed := slices.Clone(v.ids), v.changed
		v.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("membership %v, want %v", got, want)
		}
	}
}

// logLines records the messages a member logs, so a test can wait for
// what the member saw.
type logLines struct {
	mu    sync.Mutex
	seen  map[string]int
	added chan struct{}
}

func newLogLines() *logLines { return &logLines{seen: map[string]int{}, added: make(chan struct{})} }

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[r.Message]++
	close(l.added)
	l.added = make(chan struct{})
	return nil
}

func (l *logLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}

func (l *logLines) waitFor(t *testing.T, msg string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		n, added := l.seen[msg], l.added
		l.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-added:
		case <-timeout:
			t.Fatalf("no log line %q", msg)
		}
	}
}

type testMember struct {
	*Etcd
	view    *view
	log     *logLines
	ejected chan struct{}
}

func joinTest(t *testing.T, endpoint, id string) *testMember {
	t.Helper()
	tm := &testMember{view: newView(), log: newLogLines(), ejected: make(chan struct{})}
	opts := EtcdOptions{
		Endpoints: []string{endpoint}, Prefix: "/test/ensemble/members/",
		LeaseTTL: 2 * time.Second, CallTimeout: time.Second, Log: slog.New(tm.log),
	}
	m, err := JoinEtcd(context.Background(), opts, Record{ID: id, Host: "127.0.0.1", Port: 1, Kinds: []string{"Guild"}}, tm.view.publish, tm.ejected)
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	tm.Etcd = m
	t.Cleanup(m.Leave)
	return tm
}

// crash stops the member's keepalives without revoking its lease, as a
// killed process would.
func (m *testMember) crash() {
	m.left.Do(func() {
		m.leaving.Store(true)
		m.cancel()
		m.wg.Wait()
		_ = m.client.Close()
	})
}

func isEjected(m *testMember) bool {
	select {
	case <-m.ejected:
		return true
	default:
		return false
	}
}

func etcdAdmin(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := EtcdClient([]string{endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func memberKeys(t *testing.T, c *clientv3.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Get(ctx, "/test/ensemble/members/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range res.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

func TestEtcdMembershipJoinAndLeave(t *testing.T) {
	e := testserver.StartEtcd(t)
	a := joinTest(t, e.Endpoint, "a")
	a.view.waitFor(t, "a")
	b := joinTest(t, e.Endpoint, "b")
	c := joinTest(t, e.Endpoint, "c")
	for _, m := range []*testMember{a, b, c} {
		m.view.waitFor(t, "a", "b", "c")
	}

	// A member that leaves revokes its lease: the others are told now, and
	// nothing of it stays in etcd.
	b.Leave()
	a.view.waitFor(t, "a", "c")
	c.view.waitFor(t, "a", "c")
	admin := etcdAdmin(t, e.Endpoint)
	if keys := memberKeys(t, admin); !slices.Equal(keys, []string{"/test/ensemble/members/a", "/test/ensemble/members/c"}) {
		t.Fatalf("keys after b left: %v", keys)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ttl, err := admin.TimeToLive(ctx, b.lease)
	if err != nil || ttl.TTL != -1 {
		t.Fatalf("b's lease after leave: %+v, %v; want revoked (TTL -1)", ttl, err)
	}
	if isEjected(b) {
		t.Fatal("a member that left was told it was ejected")
	}
}

func TestEtcdMemberThatDiesExpires(t *testing.T) {
	e := testserver.StartEtcd(t)
	a := joinTest(t, e.Endpoint, "a")
	d := joinTest(t, e.Endpoint, "d")
	a.view.waitFor(t, "a", "d")
	d.crash()
	// Seen gone once its lease expires (2 s, as configured).
	a.view.waitFor(t, "a")
	if isEjected(a) {
		t.Fatal("the surviving member was ejected")
	}
}

func TestEtcdMemberDroppedByEtcdIsEjected(t *testing.T) {
	cases := []struct {
		name string
		drop func(context.Context, *clientv3.Client, *testMember) error
	}{
		{"lease revoked by someone else", func(ctx context.Context, c *clientv3.Client, m *testMember) error {
			_, err := c.Revoke(ctx, m.lease)
			return err
		}},
		{"key deleted", func(ctx context.Context, c *clientv3.Client, m *testMember) error {
			_, err := c.Delete(ctx, m.key(m.self.ID))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := testserver.StartEtcd(t)
			a := joinTest(t, e.Endpoint, "a")
			x := joinTest(t, e.Endpoint, "x")
			a.view.waitFor(t, "a", "x")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tc.drop(ctx, etcdAdmin(t, e.Endpoint), x); err != nil {
				t.Fatal(err)
			}
			select {
			case <-x.ejected:
			case <-time.After(30 * time.Second):
				t.Fatal("the dropped member was not told")
			}
			a.view.waitFor(t, "a")
			if isEjected(a) {
				t.Fatal("the other member was ejected too")
			}
			if n := x.log.count("dropped from the cluster; this member must rejoin under a new ID"); n != 1 {
				t.Fatalf("%d ERROR lines for the ejection, want 1", n)
			}
		})
	}
}

// An etcd outage longer than the lease TTL ejects no one: etcd renews the
// leases when it comes back, and the members keep theirs alive again.
func TestEtcdOutageEjectsNoOne(t *testing.T) {
	e := testserver.StartEtcd(t)
	a := joinTest(t, e.Endpoint, "a")
	b := joinTest(t, e.Endpoint, "b")
	a.view.waitFor(t, "a", "b")
	b.view.waitFor(t, "a", "b")
	e.Stop()
	// Both have gone a whole TTL without an answer before etcd returns.
	a.log.waitFor(t, "etcd does not answer; keeping the last membership seen")
	b.log.waitFor(t, "etcd does not answer; keeping the last membership seen")
	e.Restart(t)
	a.log.waitFor(t, "etcd answers again; the member's lease is kept")
	b.log.waitFor(t, "etcd answers again; the member's lease is kept")
	if isEjected(a) || isEjected(b) {
		t.Fatalf("ejected after the outage: a %v, b %v", isEjected(a), isEjected(b))
	}
	// The membership still works: a third member is seen by both.
	c := joinTest(t, e.Endpoint, "c")
	for _, m := range []*testMember{a, b, c} {
		m.view.waitFor(t, "a", "b", "c")
	}
}

func TestEtcdJoinWithoutEtcdFailsClearly(t *testing.T) {
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", testserver.FreePort(t))
	opts := EtcdOptions{
		Endpoints: []string{endpoint}, Prefix: "/test/ensemble/members/",
		LeaseTTL: 2 * time.Second, CallTimeout: 500 * time.Millisecond, Log: slog.New(newLogLines()),
	}
	_, err := JoinEtcd(context.Background(), opts, Record{ID: "a"}, func([]Record) {}, make(chan struct{}))
	if !errors.Is(err, ErrEtcdUnavailable) {
		t.Fatalf("join without etcd: %v, want ErrEtcdUnavailable", err)
	}
}
