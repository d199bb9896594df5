//go:build !race

package node

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// scrape parses the node's /metrics.
func scrape(t *testing.T, w *world) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(metricsText(t, w)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// value is the sum over the family's series whose labels include want: a
// counter's or gauge's value, a histogram's sample count. ok is false
// when no series matches.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
series:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, val := range want {
			if have[k] != val {
				continue series
			}
		}
		ok = true
		switch {
		case m.GetHistogram() != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.GetGauge() != nil:
			v += m.GetGauge().GetValue()
		default:
			v += m.GetCounter().GetValue()
		}
	}
	return v, ok
}

// TestMetricsAfterASession: after a short session every series an
// operator needs exists, with values that fit what happened.
func TestMetricsAfterASession(t *testing.T) {
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: testserver.StartRedis(t), userCommands: 1000, guildCommands: 1000})
	w.join(w.listener, w.voice)
	w.discord.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: "/channels/{c}/messages", RetryAfter: time.Second})
	wantContains(t, w.run(w.listener, "play", discordemu.StringOption("query", "lofi beats")), "lofi beats")
	w.player(playing("lofi beats"))
	w.run(w.listener, "play", discordemu.StringOption("query", "second song"))
	w.run(w.listener, "queue")
	w.run(w.listener, "volume", discordemu.IntOption("level", 500)) // out of range: an error reply
	waitFor(t, "the now-playing message through its 429", func() bool { return w.discord.PendingRateLimits() == 0 })

	type want struct {
		name   string
		labels map[string]string
		min    float64
		max    float64
	}
	checks := []want{
		{"ensemble_command_duration_seconds", map[string]string{"command": "play", "outcome": "ok"}, 2, 2},
		{"ensemble_command_duration_seconds", map[string]string{"command": "queue", "outcome": "ok"}, 1, 1},
		{"ensemble_command_duration_seconds", map[string]string{"command": "volume", "outcome": "error"}, 1, 1},
		{"ensemble_interaction_acks_total", map[string]string{}, 4, 4},
		{"ensemble_interaction_acks_total", map[string]string{"result": "late"}, 0, 0},
		{"ensemble_interactions_busy_total", nil, 0, 0},
		{"ensemble_songs_started_total", nil, 1, 1},
		{"ensemble_queue_length", nil, 1, 1},
		{"ensemble_guild_activations", nil, 1, 1},
		{"ensemble_session_activations", nil, 1, 1},
		{"ensemble_shards_held", nil, 1, 1},
		{"ensemble_shards_ready", nil, 1, 1},
		{"ensemble_shard_connect_seconds", map[string]string{"how": "identified"}, 1, 1},
		{"ensemble_shard_connect_seconds", map[string]string{"how": "resumed"}, 0, 0},
		{"ensemble_session_failover_seconds", nil, 0, 0},
		{"ensemble_lavalink_node_up", map[string]string{"node": "emu"}, 1, 1},
		{"ensemble_lavalink_breaker_state", map[string]string{"node": "emu"}, 0, 0},
		{"ensemble_store_breaker_state", nil, 0, 0},
		{"ensemble_store_errors_total", nil, 0, 0},
		{"ensemble_store_calls_refused_total", nil, 0, 0},
		{"ensemble_ratelimit_decisions_total", nil, 4, 1e9},
		{"ensemble_discord_rest_rate_limited_total", map[string]string{"scope": "user"}, 1, 1},
		{"ensemble_discord_rest_rate_limited_total", map[string]string{"scope": "global"}, 0, 0},
		{"ensemble_discord_rest_retries_total", nil, 0, 0},
		// Nothing waits once the session is quiet.
		{"ensemble_mailbox_messages", map[string]string{"kind": "Guild"}, 0, 0},
		{"ensemble_mailbox_messages", map[string]string{"kind": "Session"}, 0, 0},
		{"ensemble_mailbox_messages", map[string]string{"kind": "Shard"}, 0, 0},
	}
	// Counted when each answer's last call returns, off the interaction's
	// own answer to the test: poll until they settle.
	var mfs map[string]*dto.MetricFamily
	deadline := time.Now().Add(15 * time.Second)
	for {
		mfs = scrape(t, w)
		var failed []string
		for _, c := range checks {
			if v, ok := value(mfs, c.name, c.labels); !ok || v < c.min || v > c.max {
				failed = append(failed, c.name+labelText(c.labels)+" = "+fmtValue(v, ok))
			}
		}
		if len(failed) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("series missing or implausible:\n%s", strings.Join(failed, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every series the alert rules and the dashboard use exists (a rule
	// over a series that does not exist never fires, a panel stays empty).
	b, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var alertExprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alertExprs = append(alertExprs, r.Expr)
		}
	}
	checkSeries(t, mfs, "alerts.yml", alertExprs)

	b, err = os.ReadFile("../../deploy/grafana/ensemble.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Definition string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	var panelExprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			panelExprs = append(panelExprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		panelExprs = append(panelExprs, v.Definition)
	}
	if len(panelExprs) < 20 {
		t.Fatalf("the dashboard has %d queries", len(panelExprs))
	}
	checkSeries(t, mfs, "the dashboard", panelExprs)
}

// checkSeries fails for each metric the expressions use that the scrape
// lacks. Migrations are counted per pair of Lavalink nodes, and the test
// node has one.
func checkSeries(t *testing.T, mfs map[string]*dto.MetricFamily, where string, exprs []string) {
	t.Helper()
	name := regexp.MustCompile(`\b(?:ensemble|process|go)_[a-z_]+`)
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
			if base == "ensemble_lavalink_player_migrations_total" {
				continue
			}
			if mfs[n] == nil && mfs[base] == nil {
				t.Errorf("%s uses %s, which the node does not export", where, n)
			}
		}
	}
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func fmtValue(v float64, ok bool) string {
	if !ok {
		return "absent"
	}
	return strings.TrimRight(strings.TrimRight(model.SampleValue(v).String(), "0"), ".")
}

