package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// discordDeadline is the time Discord gives a bot to acknowledge an interaction.
const discordDeadline = 3 * time.Second

// latencyStats are the acknowledgement latencies of answered interactions, in ms.
//
// Percentiles are over the interactions answered within Discord's 3 s: an unanswered one
// has no latency to rank (it is counted in Unanswered instead), and counting it as 3 s or
// as infinity would make the percentile a statement about the count.
type latencyStats struct {
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

// percentile is the nearest-rank percentile (p in [0, 1]) of sorted values: the smallest
// value with at least p of the values at or below it. Zero for no values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func latencies(ms []float64) latencyStats {
	s := slices.Clone(ms)
	slices.Sort(s)
	return latencyStats{P50: percentile(s, 0.50), P99: percentile(s, 0.99), P999: percentile(s, 0.999), Max: percentile(s, 1)}
}

// answerCounts classify interactions by their first callback.
type answerCounts struct {
	Sent int `json:"sent"`
	// Answered: a first callback within the deadline (immediate message or deferral;
	// busy answers included).
	Answered int `json:"answered"`
	// Deferred: the first callback was a deferral (type 5).
	Deferred int `json:"deferred"`
	// Busy: an ephemeral message whose content is the bot's busy answer (commands.IsBusy).
	Busy int `json:"busy"`
	// Unanswered: no callback within the deadline, never delivered to the bot, or
	// Expired.
	Unanswered int `json:"unanswered"`
	// Expired: a callback the emulator took (its clock starts when the interaction is
	// written to the bot's socket) but that came more than 3 s after the interaction was
	// created, which is when Discord's clock starts: the user saw "did not respond".
	// The two clocks differ only while the bot leaves its socket unread.
	Expired int `json:"expired"`
	// Late: unanswered, but a callback came after the deadline (Discord refuses it).
	Late int `json:"late"`
	// SendErrors: interactions the emulator could not dispatch (no gateway session);
	// counted in Sent and Unanswered too.
	SendErrors int `json:"send_errors"`
}

// commandStats are one command's share of a target's figures.
type commandStats struct {
	answerCounts
	latencyStats
}

// targetStats are one target's figures for a measured load.
type targetStats struct {
	answerCounts
	latencyStats
	ByCommand map[string]commandStats `json:"by_command"`
	// MaxSendLagMS is how far behind its schedule the emulator's sender fell: a large
	// value means the load machine, not only the bot, was short of CPU.
	MaxSendLagMS float64 `json:"max_send_lag_ms"`
	// WriteDelay*: how long interactions waited in the emulator before being written to
	// the bot's socket (the latency clock starts at the write, as the issue defines it; a
	// bot that does not read its socket makes them wait, and a user would count that
	// wait). NeverWritten: interactions still waiting when the run ended.
	WriteDelayP99MS float64 `json:"write_delay_p99_ms"`
	// Wait*: what users waited, from the interaction's creation to the first callback
	// (write delay + ack latency), over the answered interactions.
	WaitP50MS       float64 `json:"wait_p50_ms"`
	WaitP99MS       float64 `json:"wait_p99_ms"`
	WaitMaxMS       float64 `json:"wait_max_ms"`
	WriteDelayMaxMS float64 `json:"write_delay_max_ms"`
	NeverWritten    int     `json:"never_written"`
	// Disconnects: the emulator dropped the bot's gateway connection for not reading
	// (too many payloads waiting), as a gateway drops a stuck client.
	Disconnects int `json:"disconnects"`
	procStats
	// EmulatorCPUShare is the emulator process's CPU over the same window (1 = one
	// core): on a small machine it competes with the target for the cores.
	EmulatorCPUShare float64 `json:"emulator_cpu_share"`
	// MachineCPUShare is the whole machine's busy CPU over the window, in cores (steal
	// included): what it leaves after the target and the emulator went to this driver and
	// to anything else running.
	MachineCPUShare float64 `json:"machine_cpu_share"`
}

