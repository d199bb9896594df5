//go:build !race

package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

func fakeSecret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestSecretsNeverLeak runs a session and the failures a node meets
// (Discord 429s, 5xx, a gateway resume and a new identify, Lavalink's
// websocket dropped, Redis frozen) with known secrets: the bot token, the
// Lavalink and Redis passwords, the admin token, and the interaction and voice tokens Discord
// hands out. None appears in the node's logs (text and JSON, DEBUG and up),
// in what it sends users, in its admin endpoints, or in any formatting of
// its configuration (what a panic or a careless log line would print).
func TestSecretsNeverLeak(t *testing.T) {
	lavaPassword, redisPassword, adminToken := fakeSecret("lava-"), fakeSecret("redis-"), fakeSecret("admin-")
	rds := testserver.StartRedisWithPassword(t, redisPassword)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: rds, lavaPassword: lavaPassword, jsonLogs: true, tracer: tp,
		userCommands: 1000, guildCommands: 1000, adminToken: adminToken})
	dc, lava := w.discord, w.lava

	var interactionTokens, voiceTokens []string
	run := func(user discordemu.Snowflake, name string, opts ...discordemu.Option) reply {
		t.Helper()
		ix := mustInvoke(t, dc, w.guild, user, w.text, name, opts...)
		interactionTokens = append(interactionTokens, ix.Token)
		return w.await(ix)
	}

	w.join(w.listener, w.voice)
	ac, err := dc.Autocomplete(w.guild, w.listener, w.text, "play", discordemu.FocusedOption("query", "lofi"))
	if err != nil {
		t.Fatal(err)
	}
	interactionTokens = append(interactionTokens, ac.Token)
	if _, err := ac.Wait(w.ctx); err != nil {
		t.Fatal(err)
	}
	dc.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: "/channels/{c}/messages", RetryAfter: time.Second})
	dc.FailNext(discordemu.ServerError{Method: "PATCH", Path: "/channels/{c}/messages/{m}", Status: http.StatusBadGateway})
	wantContains(t, run(w.listener, "play", discordemu.StringOption("query", "lofi beats")), "lofi beats")
	p := w.player(playing("lofi beats"))
	voiceTokens = append(voiceTokens, p.Voice.Token)
	run(w.listener, "play", discordemu.StringOption("query", "second song"))
	run(w.listener, "queue")

	// The gateway resumes (the token travels again), then identifies anew.
	if err := dc.Reconnect(0); err != nil {
		t.Fatal(err)
	}
	run(w.listener, "nowplaying")
	identifies := len(dc.Recorder().PayloadsWithOp(2))
	if err := dc.InvalidateSession(0, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new IDENTIFY", func() bool { return len(dc.Recorder().PayloadsWithOp(2)) > identifies })
	if _, err := dc.WaitSession(w.ctx, func(s discordemu.SessionInfo) bool { return s.Ready }); err != nil {
		t.Fatal(err)
	}
	run(w.listener, "pause")
	// Lavalink's websocket drops; the node reconnects with its password.
	if lava.DropWebsockets() == 0 {
		t.Fatal("no Lavalink websocket to drop")
	}
	run(w.listener, "resume")
	// Redis freezes for a moment: store calls fail and are logged.
	if err := rds.Pause(); err != nil {
		t.Fatal(err)
	}
	run(w.listener, "volume", discordemu.IntOption("level", 40))
	if err := rds.Resume(); err != nil {
		t.Fatal(err)
	}
	// A button on the now-playing message.
	var np discordemu.Message
	for _, m := range dc.Messages(w.text) {
		if m.InteractionID == 0 {
			np = m
		}
	}
	if np.ID == 0 {
		t.Fatal("no now-playing message")
	}
	press, err := dc.PressButton(w.guild, w.listener, np.ID, commands.CustomID(commands.ButtonSkip, w.guild.String()))
	if err != nil {
		t.Fatal(err)
	}
	interactionTokens = append(interactionTokens, press.Token)
	w.await(press)

	admin := map[string]string{}
	for _, path := range []string{"/metrics", "/readyz", "/healthz", "/debug/memstats", "/status", "/status.json"} {
		resp, err := http.Get("http://" + w.node.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		admin[path] = string(b)
	}
	cfg := w.cfg
	w.stop() // no more log lines

	secrets := map[string]string{
		"the bot token":         dc.Token(),
		"the Lavalink password": lavaPassword,
		"the Redis password":    redisPassword,
		"the admin token":       adminToken,
		"the bot token's HMAC":  dc.Token()[strings.LastIndex(dc.Token(), ".")+1:],
	}
	for i, tok := range interactionTokens {
		secrets[fmt.Sprintf("interaction token %d", i)] = tok
	}
	for i, tok := range voiceTokens {
		if tok == "" {
			t.Fatalf("voice token %d not seen by Lavalink", i)
		}
		secrets[fmt.Sprintf("voice token %d", i)] = tok
	}

	var configDumps strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&configDumps, verb+"\n", cfg)
	}
	js, _ := json.Marshal(cfg)
	configDumps.Write(js)
	slog.New(slog.NewTextHandler(&configDumps, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewJSONHandler(&configDumps, nil)).Info("config", "cfg", cfg)

	// What the node sent Discord users: every REST body (replies, edits,
	// messages), never the URL, which carries the interaction token by
	// design, nor IDENTIFY and RESUME, which carry the bot token.
	var sent strings.Builder
	for _, r := range dc.Recorder().Requests() {
		sent.Write(r.Body)
		sent.WriteString("\n")
	}
	// Every span: names, attributes, events (recorded errors), status.
	var traces strings.Builder
	for _, sp := range spans.GetSpans() {
		fmt.Fprintf(&traces, "%s %v %v %s\n", sp.Name, sp.Attributes, sp.Events, sp.Status.Description)
	}
	places := map[string]string{
		"traces":               traces.String(),
		"text logs":            w.logs.String(),
		"JSON logs":            w.jsonLogs.String(),
		"what users were sent": sent.String(),
		"config formatting":    configDumps.String(),
	}
	for path, body := range admin {
		places[path] = body
	}
	// The handlers take DEBUG and up (libraries are held at INFO by the
	// node, since disgo logs tokens at DEBUG); the failures above must
	// have been logged.
	if !strings.Contains(places["text logs"], "level=WARN") || !strings.Contains(places["JSON logs"], `"level":"WARN"`) {
		t.Fatalf("the logs lack the WARN lines of the failures:\n%s", places["text logs"])
	}
	if len(sent.String()) == 0 || !strings.Contains(places["/metrics"], "ensemble_discord_rest_rate_limited_total") ||
		!strings.Contains(places["traces"], "interaction play") {
		t.Fatal("nothing sent, scraped or traced")
	}
	for place, text := range places {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s found in %s: …%s…", what, place, strings.ReplaceAll(text[max(0, i-200):i], "\n", " | "))
			}
		}
	}
	// The mask shows where a secret would have been.
	if !strings.Contains(places["config formatting"], "[REDACTED]") {
		t.Fatal("config formatting shows no mask")
	}
}
