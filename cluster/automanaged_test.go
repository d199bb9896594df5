package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/internal/testserver"
)

var _ pcluster.ClusterProvider = (*automanagedProvider)(nil)

const testCluster = "ensemble-test"

func loopbackAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testserver.FreePort(t))
}

// amView records every membership a member publishes, in order.
type amView struct {
	mu      sync.Mutex
	seen    [][]string
	changed chan struct{}
}

func newAMView() *amView { return &amView{changed: make(chan struct{})} }

func (v *amView) publish(members []memberRecord) {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen = append(v.seen, ids)
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *amView) all() [][]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.seen)
}

// waitFor waits until the membership last published is exactly want
// (sorted). The bound only turns a hang into a failure.
func (v *amView) waitFor(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	timeout := time.After(30 * time.Second)
	for {
		v.mu.Lock()
		var got []string
		if len(v.seen) > 0 {
			got = v.seen[len(v.seen)-1]
		}
		changed := v.changed
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

// amLog records the messages a membership logs, so a test can wait for
// what it saw.
type amLog struct {
	mu    sync.Mutex
	seen  map[string]int
	added chan struct{}
}

func newAMLog() *amLog { return &amLog{seen: map[string]int{}, added: make(chan struct{})} }

func (l *amLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *amLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *amLog) WithGroup(string) slog.Handler            { return l }
func (l *amLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[r.Message]++
	close(l.added)
	l.added = make(chan struct{})
	return nil
}

func (l *amLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}

func (l *amLog) waitFor(t *testing.T, msg string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
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

type amMember struct {
	*automanagedMembership
	view *amView
	log  *amLog
}

func joinAM(t *testing.T, id, addr string, members []string, refresh time.Duration) *amMember {
	t.Helper()
	m := &amMember{view: newAMView(), log: newAMLog()}
	opts := automanagedOptions{
		Cluster: testCluster, Addr: addr, Members: members, Refresh: refresh,
		Ejected: make(chan struct{}), Log: slog.New(m.log),
	}
	ms, err := joinAutomanaged(context.Background(), opts, memberRecord{ID: id, Host: "127.0.0.1", Port: 1, Kinds: []string{"where"}}, m.view.publish)
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	m.automanagedMembership = ms
	t.Cleanup(ms.leave)
	return m
}

func (m *amMember) isEjected() bool {
	select {
	case <-m.ejected:
		return true
	default:
		return false
	}
}

// answerOf asks a membership's address directly, as another member would.
func answerOf(t *testing.T, addr string) automanagedAnswer {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + addr + automanagedPath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a automanagedAnswer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// fakePeer answers at its address as the test tells it: a member's
// answer, silence for the poll(s) to come, or something else.
type fakePeer struct {
	addr string
	srv  *http.Server
	done chan struct{}

	mu       sync.Mutex
	answer   automanagedAnswer
	raw      string // when set, served instead of answer
	hang     int    // polls to leave unanswered (-1: all)
	asked    int
	askedNow chan struct{}
}

func startFakePeer(t *testing.T, answer automanagedAnswer) *fakePeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePeer{addr: l.Addr().String(), answer: answer, askedNow: make(chan struct{}), done: make(chan struct{})}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve)}
	go func() { _ = f.srv.Serve(l) }()
	t.Cleanup(func() {
		close(f.done)
		_ = f.srv.Close()
	})
	return f
}

func (f *fakePeer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.asked++
	close(f.askedNow)
	f.askedNow = make(chan struct{})
	hang := f.hang != 0
	if f.hang > 0 {
		f.hang--
	}
	answer, raw := f.answer, f.raw
	f.mu.Unlock()
	if hang {
		// Silent until the caller gives up.
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
		return
	}
	if raw != "" {
		_, _ = w.Write([]byte(raw))
		return
	}
	_ = json.NewEncoder(w).Encode(answer)
}

func (f *fakePeer) set(fn func(f *fakePeer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakePeer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// waitAsked waits until the peer has been asked n times in all.
func (f *fakePeer) waitAsked(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		asked, ch := f.asked, f.askedNow
		f.mu.Unlock()
		if asked >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("fake peer asked %d times, want %d", asked, n)
		}
	}
}

func fakeAnswer(id string) automanagedAnswer {
	return automanagedAnswer{Cluster: testCluster, memberRecord: memberRecord{ID: id, Host: "127.0.0.1", Port: 2, Kinds: []string{"where"}}}
}

func TestAutomanagedMembersJoinAndLeave(t *testing.T) {
	const refresh = 3 * time.Second
	addrA, addrB, addrC := loopbackAddr(t), loopbackAddr(t), loopbackAddr(t)
	// Every member has the same list, its own address included.
	members := []string{addrA, addrB, addrC}
	a := joinAM(t, "a", addrA, members, refresh)
	// The join publishes before it returns: alone, a is the membership.
	if got := a.view.all(); len(got) != 1 || !slices.Equal(got[0], []string{"a"}) {
		t.Fatalf("a's memberships after its join: %v, want [[a]]", got)
	}
	b := joinAM(t, "b", addrB, members, refresh)
	if got := b.view.all(); len(got) != 1 || !slices.Equal(got[0], []string{"a", "b"}) {
		t.Fatalf("b's memberships after its join: %v, want [[a b]]", got)
	}
	c := joinAM(t, "c", addrC, members, refresh)
	for _, m := range []*amMember{a, b, c} {
		m.view.waitFor(t, "a", "b", "c")
	}

	// A member that leaves closes its address at once: the others drop it
	// at their next poll, well within a refresh.
	left := time.Now()
	b.leave()
	if conn, err := net.Dial("tcp", addrB); err == nil {
		conn.Close()
		t.Fatal("b's address still accepts connections after it left")
	}
	a.view.waitFor(t, "a", "c")
	c.view.waitFor(t, "a", "c")
	if took := time.Since(left); took >= refresh {
		t.Fatalf("b seen gone after %v, want less than the refresh (%v): a closed address is a stopped member", took, refresh)
	}
	if n := a.log.count("member left (its address refuses connections)"); n != 1 {
		t.Fatalf("a logged b's leave %d times, want 1", n)
	}
	// The others say they dropped b: protoactor now refuses its ID.
	if got := answerOf(t, addrA).Dropped; !slices.Equal(got, []string{"b"}) {
		t.Fatalf("a says it dropped %v, want [b]", got)
	}

	// A restarted member at the same address is a new member (new ID).
	b2 := joinAM(t, "b2", addrB, members, refresh)
	for _, m := range []*amMember{a, b2, c} {
		m.view.waitFor(t, "a", "b2", "c")
	}
	for name, m := range map[string]*amMember{"a": a, "b": b, "b2": b2, "c": c} {
		if m.isEjected() {
			t.Fatalf("%s was ejected", name)
		}
	}
}

// A member that stops answering (a hung process, a host gone from the
// LAN) is dropped once it has been silent for a whole refresh, and never
// taken back under the same ID: protoactor blocks it.
func TestAutomanagedSilentMemberDroppedAfterRefresh(t *testing.T) {
	const refresh = 600 * time.Millisecond
	z := startFakePeer(t, fakeAnswer("z"))
	a := joinAM(t, "a", loopbackAddr(t), []string{z.addr}, refresh)
	a.view.waitFor(t, "a", "z")

	z.set(func(f *fakePeer) { f.hang = -1 })
	silent := time.Now()
	a.view.waitFor(t, "a")
	// Its last answer came at most a poll (refresh/3) before the silence.
	if took := time.Since(silent); took < refresh/2 {
		t.Fatalf("z dropped %v after it fell silent; want about the refresh (%v)", took, refresh)
	}
	if a.log.count("member does not answer; dropped if it stays silent") != 1 || a.log.count("member stopped answering; dropped") != 1 {
		t.Fatal("a did not log z's silence and drop once each")
	}

	// z answers again under its old ID: it stays out, and a says why.
	z.set(func(f *fakePeer) { f.hang = 0 })
	z.waitAsked(t, z.count()+2)
	if got := a.view.all(); !slices.Equal(got[len(got)-1], []string{"a"}) {
		t.Fatalf("a's membership after z came back: %v, want [a]", got[len(got)-1])
	}
	if got := answerOf(t, a.Addr()).Dropped; !slices.Equal(got, []string{"z"}) {
		t.Fatalf("a says it dropped %v, want [z]", got)
	}
}

// A member restarted at its address between two polls (a new ID there)
// replaces the old one at once.
func TestAutomanagedRestartBetweenPollsReplacesMember(t *testing.T) {
	const refresh = 1500 * time.Millisecond
	z := startFakePeer(t, fakeAnswer("z1"))
	a := joinAM(t, "a", loopbackAddr(t), []string{z.addr}, refresh)
	a.view.waitFor(t, "a", "z1")
	z.set(func(f *fakePeer) { f.answer = fakeAnswer("z2") })
	a.view.waitFor(t, "a", "z2")
	want := [][]string{{"a", "z1"}, {"a", "z2"}}
	if got := a.view.all(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("a published %v, want %v", got, want)
	}
	if got := answerOf(t, a.Addr()).Dropped; !slices.Equal(got, []string{"z1"}) {
		t.Fatalf("a says it dropped %v, want [z1]", got)
	}
}

// One unanswered poll is not a dead member.
func TestAutomanagedMissedPollKeepsMember(t *testing.T) {
	const refresh = 3 * time.Second
	z := startFakePeer(t, fakeAnswer("z"))
	a := joinAM(t, "a", loopbackAddr(t), []string{z.addr}, refresh)
	a.view.waitFor(t, "a", "z")
	z.set(func(f *fakePeer) { f.hang = 1 })
	a.log.waitFor(t, "member does not answer; dropped if it stays silent")
	a.log.waitFor(t, "member answers again")
	for _, ids := range a.view.all() {
		if !slices.Equal(ids, []string{"a", "z"}) {
			t.Fatalf("a published %v after one missed poll: %v", ids, a.view.all())
		}
	}
}

// A member that finds its ID among another's dropped members is told it
// must rejoin (the node restarts it with a new ID).
func TestAutomanagedMemberToldWhenDropped(t *testing.T) {
	const refresh = 1500 * time.Millisecond
	p := startFakePeer(t, fakeAnswer("p"))
	x := joinAM(t, "x", loopbackAddr(t), []string{p.addr}, refresh)
	x.view.waitFor(t, "p", "x")
	if x.isEjected() {
		t.Fatal("x ejected while no one had dropped it")
	}
	p.set(func(f *fakePeer) { f.answer.Dropped = []string{"gone", "x"} })
	select {
	case <-x.ejected:
	case <-time.After(30 * time.Second):
		t.Fatal("x was not told it was dropped")
	}
	p.waitAsked(t, p.count()+2)
	if n := x.log.count("dropped from the cluster; this member must rejoin under a new ID"); n != 1 {
		t.Fatalf("%d ERROR lines for the ejection, want 1", n)
	}
}

// Addresses that answer for another cluster, or not as a member, are
// not members.
func TestAutomanagedIgnoresOtherAnswers(t *testing.T) {
	const refresh = 1500 * time.Millisecond
	other := fakeAnswer("o")
	other.Cluster = "another"
	strangers := []*fakePeer{startFakePeer(t, other), startFakePeer(t, automanagedAnswer{}), startFakePeer(t, fakeAnswer("junk"))}
	strangers[2].set(func(f *fakePeer) { f.raw = "<html>not a member</html>" })
	addrs := []string{loopbackAddr(t)} // nothing listens there
	for _, s := range strangers {
		addrs = append(addrs, s.addr)
	}
	a := joinAM(t, "a", loopbackAddr(t), addrs, refresh)
	for _, s := range strangers {
		s.waitAsked(t, 3)
	}
	if got := a.view.all(); len(got) != 1 || !slices.Equal(got[0], []string{"a"}) {
		t.Fatalf("a published %v, want [[a]]", got)
	}
	if n := a.log.count("the member at this address belongs to another cluster; ignored"); n != 1 {
		t.Fatalf("other cluster logged %d times, want once", n)
	}
}

// leave closes the listener and leaves no goroutine of the membership
// behind: not its loops, not the server's connections, not the client's.
func TestAutomanagedLeaveLeavesNothingRunning(t *testing.T) {
	const refresh = 1500 * time.Millisecond
	addrA, addrB := loopbackAddr(t), loopbackAddr(t)
	a := joinAM(t, "a", addrA, []string{addrA, addrB}, refresh)
	b := joinAM(t, "b", addrB, []string{addrA, addrB}, refresh)
	a.view.waitFor(t, "a", "b")
	b.view.waitFor(t, "a", "b")
	if leftovers() == "" {
		t.Fatal("no membership goroutine found while members run: the check sees nothing")
	}
	b.leave()
	a.leave()
	a.leave() // twice is fine
	// leave has waited for its goroutines and the server's connections
	// (each may still be returning); the client's closed connections end
	// just after.
	deadline := time.Now().Add(10 * time.Second)
	for s := leftovers(); s != ""; s = leftovers() {
		if time.Now().After(deadline) {
			t.Fatalf("still running after leave:\n%s", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, addr := range []string{addrA, addrB} {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections after leave", addr)
		}
	}
	if a.isEjected() || b.isEjected() {
		t.Fatal("a member that left was told it was ejected")
	}
}

func leftovers() string {
	return stacksOf("cluster.(*automanagedMembership)", "cluster.joinAutomanaged", "net/http.(*conn).serve", "net/http.(*persistConn)", "net/http.(*Server).Serve")
}

// stacksOf returns the goroutine stacks that hold any of the functions.
func stacksOf(funcs ...string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range funcs {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

func TestAutomanagedJoinOnBusyAddressFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts := automanagedOptions{Cluster: testCluster, Addr: l.Addr().String(), Refresh: time.Second, Log: slog.New(newAMLog())}
	_, err = joinAutomanaged(context.Background(), opts, memberRecord{ID: "a"}, func([]memberRecord) { t.Error("published without a listener") })
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("join on a busy address: %v, want an error naming it", err)
	}
}

// net/http's own error log goes to the node's slog logger, not stderr.
func TestAutomanagedServerLogsThroughSlog(t *testing.T) {
	a := joinAM(t, "a", loopbackAddr(t), nil, time.Second)
	a.server.ErrorLog.Print("probe from the test")
	if a.log.count("probe from the test") != 1 {
		t.Fatal("the HTTP server's error log does not reach slog")
	}
}
