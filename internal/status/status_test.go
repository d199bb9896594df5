package status

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/internal/secret"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestFromMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	gauge := func(name string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name})
		g.Set(v)
		reg.MustRegister(g)
	}
	vec := func(name, label string, values map[string]float64, counter bool) {
		if counter {
			c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, []string{label})
			for l, v := range values {
				c.WithLabelValues(l).Add(v)
			}
			reg.MustRegister(c)
			return
		}
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, []string{label})
		for l, v := range values {
			g.WithLabelValues(l).Set(v)
		}
		reg.MustRegister(g)
	}
	gauge("ensemble_guild_activations", 12)
	gauge("ensemble_session_activations", 4)
	gauge("ensemble_store_breaker_state", 2)
	vec("ensemble_mailbox_messages", "kind", map[string]float64{"Guild": 3, "Session": 0}, false)
	vec("ensemble_interaction_acks_total", "result", map[string]float64{"direct": 40, "deferred": 2}, true)
	vec("ensemble_interactions_busy_total", "reason", map[string]float64{"backlog": 5, "lag": 1}, true)
	vec("ensemble_songs_started_total", "source", map[string]float64{"youtube": 7, "http": 1}, true)
	vec("ensemble_lavalink_breaker_state", "node", map[string]float64{"eu-1": 0, "us-1": 1, "ap-1": 7}, false)
	vec("ensemble_lavalink_node_up", "node", map[string]float64{"eu-1": 1, "us-1": 0, "ap-1": 0}, false)
	vec("ensemble_lavalink_node_load_score", "node", map[string]float64{"eu-1": 2.5, "us-1": 9}, false)
	vec("ensemble_lavalink_node_resuming", "node", map[string]float64{"eu-1": 1}, false)
	gauge("ensemble_unrelated", 99)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var m Member
	m.FromMetrics(families)

	if m.GuildActivations != 12 || m.SessionActivations != 4 {
		t.Errorf("activations %d guilds, %d sessions; want 12, 4", m.GuildActivations, m.SessionActivations)
	}
	if m.Store.Breaker != "open" {
		t.Errorf("store breaker %q; want open (2)", m.Store.Breaker)
	}
	if m.Mailboxes["Guild"] != 3 || len(m.Mailboxes) != 2 {
		t.Errorf("mailboxes %v", m.Mailboxes)
	}
	if m.Acks["direct"] != 40 || m.Acks["deferred"] != 2 || m.Busy != 6 || m.SongsStarted != 8 {
		t.Errorf("acks %v busy %d songs %d; want direct 40, deferred 2, busy 6, songs 8", m.Acks, m.Busy, m.SongsStarted)
	}
	want := []LavalinkNode{
		{Name: "ap-1", Breaker: "unknown"},
		{Name: "eu-1", Up: true, Breaker: "closed", Load: 2.5, Resuming: true},
		{Name: "us-1", Breaker: "half-open", Load: 9},
	}
	if len(m.Lavalink) != len(want) {
		t.Fatalf("lavalink %+v; want %+v", m.Lavalink, want)
	}
	for i := range want {
		if m.Lavalink[i] != want[i] {
			t.Errorf("lavalink[%d] %+v; want %+v", i, m.Lavalink[i], want[i])
		}
	}
}

func TestAuthorization(t *testing.T) {
	collect := func(context.Context) (Cluster, error) { return Cluster{Name: "c", Self: "a"}, nil }
	const token = "s3cret-admin-token"
	for _, tc := range []struct {
		name      string
		protected bool
		token     string
		header    string
		want      int
	}{
		{"loopback admin needs no token", false, "", "", http.StatusOK},
		{"loopback admin ignores a wrong token", false, token, "Bearer nope", http.StatusOK},
		{"exposed admin without ADMIN_TOKEN refuses", true, "", "Bearer anything", http.StatusForbidden},
		{"exposed admin, no header", true, token, "", http.StatusUnauthorized},
		{"exposed admin, wrong token", true, token, "Bearer " + token + "x", http.StatusUnauthorized},
		{"exposed admin, basic auth", true, token, "Basic " + token, http.StatusUnauthorized},
		{"exposed admin, right token", true, token, "Bearer " + token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			Handler{Collect: collect, Protected: tc.protected, Token: secret.New(tc.token)}.Register(mux)
			for _, path := range []string{"/status", "/status.json"} {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				if rec.Code != tc.want {
					t.Errorf("%s: %d; want %d (%s)", path, rec.Code, tc.want, rec.Body)
				}
				if strings.Contains(rec.Body.String(), token) {
					t.Errorf("%s: the answer echoes the token", path)
				}
				if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", path)
				}
			}
		})
	}
}