// procStats are a process's resource use over a measured window.
type procStats struct {
	// CPUSeconds is user+system CPU time over the window; CPUShare the same divided by
	// the window's wall time (1 = one core busy).
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUShare   float64 `json:"cpu_share"`
	// PeakRSSBytes is the process's peak resident set (VmHWM) at the end of the window.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// summarize turns a load result into figures. A callback is "busy" when it is an
// ephemeral message that commands.IsBusy recognises.
func summarize(res discordemu.LoadResult) targetStats {
	all := commandStats{}
	var allMS, writeMS, waitMS []float64
	never := 0
	per := map[string]*commandStats{}
	perMS := map[string][]float64{}
	add := func(c *commandStats, r discordemu.LoadRecord) {
		c.Sent++
		switch {
		case r.LatencyUS < 0:
			c.Unanswered++
			if r.Late {
				c.Late++
			}
			return
		case r.WriteDelayUS+r.LatencyUS > discordDeadline.Microseconds():
			c.Unanswered++
			c.Expired++
			return
		case r.Type == discordemu.ResponseDeferredMessage:
			c.Deferred++
		case r.Type == discordemu.ResponseMessage && r.Flags&discordemu.FlagEphemeral != 0 && commands.IsBusy(r.Content):
			c.Busy++
		}
		c.Answered++
	}
	for _, r := range res.Records {
		if r.Type != 0 && r.LatencyUS < 0 {
			// A response came, so the interaction was answered: an emulator that read
			// its send clock after the write could time a fast answer before its send.
			r.LatencyUS = 0
		}
		c := per[r.Command]
		if c == nil {
			c = &commandStats{}
			per[r.Command] = c
		}
		add(c, r)
		add(&all, r)
		if r.WriteDelayUS < 0 {
			never++
		} else {
			writeMS = append(writeMS, float64(r.WriteDelayUS)/1000)
		}
		if r.LatencyUS >= 0 && r.WriteDelayUS+r.LatencyUS <= discordDeadline.Microseconds() {
			ms := float64(r.LatencyUS) / 1000
			allMS = append(allMS, ms)
			perMS[r.Command] = append(perMS[r.Command], ms)
			waitMS = append(waitMS, float64(r.WriteDelayUS+r.LatencyUS)/1000)
		}
	}
	wd, wait := latencies(writeMS), latencies(waitMS)
	st := targetStats{answerCounts: all.answerCounts, latencyStats: latencies(allMS), ByCommand: map[string]commandStats{},
		MaxSendLagMS: durMS(res.MaxSendLag), WriteDelayP99MS: wd.P99, WriteDelayMaxMS: wd.Max, NeverWritten: never,
		Disconnects: res.Disconnects, WaitP50MS: wait.P50, WaitP99MS: wait.P99, WaitMaxMS: wait.Max}
	st.Sent += res.SendErrors
	st.Unanswered += res.SendErrors
	st.SendErrors = res.SendErrors
	for name, c := range per {
		c.latencyStats = latencies(perMS[name])
		st.ByCommand[name] = *c
	}
	return st
}

func durMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ackReport is one ack scenario run: Ensemble's figures at the top level, the bare bot's
// under baseline_*, and Ensemble/bare for each percentile under ratio_* (null when the
// bare bot's figure is 0).
type ackReport struct {
	Scenario   string         `json:"scenario"`
	Run        int            `json:"run"`
	Date       string         `json:"date"`
	Rate       float64        `json:"rate"`
	DurationS  float64        `json:"duration_s"`
	WarmupS    float64        `json:"warmup_s"`
	Guilds     int            `json:"guilds"`
	Mix        map[string]int `json:"mix"`
	WarmupMix  map[string]int `json:"warmup_mix"`
	Ensemble   targetStats    `json:"-"`
	Baseline   targetStats    `json:"-"`
	BareInline bool           `json:"bare_inline"`
	// BareCPUMs is --bare-cpu: the CPU the bare bot spent on each interaction before answering.
	BareCPUMs float64 `json:"bare_cpu_ms,omitempty"`
	// NodeEnv is --node-env: the Go runtime settings the node ran with beside the defaults.
	NodeEnv []string `json:"node_env,omitempty"`
	// NodeFirst is --first node: the node was measured before the bare bot.
	NodeFirst bool `json:"node_first,omitempty"`
	// Calibrate is --calibrate: the figures at the top level are a second
	// measurement of the bare bot, not the node's.
	Calibrate bool `json:"calibrate,omitempty"`
	// CPUProfile is the file the node's CPU profile was written to, if one was taken.
	CPUProfile string `json:"cpu_profile,omitempty"`
}

func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	r := math.Round(a/b*100) / 100
	return &r
}

