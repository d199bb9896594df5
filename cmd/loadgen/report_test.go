package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"empty", nil, 0.5, 0},
		{"one value", []float64{7}, 0.999, 7},
		{"median of 1..100", hundred, 0.50, 50},
		{"p99 of 1..100", hundred, 0.99, 99},
		{"p99.9 of 1..100 is the max", hundred, 0.999, 100},
		{"max", hundred, 1, 100},
		{"p0 is the min", hundred, 0, 1},
		{"p50 of two", []float64{1, 2}, 0.5, 1},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	busy := "⚠️ " + commands.BusyMessage
	res := discordemu.LoadResult{
		MaxSendLag:  2500 * time.Microsecond,
		SendErrors:  2,
		Disconnects: 1,
		Records: []discordemu.LoadRecord{
			{Command: "queue", WriteDelayUS: 100, LatencyUS: 1000, Type: discordemu.ResponseMessage, Flags: discordemu.FlagEphemeral, Content: "Queue is empty"},
			{Command: "queue", WriteDelayUS: 100, LatencyUS: 3000, Type: discordemu.ResponseMessage, Flags: discordemu.FlagEphemeral, Content: busy},
			// The busy text in a public message is somebody quoting it, not the bot refusing.
			{Command: "queue", WriteDelayUS: 100, LatencyUS: 2000, Type: discordemu.ResponseMessage, Content: busy},
			{Command: "play", WriteDelayUS: 900, LatencyUS: 4000, Type: discordemu.ResponseDeferredMessage, Flags: discordemu.FlagEphemeral},
			{Command: "play", WriteDelayUS: 5000, LatencyUS: -1},
			// Taken by the emulator 2.5 s after the write, but the interaction waited
			// 1 s for the bot to read it: 3.5 s after its creation.
			{Command: "queue", WriteDelayUS: 1_000_000, LatencyUS: 2_500_000, Type: discordemu.ResponseMessage},
			{Command: "play", WriteDelayUS: -1, LatencyUS: -1, Late: true},
			// A record of an emulator that read its send clock after the write: the answer
			// came, so it is answered (at 0), not unanswered.
			{Command: "nowplaying", SentUS: 4171665, WriteDelayUS: 389, LatencyUS: -3, Type: discordemu.ResponseMessage, Flags: discordemu.FlagEphemeral, Content: "ok"},
		},
	}
	st := summarize(res)
	want := answerCounts{Sent: 10, Answered: 5, Deferred: 1, Busy: 1, Unanswered: 5, Expired: 1, Late: 1, SendErrors: 2}
	if st.answerCounts != want {
		t.Errorf("counts %+v, want %+v", st.answerCounts, want)
	}
	if st.WriteDelayP99MS != 1000 || st.WriteDelayMaxMS != 1000 || st.NeverWritten != 1 || st.Disconnects != 1 {
		t.Errorf("write delay p99 %v max %v, never written %d, disconnects %d; want 1000, 1000, 1, 1",
			st.WriteDelayP99MS, st.WriteDelayMaxMS, st.NeverWritten, st.Disconnects)
	}
	if st.WaitP50MS != 2.1 || st.WaitMaxMS != 4.9 {
		t.Errorf("users waited p50 %v max %v; want 2.1 and 4.9 (write delay + latency of the answered)", st.WaitP50MS, st.WaitMaxMS)
	}
	if st.P50 != 2 || st.P99 != 4 || st.Max != 4 || st.MaxSendLagMS != 2.5 {
		t.Errorf("latencies %+v lag %v; want p50 2, p99 4, max 4, lag 2.5", st.latencyStats, st.MaxSendLagMS)
	}
	q, p := st.ByCommand["queue"], st.ByCommand["play"]
	if q.Sent != 4 || q.Busy != 1 || q.Answered != 3 || q.Expired != 1 || q.P50 != 2 || q.Max != 3 {
		t.Errorf("/queue %+v", q)
	}
	if p.Sent != 3 || p.Deferred != 1 || p.Unanswered != 2 || p.Late != 1 || p.Max != 4 {
		t.Errorf("/play %+v", p)
	}
	if np := st.ByCommand["nowplaying"]; np.Answered != 1 || np.Unanswered != 0 || np.Max != 0 {
		t.Errorf("/nowplaying %+v, want answered at 0 ms", np)
	}
	if st.Answered+st.Unanswered != st.Sent {
		t.Errorf("answered %d + unanswered %d != sent %d", st.Answered, st.Unanswered, st.Sent)
	}
}