func TestNotRunningIs503(t *testing.T) {
	mux := http.NewServeMux()
	Handler{Collect: func(context.Context) (Cluster, error) { return Cluster{}, ErrNotRunning }}.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), ErrNotRunning.Error()) {
		t.Errorf("%d %s; want 503 saying the member is not running", rec.Code, rec.Body)
	}
}

// TestPageGolden renders a fixed status: a ready member with a playing
// session, one with an open store breaker and a Lavalink node down, one
// that did not answer. testdata/page.golden.html is the expected page
// (go test -run TestPageGolden -update rewrites it).
func TestPageGolden(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	c := Cluster{Name: "prod", GeneratedAt: now, Self: "10.0.0.1:7000", Members: []MemberResult{
		{Address: "10.0.0.1:7000", Member: &Member{
			ID: "A1", Address: "10.0.0.1:7000", Provider: "etcd", Version: "v1.2.0", StartedAt: now.Add(-90 * time.Minute), Ready: true,
			Shards: []Shard{{ID: 0, Ready: true}, {ID: 1, Ready: false}}, GuildActivations: 120, SessionActivations: 7,
			Mailboxes: map[string]int{"Guild": 0, "Session": 2}, Acks: map[string]int{"direct": 900, "deferred": 12}, Busy: 3, SongsStarted: 88,
			Lavalink: []LavalinkNode{{Name: "eu-1", Up: true, Breaker: "closed", Load: 1.5}},
			Store:    Store{Kind: "redis", Breaker: "closed", Ready: true},
		}},
		{Address: "10.0.0.2:7000", Member: &Member{
			ID: "B2", Address: "10.0.0.2:7000", Provider: "etcd", Version: "v1.2.0", StartedAt: now.Add(-time.Hour),
			Components: []Component{{Name: "lavalink", Ready: true}, {Name: "store", Detail: "redis unreachable: <dial tcp>"}},
			Lavalink:   []LavalinkNode{{Name: "eu-1", Breaker: "open", Load: 0}},
			Store:      Store{Kind: "redis", Breaker: "open", Detail: "redis unreachable: <dial tcp>"},
		}},
		{Address: "10.0.0.3:7000", Error: "no status answer: future: timeout"},
	}}
	c.total()
	var buf bytes.Buffer
	if err := Render(&buf, c); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "page.golden.html")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("page differs from %s (run with -update after checking it):\n%s", golden, buf.String())
	}
	// What the golden file must show, whatever it looks like.
	for _, s := range []string{"&lt;dial tcp&gt;", `class="member unreachable" data-address="10.0.0.3:7000"`, "#1 connecting",
		"eu-1 · down · open", `id="total-members"><b>2/3</b>`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func TestBreakerName(t *testing.T) {
	for v, want := range map[float64]string{0: "closed", 1: "half-open", 2: "open", 3: "unknown", -1: "unknown", 0.5: "unknown"} {
		if got := breakerName(v); got != want {
			t.Errorf("breakerName(%v) = %q; want %q", v, got, want)
		}
	}
}

// TestSnapshotPanicIsAnError: a member whose snapshot panics answers with
// the error, and stays up to answer the next request.
func TestSnapshotPanicIsAnError(t *testing.T) {
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	calls := 0
	_, err := Spawn(sys, slog.New(slog.DiscardHandler), func() Member {
		calls++
		if calls == 1 {
			panic("a bug in the snapshot")
		}
		return Member{ID: "after"}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := Ask(context.Background(), sys, "c", []string{sys.Address()}, 5*time.Second)
	if r := c.Members[0]; r.Member != nil || !strings.Contains(r.Error, "status snapshot failed") {
		t.Fatalf("first answer %+v; want the snapshot's panic as an error", r)
	}
	c = Ask(context.Background(), sys, "c", []string{sys.Address()}, 5*time.Second)
	if r := c.Members[0]; r.Member == nil || r.Member.ID != "after" {
		t.Fatalf("second answer %+v; want the member's status", r)
	}
}
