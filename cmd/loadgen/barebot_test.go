//go:build !race

package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordrest"
)

// TestBareBotProcess is the bare disgo bot the ack scenario measures Ensemble against,
// run as a helper process: loadgen starts this package's test binary with
// LOADGEN_BAREBOT=1 and -test.run=^TestBareBotProcess$. Otherwise it skips.
//
// It lives in a test file because the import rules (ARCHITECTURE.md) let only the bot's own Discord packages
// import disgo's gateway and REST client (cluster/imports_test.go checks it, test files
// excepted so that emulator tests can drive the real clients); a baseline that is a disgo
// bot without the bot's architecture is exactly such a driver.
//
// What it shares with the node, so that the difference is Ensemble's own: disgo's
// gateway (no transport compression, the node's intents) and its REST client (an
// http.Client with MaxIdleConnsPerHost 64 and a 20 s timeout, disgo's default rate
// limiter), the same registered commands. What it leaves out: actors, the store,
// Lavalink, and disgo's raw events (the node asks for them to read channel_id).
//
// It answers every interaction with an ephemeral "ok" message from its gateway event
// handler: in a goroutine per interaction by default, or on the gateway's reader
// goroutine itself with LOADGEN_BARE_INLINE=true (one REST round trip at a time: the
// classic handler that blocks the gateway). With LOADGEN_BARE_CPU (loadgen's --bare-cpu)
// it first spends that much CPU on each interaction.
func TestBareBotProcess(t *testing.T) {
	if os.Getenv("LOADGEN_BAREBOT") != "1" {
		t.Skip("helper process: cmd/loadgen runs it as the bare disgo bot")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	inline, _ := strconv.ParseBool(os.Getenv("LOADGEN_BARE_INLINE"))
	work, err := time.ParseDuration(os.Getenv("LOADGEN_BARE_CPU"))
	if err != nil {
		t.Fatalf("LOADGEN_BARE_CPU: %v", err)
	}
	if err := runBareBot(ctx, os.Getenv("DISCORD_TOKEN"), os.Getenv("LOADGEN_REST_URL"), os.Getenv("LOADGEN_GATEWAY_URL"), inline, newCPUWork(work)); err != nil {
		t.Fatal(err)
	}
}

func runBareBot(ctx context.Context, token, restURL, gatewayURL string, inline bool, work cpuWork) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// disgo's REST client logs URLs that carry interaction tokens; its errors come back
	// as return values anyway.
	// The node's REST client, limiter and retries included.
	client, _, err := discordrest.New(token, log, prometheus.NewRegistry(),
		rest.WithURL(restURL),
		rest.WithHTTPClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}),
		rest.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return err
	}
	var failed atomic.Int64
	answer := func(ix discord.Interaction) {
		work.do()
		err := client.CreateInteractionResponse(ix.ID(), ix.Token(), discord.InteractionResponse{
			Type: discord.InteractionResponseTypeCreateMessage,
			Data: discord.MessageCreate{Content: "ok", Flags: discord.MessageFlagEphemeral},
		})
		if err != nil && failed.Add(1) <= 5 {
			log.Warn("answer failed", "err", err)
		}
	}
	var registered atomic.Bool
	gw := gateway.New(token, func(_ gateway.Gateway, _ gateway.EventType, _ int, ev gateway.EventData) {
		switch ev := ev.(type) {
		case gateway.EventReady:
			if registered.CompareAndSwap(false, true) {
				go func() {
					rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if err := commands.NewDiscord(client).RegisterCommands(rctx, ev.Application.ID.String(), ""); err != nil {
						log.Error("register commands", "err", err)
					}
				}()
			}
		case gateway.EventInteractionCreate:
			if inline {
				answer(ev.Interaction)
			} else {
				go answer(ev.Interaction)
			}
		}
	},
		gateway.WithURL(gatewayURL),
		gateway.WithCompression(gateway.CompressionNone),
		gateway.WithIntents(gateway.IntentGuilds|gateway.IntentGuildVoiceStates),
		gateway.WithLogger(log),
	)
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = gw.Open(octx)
	cancel()
	if err != nil {
		return err
	}
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gw.Close(cctx)
	if n := failed.Load(); n > 0 {
		log.Warn("answers failed", "count", n)
	}
	return nil
}

// cpuWork is a loop of a known CPU cost: the bare bot's stand-in for the work a real bot
// does per interaction, so that a run can ask how much of Ensemble's tail its CPU cost
// alone explains (loadgen ack --bare-cpu).
type cpuWork struct{ iterations int }

// workSink keeps the compiler from dropping the loop.
var workSink atomic.Uint64

// newCPUWork calibrates a loop that takes d: the fastest of several timed trials, taken
// at start while the machine is quiet, since a trial the scheduler interrupted is slow
// for reasons the loop does not have.
func newCPUWork(d time.Duration) cpuWork {
	if d <= 0 {
		return cpuWork{}
	}
	const trial = 1 << 20
	best := time.Duration(1<<63 - 1)
	for range 20 {
		start := time.Now()
		spin(trial)
		best = min(best, time.Since(start))
	}
	return cpuWork{iterations: int(float64(trial) * float64(d) / float64(max(best, 1)))}
}

func (w cpuWork) do() {
	if w.iterations > 0 {
		spin(w.iterations)
	}
}

func spin(n int) {
	x := uint64(n)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	workSink.Add(x)
}