func TestAckReportJSON(t *testing.T) {
	rep := ackReport{Scenario: "ack", Run: 1, Rate: 1000, DurationS: 20, Guilds: 100, Mix: map[string]int{"queue": 70},
		Ensemble: targetStats{answerCounts: answerCounts{Sent: 10, Answered: 9, Unanswered: 1, Busy: 2},
			latencyStats: latencyStats{P50: 2, P99: 9, P999: 12, Max: 30}, procStats: procStats{CPUSeconds: 5, PeakRSSBytes: 1 << 20},
			ByCommand: map[string]commandStats{"queue": {answerCounts: answerCounts{Sent: 10}}}},
		Baseline: targetStats{answerCounts: answerCounts{Sent: 10, Answered: 10},
			latencyStats: latencyStats{P50: 1, P99: 3, P999: 0, Max: 20}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"scenario": "ack", "rate": 1000.0, "guilds": 100.0, "p50_ms": 2.0, "p99_ms": 9.0, "p999_ms": 12.0, "max_ms": 30.0,
		"unanswered": 1.0, "busy": 2.0, "sent": 10.0, "cpu_seconds": 5.0, "peak_rss_bytes": float64(1 << 20),
		"baseline_p99_ms": 3.0, "baseline_unanswered": 0.0, "baseline_sent": 10.0,
		"ratio_p50": 2.0, "ratio_p99": 3.0, "ratio_max": 1.5, "ratio_p999": nil,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if bc, ok := m["by_command"].(map[string]any); !ok || bc["queue"].(map[string]any)["sent"] != 10.0 {
		t.Errorf("by_command missing: %s", b)
	}
}

func TestIdleReport(t *testing.T) {
	r := idleReport{Scenario: "idle", Guilds: 1000,
		Base:       nodeSample{HeapBytes: 10_000_000, Goroutines: 40, RSSBytes: 50_000_000},
		Active:     nodeSample{HeapBytes: 11_500_000, Goroutines: 1040, RSSBytes: 53_000_000},
		Passivated: nodeSample{HeapBytes: 10_000_500, Goroutines: 50, RSSBytes: 53_000_000},
	}
	r.compute()
	if r.HeapBytesPerGuild != 1500 || r.GoroutinesPerGuild != 1 || r.RSSBytesPerGuild != 3000 ||
		r.PassivatedHeapBytesPerGuild != 0.5 || r.PassivatedGoroutinesPerGuild != 0.01 {
		t.Fatalf("per guild %+v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"scenario":"idle"`, `"heap_bytes_per_guild":1500`, `"goroutines_per_guild":1`, `"passivated_heap_bytes_per_guild":0.5`, `"unanswered":0`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestAppendJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	for i := range 2 {
		if err := appendJSONLines(path, map[string]int{"run": i}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if string(b) != "{\"run\":0}\n{\"run\":1}\n" {
		t.Fatalf("file %q, want one object per line", b)
	}
}

func TestParseProc(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 98765 123456789 4321 18446744073709551615"
	if got, err := parseStatCPU([]byte(stat)); err != nil || got != 3.25 {
		t.Errorf("parseStatCPU = %v, %v; want 3.25 s", got, err)
	}
	for _, bad := range []string{"4242 node S 1", "4242 (node) S 1 2 3"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
	status := "Name:\tnode\nVmHWM:\t  81234 kB\nVmRSS:\t   65432 kB\nThreads:\t12\n"
	if got, err := parseStatusKB([]byte(status), "VmRSS"); err != nil || got != 65432*1024 {
		t.Errorf("VmRSS = %v, %v", got, err)
	}
	if got, err := parseStatusKB([]byte(status), "VmHWM"); err != nil || got != 81234*1024 {
		t.Errorf("VmHWM = %v, %v", got, err)
	}
	if _, err := parseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing key accepted")
	}
	procStat := "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 1 1 1 0 0\n"
	if got, err := parseMachineBusy([]byte(procStat)); err != nil || got != 1.61 {
		t.Errorf("parseMachineBusy = %v, %v; want 1.61 s (everything but idle and iowait)", got, err)
	}
	if _, err := parseMachineBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("/proc/stat without a cpu line accepted")
	}
	if busy, err := machineBusy(); err != nil || busy <= 0 {
		t.Errorf("machineBusy = %v, %v", busy, err)
	}
	// This process, for real.
	if cpu, err := procCPU(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("procCPU(self) = %v, %v", cpu, err)
	}
	if rss, peak, err := procMem(os.Getpid()); err != nil || rss <= 0 || peak < rss {
		t.Errorf("procMem(self) = %v, %v, %v", rss, peak, err)
	}
}

func TestParseLiveActors(t *testing.T) {
	metrics := `# HELP protoactor_actor_spawn_count_total Number of actors spawn
# TYPE protoactor_actor_spawn_count_total counter
protoactor_actor_spawn_count_total{actortype="guild",address="127.0.0.1:1"} 30
protoactor_actor_spawn_count_total{actortype="session",address="127.0.0.1:1"} 12
protoactor_actor_stopped_count_total{actortype="guild",address="127.0.0.1:1"} 20 1700000000000
go_goroutines 40
`
	if got, err := parseLiveActors(strings.NewReader(metrics)); err != nil || got != 22 {
		t.Errorf("live actors = %v, %v; want 22", got, err)
	}
	if got, err := parseLiveActors(strings.NewReader("go_goroutines 40\n")); err != nil || got != -1 {
		t.Errorf("without protoactor metrics = %v, %v; want -1", got, err)
	}
}

// TestNodeConfigIsValid decodes the generated cluster.yaml with the node's own strict
// decoder, so a renamed configuration key breaks this test rather than a benchmark run.
func TestNodeConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	w := emuctl.World{RESTURL: "http://127.0.0.1:1/api/v10", GatewayURL: "ws://127.0.0.1:1/gateway", Token: "x"}
	y := nodeConfig(dir, w, "127.0.0.1:2", nodeSettings{guildIdle: 15 * time.Second, sessionIdle: 20 * time.Second})
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"DISCORD_TOKEN": "tok", "LAVALINK_PASSWORD": "pw"}[k]
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if cfg.Limits.CommandCooldown != 0 || cfg.Limits.UserCommands != unreachedLimit || cfg.Limits.GuildCommands != unreachedLimit || cfg.Limits.GuildIdleTimeout != 15*time.Second || cfg.Limits.SessionIdleTimeout != 20*time.Second ||
		cfg.Discord.RESTURL != w.RESTURL || cfg.Discord.GatewayURL != w.GatewayURL || cfg.Discord.ShardCount != 1 ||
		cfg.Store.Bbolt.Path != filepath.Join(dir, "ensemble.db") || cfg.Lavalink.Nodes[0].Address != "127.0.0.1:2" || cfg.Node.AdminAddr != "127.0.0.1:0" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"ack", "--rate", "1000", "--duration", "20s", "--guilds", "100"}, true},
		{[]string{"ack", "--rate", "0"}, false},
		{[]string{"ack", "--rate", "50000"}, false},
		{[]string{"ack", "--duration", "2h"}, false},
		{[]string{"ack", "--guilds", "0"}, false},
		{[]string{"ack", "extra"}, false},
		{[]string{"ack", "--mix", "queue=1"}, true},
		{[]string{"ack", "--mix", "queue=1,skip=1"}, false},
		{[]string{"ack", "--mix", "queue=0"}, false},
		{[]string{"ack", "--mix", "queue=1", "--warmup-mix", "play=1"}, true},
		{[]string{"ack", "--warmup-mix", "play=x"}, false},
		{[]string{"ack", "--bare-cpu", "300us"}, true},
		{[]string{"ack", "--bare-cpu", "-1ms"}, false},
		{[]string{"ack", "--bare-cpu", "1s"}, false},
		{[]string{"ack", "--first", "node", "--calibrate"}, true},
		{[]string{"ack", "--first", "bare"}, true},
		{[]string{"ack", "--first", "driver"}, false},
		{[]string{"idle", "--guilds", "10000"}, true},
		// 10000 activations at 100/s outlast a 15 s idle timeout.
		{[]string{"idle", "--guilds", "10000", "--rate", "100"}, false},
		{[]string{"idle", "--idle-timeout", "0s"}, false},
		// 10 s of activations and 4 s of settling leave too little margin before 15 s.
		{[]string{"idle", "--guilds", "10000", "--settle", "4s"}, false},
	} {
		var err error
		if tc.args[0] == "ack" {
			_, err = parseAck(tc.args[1:], io.Discard)
		} else {
			_, err = parseIdle(tc.args[1:], io.Discard)
		}
		var ue usageError
		if tc.ok != (err == nil) || (err != nil && !errors.As(err, &ue)) {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
	for _, args := range [][]string{nil, {"nosuch"}, {"ack", "--nosuch"}} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != exitUsage {
			t.Errorf("run %v = %d, want %d", args, code, exitUsage)
		}
	}
}

