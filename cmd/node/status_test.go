package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/status"
)

// chromium runs Debian's headless Chromium (make deps installs it) on url
// with args (--dump-dom, --screenshot=...) and returns its standard output.
// The flags keep it off the network it would otherwise try to reach.
func chromium(ctx context.Context, t *testing.T, url string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (make deps installs it): the status page is checked in a real browser")
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// clusterStatus reads /status.json from a member.
func clusterStatus(t *testing.T, admin string) status.Cluster {
	t.Helper()
	code, body := get(t, "http://"+admin+"/status.json")
	var c status.Cluster
	if code != http.StatusOK {
		t.Fatalf("GET /status.json: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("GET /status.json: %v\n%s", err, body)
	}
	return c
}

// metricValue reads one series' value from a member's /metrics.
func metricValue(t *testing.T, admin, series string) int {
	t.Helper()
	_, body := get(t, "http://"+admin+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", series, line)
			}
			return int(n)
		}
	}
	t.Fatalf("%s: no such series on %s", series, admin)
	return 0
}

// TestStatusPageShowsTheCluster runs three members with six guilds playing
// and loads one member's /status in headless Chromium: the page shows every
// member (each answered for itself over the cluster's remote), both shards
// ready, the six sessions, the Lavalink node up with its breaker closed,
// the Redis store; it loads nothing from anywhere else. Once a member is
// killed, the page shows the two others holding every shard and session.
// With ENSEMBLE_STATUS_SCREENSHOT=path it also saves a screenshot there
// (docs/status.png is made so).
func TestStatusPageShowsTheCluster(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cl := startCluster(ctx, t, clustertest.Config{Node: bin})
	guilds, err := cl.Discord.AddLoadGuilds(6, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*clustertest.Node{startNode(ctx, t, cl), startNode(ctx, t, cl), startNode(ctx, t, cl)}
	answer := answerer(ctx, t, cl)
	for i, g := range guilds {
		answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("song %d", i)))
	}
	waitFor(t, "every guild playing once", func() bool {
		players := cl.Players()
		for _, g := range guilds {
			if len(players[uint64(g.ID)]) != 1 {
				return false
			}
		}
		return true
	})

	settled := func(members int) func() bool {
		return func() bool {
			c := clusterStatus(t, nodes[0].Admin)
			tt := c.Totals
			return tt.Members == members && tt.Answered == members && tt.Ready == members &&
				tt.Shards == 2 && tt.ShardsReady == 2 && tt.Sessions == len(guilds)
		}
	}
	waitFor(t, "/status.json: three members answering and ready, two shards, six sessions", settled(3))
	c := clusterStatus(t, nodes[0].Admin)
	var addrs []string
	for _, r := range c.Members {
		m := r.Member
		addrs = append(addrs, r.Address)
		if m.Address != r.Address || m.ID == "" || m.Provider != "etcd" || m.Version == "" {
			t.Errorf("member %s answered %+v; want its own address, an ID, provider etcd and a version", r.Address, m)
		}
		if m.Store.Kind != "redis" || m.Store.Breaker != "closed" || !m.Store.Ready {
			t.Errorf("member %s store %+v; want redis, breaker closed, ready", r.Address, m.Store)
		}
		if len(m.Lavalink) != 1 || !m.Lavalink[0].Up || m.Lavalink[0].Breaker != "closed" {
			t.Errorf("member %s Lavalink nodes %+v; want one, up, breaker closed", r.Address, m.Lavalink)
		}
	}
	if c.Self != nodes[0].Bind && nodes[0].Bind != "" {
		t.Errorf("self %q; want the asked member %q", c.Self, nodes[0].Bind)
	}

	url := "http://" + nodes[0].Admin + "/status"
	dom := chromium(ctx, t, url, "--dump-dom")
	rows := regexp.MustCompile(`<tr class="member" data-address="([^"]+)"`).FindAllStringSubmatch(dom, -1)
	var shown []string
	for _, r := range rows {
		shown = append(shown, r[1])
	}
	slices.Sort(shown)
	if !slices.Equal(shown, addrs) {
		t.Errorf("page shows members %v; want %v", shown, addrs)
	}
	for _, want := range []string{
		`id="total-members"><b>3/3</b>`, `id="total-ready"><b>3</b>`, `id="total-shards"><b>2/2</b>`,
		fmt.Sprintf(`id="total-sessions"><b>%d</b>`, len(guilds)), "this member",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q:\n%s", want, dom)
		}
	}
	if n := strings.Count(dom, "· up · closed ·"); n != 3 {
		t.Errorf("page shows %d Lavalink nodes up with a closed breaker; want one per member (3)", n)
	}
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(dom); m != "" {
		t.Errorf("page loads something from elsewhere (%s); it must be self-contained", m)
	}
	if path := os.Getenv("ENSEMBLE_STATUS_SCREENSHOT"); path != "" {
		chromium(ctx, t, url, "--screenshot="+path, "--window-size=1500,560", "--hide-scrollbars")
		t.Logf("screenshot saved to %s", path)
	}

	// A member killed: the others take its shards and sessions, and the
	// page lists the two that remain once the membership has dropped it.
	// The survivors count each failover: every session it ran restored
	// and playing here, every shard it held resumed here.
	var victim *status.Member
	for _, r := range c.Members {
		if r.Member.Admin == nodes[2].Admin {
			victim = r.Member
		}
	}
	if victim == nil {
		t.Fatalf("no member answers with admin %s: %+v", nodes[2].Admin, c.Members)
	}
	holdersStored(ctx, t, cl, guilds)
	if err := nodes[2].Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/status.json: two members holding both shards and six sessions", settled(2))
	waitFor(t, "the survivors' failover counts", func() bool {
		sessions, shards := 0, 0
		for _, n := range nodes[:2] {
			sessions += metricValue(t, n.Admin, "ensemble_session_failover_seconds_count")
			shards += metricValue(t, n.Admin, `ensemble_shard_connect_seconds_count{how="resumed"}`)
		}
		return sessions == victim.SessionActivations && shards >= len(victim.Shards)
	})
	dom = chromium(ctx, t, url, "--dump-dom")
	if n := strings.Count(dom, `<tr class="member" `); n != 2 || !strings.Contains(dom, `id="total-shards"><b>2/2</b>`) {
		t.Errorf("after a kill the page shows %d members; want 2, with both shards ready:\n%s", n, dom)
	}
}