// MarshalJSON flattens the two targets into one object, as documented on ackReport.
func (a ackReport) MarshalJSON() ([]byte, error) {
	type plain ackReport
	m := map[string]any{}
	if err := mergeJSON(m, "", plain(a)); err != nil {
		return nil, err
	}
	if err := mergeJSON(m, "", a.Ensemble); err != nil {
		return nil, err
	}
	if err := mergeJSON(m, "baseline_", a.Baseline); err != nil {
		return nil, err
	}
	m["ratio_p50"] = ratio(a.Ensemble.P50, a.Baseline.P50)
	m["ratio_p99"] = ratio(a.Ensemble.P99, a.Baseline.P99)
	m["ratio_p999"] = ratio(a.Ensemble.P999, a.Baseline.P999)
	m["ratio_max"] = ratio(a.Ensemble.Max, a.Baseline.Max)
	return json.Marshal(m)
}

// mergeJSON adds v's JSON object keys to m, prefixed.
func mergeJSON(m map[string]any, prefix string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for k, v := range obj {
		m[prefix+k] = v
	}
	return nil
}

// idleReport is one idle scenario run. "Base" is the node after warm-up guilds were
// activated and passivated again, "active" right after the N guilds answered, and
// "passivated" after the idle timeouts passed; heap figures are read after a forced GC.
// Per-guild figures are (active − base) / N and (passivated − base) / N.
type idleReport struct {
	Scenario     string  `json:"scenario"`
	Date         string  `json:"date"`
	Guilds       int     `json:"guilds"`
	Rate         float64 `json:"rate"`
	IdleTimeoutS float64 `json:"idle_timeout_s"`
	answerCounts

	HeapBytesPerGuild  float64 `json:"heap_bytes_per_guild"`
	GoroutinesPerGuild float64 `json:"goroutines_per_guild"`
	RSSBytesPerGuild   float64 `json:"rss_bytes_per_guild"`

	PassivatedHeapBytesPerGuild  float64 `json:"passivated_heap_bytes_per_guild"`
	PassivatedGoroutinesPerGuild float64 `json:"passivated_goroutines_per_guild"`
	PassivatedRSSBytesPerGuild   float64 `json:"passivated_rss_bytes_per_guild"`

	Base       nodeSample `json:"base"`
	Active     nodeSample `json:"active"`
	Passivated nodeSample `json:"passivated"`
}

// nodeSample is the node's memory at one moment.
type nodeSample struct {
	HeapBytes  uint64 `json:"heap_bytes"`
	Goroutines int    `json:"goroutines"`
	RSSBytes   int64  `json:"rss_bytes"`
	// Actors is the number of live actors by protoactor's spawn and stop counters, -1 if
	// the node does not export them.
	Actors int64 `json:"actors"`
}

// perGuild is not rounded: a hundred goroutines over 10000 guilds is 0.01 per guild,
// not 0.
func perGuild(after, before float64, n int) float64 {
	return (after - before) / float64(n)
}

func (r *idleReport) compute() {
	n := r.Guilds
	r.HeapBytesPerGuild = perGuild(float64(r.Active.HeapBytes), float64(r.Base.HeapBytes), n)
	r.GoroutinesPerGuild = perGuild(float64(r.Active.Goroutines), float64(r.Base.Goroutines), n)
	r.RSSBytesPerGuild = perGuild(float64(r.Active.RSSBytes), float64(r.Base.RSSBytes), n)
	r.PassivatedHeapBytesPerGuild = perGuild(float64(r.Passivated.HeapBytes), float64(r.Base.HeapBytes), n)
	r.PassivatedGoroutinesPerGuild = perGuild(float64(r.Passivated.Goroutines), float64(r.Base.Goroutines), n)
	r.PassivatedRSSBytesPerGuild = perGuild(float64(r.Passivated.RSSBytes), float64(r.Base.RSSBytes), n)
}

// appendJSONLines appends one JSON object per line to path (JSON Lines), so that runs
// accumulate in one file.
func appendJSONLines(path string, objs ...any) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			f.Close()
			return fmt.Errorf("--out %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--out %s: %w", path, err)
	}
	return nil
}