func TestAckTargets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []ackTarget
	}{
		{nil, []ackTarget{{dir: "bare", baseline: true}, {dir: "ensemble", node: true}}},
		{[]string{"--first", "node"}, []ackTarget{{dir: "ensemble", node: true}, {dir: "bare", baseline: true}}},
		{[]string{"--calibrate"}, []ackTarget{{dir: "bare", baseline: true}, {dir: "bare-2"}}},
		{[]string{"--calibrate", "--first", "node"}, []ackTarget{{dir: "bare-2"}, {dir: "bare", baseline: true}}},
	} {
		o, err := parseAck(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := ackTargets(o); !slices.Equal(got, tc.want) {
			t.Errorf("%v: targets %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string // name:weight in report order, or "error"
	}{
		{defaultMix, "queue:70 nowplaying:20 play:10"},
		{"play=1, queue=3", "queue:3 play:1"},
		{"queue=5,nowplaying=0", "queue:5"},
		{"queue=1,queue=2", "error"},
		{"queue", "error"},
		{"queue=-1", "error"},
		{"queue=x", "error"},
		{"skip=1", "error"},
		{"", "error"},
	} {
		mix, err := parseMix(tc.text)
		got := "error"
		if err == nil {
			var parts []string
			for _, c := range mix {
				parts = append(parts, fmt.Sprintf("%s:%d", c.Name, c.Weight))
			}
			got = strings.Join(parts, " ")
		} else if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "--mix") {
			t.Errorf("%q: error %v does not name --mix", tc.text, err)
		}
		if got != tc.want {
			t.Errorf("parseMix(%q) = %s, want %s", tc.text, got, tc.want)
		}
	}
	// The warm-up runs its own mix when asked, the measured one otherwise.
	o, err := parseAck([]string{"--mix", "queue=1", "--warmup-mix", "play=1"}, io.Discard)
	if err != nil || len(o.mix) != 1 || o.mix[0].Name != "queue" || len(o.warmupMix) != 1 || o.warmupMix[0].Name != "play" {
		t.Fatalf("--warmup-mix: mix %+v, warm-up %+v, %v", o.mix, o.warmupMix, err)
	}
	if o, err := parseAck([]string{"--mix", "queue=1"}, io.Discard); err != nil || len(o.warmupMix) != 1 || o.warmupMix[0].Name != "queue" {
		t.Fatalf("no --warmup-mix: warm-up %+v, %v", o.warmupMix, err)
	}
	// --node-env takes the Go runtime's settings only: the node's secrets and addresses
	// come from the run, never from the command line.
	if o, err := parseAck([]string{"--node-env", "GOGC=800", "--node-env", "GOMEMLIMIT=460MiB"}, io.Discard); err != nil ||
		!slices.Equal(o.nodeEnv, []string{"GOGC=800", "GOMEMLIMIT=460MiB"}) {
		t.Fatalf("--node-env: %q, %v", o.nodeEnv, err)
	}
	for _, bad := range []string{"DISCORD_TOKEN=x", "GOGC", "GOGC=", "PATH=/tmp"} {
		if _, err := parseAck([]string{"--node-env", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "node-env") {
			t.Errorf("--node-env %q: error %v, want one naming --node-env", bad, err)
		}
	}
	// /play carries its search queries wherever it is in the mix.
	mix, _ := parseMix("play=1")
	if len(mix) != 1 || len(mix[0].Options) != 1 || len(mix[0].Options[0].Values) == 0 {
		t.Fatalf("play without its queries: %+v", mix)
	}
}

func TestProfilePath(t *testing.T) {
	for _, tc := range []struct {
		base string
		run  int
		want string
	}{
		{"cpu.pprof", 1, "cpu.pprof"},
		{"cpu.pprof", 2, "cpu-2.pprof"},
		{"/tmp/prof", 3, "/tmp/prof-3"},
	} {
		if got := profilePath(tc.base, tc.run); got != tc.want {
			t.Errorf("profilePath(%q, %d) = %q, want %q", tc.base, tc.run, got, tc.want)
		}
	}
}
