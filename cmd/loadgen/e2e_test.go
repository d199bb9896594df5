package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScenariosEndToEnd runs both scenarios for real, small: the built node, emulator
// and bare bot as separate processes, a short ack load and an idle run over a few
// guilds, and checks that the JSON adds up. It builds three binaries and waits for idle
// timeouts: about 40 s, so not in -short.
func TestScenariosEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the node, the emulator and the bare bot (about 40 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	if _, err := build(ctx, bin, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.json")
	logs := t.TempDir()
	var stdout, stderr bytes.Buffer
	runLoadgen := func(args ...string) {
		t.Helper()
		args = append(args, "--bin-dir", bin, "--out", out, "--log-dir", logs)
		if code := run(ctx, args, &stdout, &stderr); code != exitOK {
			t.Fatalf("loadgen %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, &stdout, &stderr)
		}
	}
	runLoadgen("ack", "--rate", "50", "--duration", "2s", "--guilds", "5", "--warmup", "1s")
	runLoadgen("idle", "--guilds", "20", "--rate", "100", "--idle-timeout", "3s", "--grace", "2s", "--warm-guilds", "5", "--settle", "500ms")
	// An A/A run, the second bare bot first: no node runs in it.
	runLoadgen("ack", "--rate", "50", "--duration", "2s", "--guilds", "5", "--warmup", "1s", "--calibrate", "--first", "node")
	t.Logf("loadgen printed:\n%s", &stdout)

	objs := readJSONLines(t, out)
	if len(objs) != 3 || objs[0]["scenario"] != "ack" || objs[1]["scenario"] != "idle" || objs[2]["scenario"] != "ack" {
		t.Fatalf("--out holds %d objects: %v; want ack, idle, ack", len(objs), objs)
	}
	ack, idle, aa := objs[0], objs[1], objs[2]
	// The node defers every /play at once; the bare bot never defers, so a
	// calibration run that measured the node would show deferrals.
	if ack["deferred"] == 0.0 || ack["calibrate"] != nil || ack["node_first"] != nil {
		t.Errorf("ack: deferred %v, calibrate %v, node_first %v; want the node's deferrals and neither flag", ack["deferred"], ack["calibrate"], ack["node_first"])
	}
	if aa["calibrate"] != true || aa["node_first"] != true || aa["sent"] != 100.0 || aa["answered"] != 100.0 ||
		aa["deferred"] != 0.0 || aa["baseline_deferred"] != 0.0 {
		t.Errorf("calibration run: calibrate %v node_first %v sent %v answered %v deferred %v/%v; want the bare bot twice, all answered at once",
			aa["calibrate"], aa["node_first"], aa["sent"], aa["answered"], aa["deferred"], aa["baseline_deferred"])
	}
	if _, err := os.Stat(filepath.Join(logs, "ack-1", "bare-2", "records.json")); err != nil {
		t.Errorf("the calibration run's second bare bot left no records: %v", err)
	}
	for _, prefix := range []string{"", "baseline_"} {
		num := func(k string) float64 {
			t.Helper()
			v, ok := ack[prefix+k].(float64)
			if !ok {
				t.Fatalf("ack %s%s = %v, want a number", prefix, k, ack[prefix+k])
			}
			return v
		}
		// 50/s for 2 s is 100 interactions, all answered at so low a rate.
		if sent, answered, unanswered := num("sent"), num("answered"), num("unanswered"); sent != 100 || answered != sent || unanswered != 0 {
			t.Errorf("%ssent %v answered %v unanswered %v; want 100 answered", prefix, sent, answered, unanswered)
		}
		p50, p99, p999, mx := num("p50_ms"), num("p99_ms"), num("p999_ms"), num("max_ms")
		if !(0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= mx && mx < 3000) {
			t.Errorf("%spercentiles %v %v %v %v; want 0 < p50 ≤ p99 ≤ p99.9 ≤ max < 3 s", prefix, p50, p99, p999, mx)
		}
		if num("cpu_seconds") <= 0 || num("peak_rss_bytes") <= 0 || num("busy") < 0 || num("deferred") < 0 {
			t.Errorf("%sprocess figures: cpu %v rss %v", prefix, num("cpu_seconds"), num("peak_rss_bytes"))
		}
	}
	if r, ok := ack["ratio_p99"].(float64); !ok || r != *ratio(ack["p99_ms"].(float64), ack["baseline_p99_ms"].(float64)) {
		t.Errorf("ratio_p99 %v for p99 %v / %v", ack["ratio_p99"], ack["p99_ms"], ack["baseline_p99_ms"])
	}
	bySent := 0.0
	for _, c := range []string{"queue", "nowplaying", "play"} {
		if s, ok := ack["by_command"].(map[string]any)[c].(map[string]any); ok {
			bySent += s["sent"].(float64)
		}
	}
	if bySent != 100 {
		t.Errorf("by_command sums to %v sent, want 100: %v", bySent, ack["by_command"])
	}

	if idle["guilds"] != 20.0 || idle["answered"] != 20.0 || idle["unanswered"] != 0.0 {
		t.Errorf("idle: guilds %v answered %v unanswered %v; want 20 answered", idle["guilds"], idle["answered"], idle["unanswered"])
	}
	for _, k := range []string{"heap_bytes_per_guild", "goroutines_per_guild", "rss_bytes_per_guild", "passivated_heap_bytes_per_guild", "passivated_goroutines_per_guild"} {
		if _, ok := idle[k].(float64); !ok {
			t.Errorf("idle %s = %v, want a number", k, idle[k])
		}
	}
	actors := func(phase string) float64 { return idle[phase].(map[string]any)["actors"].(float64) }
	if base, active, passivated := actors("base"), actors("active"), actors("passivated"); active < base+20 || passivated >= active {
		t.Errorf("live actors base %v, active %v, passivated %v; want one more per guild while active, fewer after passivation",
			base, active, passivated)
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