func printAck(w io.Writer, a ackReport) {
	var mix []string
	total := 0
	for _, w := range a.Mix {
		total += w
	}
	for _, c := range ackCommands {
		if w := a.Mix[c.Name]; w > 0 {
			mix = append(mix, fmt.Sprintf("/%s %.0f%%", c.Name, 100*float64(w)/float64(total)))
		}
	}
	env := ""
	if len(a.NodeEnv) > 0 {
		env = ", node with " + strings.Join(a.NodeEnv, " ")
	}
	fmt.Fprintf(w, "ack run %d: %g/s for %gs over %d guilds (%s), warm-up %gs excluded%s\n",
		a.Run, a.Rate, a.DurationS, a.Guilds, strings.Join(mix, ", "), a.WarmupS, env)
	fmt.Fprintf(w, "  %-9s %7s %9s %9s %9s %9s %8s %6s %10s %5s %8s %6s %9s %9s %12s\n",
		"target", "sent", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "deferred", "busy", "unanswered", "late", "cpu s", "cores", "peak RSS", "emu cores", "other cores")
	// "other cores": the machine's busy CPU not used by the target or the emulator (this
	// driver, and whatever else runs on the machine): a large figure means the run was
	// disturbed.
	row := func(name string, s targetStats) {
		fmt.Fprintf(w, "  %-9s %7d %9.2f %9.2f %9.2f %9.2f %8d %6d %10d %5d %8.2f %6.2f %6.0f MB %9.2f %12.2f\n",
			name, s.Sent, s.P50, s.P99, s.P999, s.Max, s.Deferred, s.Busy, s.Unanswered, s.Late,
			s.CPUSeconds, s.CPUShare, float64(s.PeakRSSBytes)/1e6, s.EmulatorCPUShare, max(s.MachineCPUShare-s.CPUShare-s.EmulatorCPUShare, 0))
	}
	first := "ensemble"
	if a.Calibrate {
		first = "bare-2"
	}
	row(first, a.Ensemble)
	row("bare", a.Baseline)
	f := func(r *float64) string {
		if r == nil {
			return "-"
		}
		return fmt.Sprintf("%.2fx", *r)
	}
	fmt.Fprintf(w, "  %-9s %7s %9s %9s %9s %9s\n", "ratio", "",
		f(ratio(a.Ensemble.P50, a.Baseline.P50)), f(ratio(a.Ensemble.P99, a.Baseline.P99)),
		f(ratio(a.Ensemble.P999, a.Baseline.P999)), f(ratio(a.Ensemble.Max, a.Baseline.Max)))
	for _, c := range ackCommands {
		s, ok := a.Ensemble.ByCommand[c.Name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "  %-8s /%-11s %6d sent, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d deferred, %d busy, %d unanswered\n",
			first, c.Name, s.Sent, s.P50, s.P99, s.Max, s.Deferred, s.Busy, s.Unanswered)
	}
	for _, t := range []struct {
		name string
		s    targetStats
	}{{first, a.Ensemble}, {"bare", a.Baseline}} {
		if t.s.MaxSendLagMS > 10 {
			fmt.Fprintf(w, "  note (%s): the emulator's sender fell up to %.0f ms behind schedule (the machine was short of CPU)\n", t.name, t.s.MaxSendLagMS)
		}
		if t.s.WriteDelayP99MS > 10 || t.s.NeverWritten > 0 || t.s.Disconnects > 0 {
			fmt.Fprintf(w, "  note (%s): interactions waited up to %.0f ms (p99 %.0f ms) before the bot's socket took them, %d never did; "+
				"%d gateway disconnects for not reading; %d answers expired (over 3 s from creation); users waited p50 %.1f, p99 %.1f ms\n",
				t.name, t.s.WriteDelayMaxMS, t.s.WriteDelayP99MS, t.s.NeverWritten, t.s.Disconnects, t.s.Expired, t.s.WaitP50MS, t.s.WaitP99MS)
		}
	}
}

func printIdle(w io.Writer, r idleReport) {
	fmt.Fprintf(w, "idle: %d guilds activated by one /queue each at %g/s (%d answered, %d busy, %d deferred, %d unanswered)\n",
		r.Guilds, r.Rate, r.Answered, r.Busy, r.Deferred, r.Unanswered)
	fmt.Fprintf(w, "  %-11s %14s %11s %10s %8s\n", "", "heap", "goroutines", "RSS", "actors")
	row := func(name string, s nodeSample) {
		fmt.Fprintf(w, "  %-11s %11.1f MB %11d %7.1f MB %8d\n", name, float64(s.HeapBytes)/1e6, s.Goroutines, float64(s.RSSBytes)/1e6, s.Actors)
	}
	row("base", r.Base)
	row("active", r.Active)
	row("passivated", r.Passivated)
	fmt.Fprintf(w, "  per idle guild:  %.0f B heap, %.4f goroutines, %.0f B RSS\n", r.HeapBytesPerGuild, r.GoroutinesPerGuild, r.RSSBytesPerGuild)
	fmt.Fprintf(w, "  per guild after passivation (idle timeout %gs): %.0f B heap, %.4f goroutines, %.0f B RSS\n",
		r.IdleTimeoutS, r.PassivatedHeapBytesPerGuild, r.PassivatedGoroutinesPerGuild, r.PassivatedRSSBytesPerGuild)
}