// TestMetricsCardinalityIsBounded: a thousand guilds using the bot add no
// series (no label carries a guild, user or channel ID): the scrape after
// them has what the scrape after one guild had, plus at most the series of
// command outcomes not seen before.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	w := newWorld(t, worldOpts{userCommands: 100000, guildCommands: 100000})
	w.run(w.listener, "queue")
	series := func(mfs map[string]*dto.MetricFamily) int {
		n := 0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				n++
				if h := m.GetHistogram(); h != nil {
					n += len(h.GetBucket())
				}
			}
		}
		return n
	}
	before := series(scrape(t, w))

	guilds, err := w.discord.AddLoadGuilds(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.discord.RunLoad(w.ctx, guilds, discordemu.LoadSpec{Rate: 400, Count: len(guilds), Sequential: true,
		Mix: []discordemu.LoadCommand{{Name: "queue", Weight: 1}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	answered := 0
	for _, r := range res.Records {
		if r.LatencyUS >= 0 {
			answered++
		}
	}
	if answered != len(guilds) {
		t.Fatalf("%d of %d interactions answered", answered, len(guilds))
	}
	mfs := scrape(t, w)
	if v, _ := value(mfs, "ensemble_guild_activations", nil); v < 1000 {
		t.Fatalf("%v guild activations; the load did not reach the guilds", v)
	}
	id := regexp.MustCompile(`^[0-9]{15,}$`)
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if id.MatchString(l.GetValue()) {
					t.Fatalf("%s has an ID for a label: %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	// One guild's /queue already made its series; the thousand add at
	// most /queue's other outcomes under load (busy, say: 16 series each
	// with the histogram's buckets) and a few of Go's runtime; nothing
	// that grows with the guilds.
	after := series(mfs)
	if after-before > 100 {
		t.Fatalf("%d series after one guild, %d after a thousand", before, after)
	}
	t.Logf("%d series after one guild, %d after a thousand", before, after)
}
