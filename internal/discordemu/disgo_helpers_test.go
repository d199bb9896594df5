package discordemu

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/disgoorg/disgo"
	"github.com/disgoorg/disgo/bot"
	"github.com/disgoorg/disgo/cache"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"
)

// events collects every event disgo emits, in order, without blocking its reader.
type eventLog struct {
	ch chan bot.Event
}

func (ev *eventLog) listener() bot.ConfigOpt {
	return bot.WithEventListenerFunc(func(e bot.Event) {
		select {
		case ev.ch <- e:
		default:
			panic("test event buffer full")
		}
	})
}

// waitEvent returns the next collected event of type T that satisfies pred, discarding
// others.
func waitEvent[T bot.Event](t *testing.T, ev *eventLog, pred func(T) bool) T {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case e := <-ev.ch:
			if v, ok := e.(T); ok && (pred == nil || pred(v)) {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("timed out waiting for %T", zero)
			return zero
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBot builds a real disgo client against the emulator with one gateway.
// newBot builds a disgo bot on the emulator without gateway compression.
// disgo's zstd-stream transport closes its decoder while the reader may be
// inside it (gateway_transports.go:195 vs zstd decoder.go:576): under
// reconnects and closes that is a nil-pointer crash of the whole test
// binary, not only a race report. Tests that are about compression ask for
// it explicitly (later options win).
func newBot(t *testing.T, emu *Emulator, extra ...bot.ConfigOpt) (*bot.Client, *eventLog) {
	t.Helper()
	return newBotWith(t, emu, append([]bot.ConfigOpt{bot.WithGatewayConfigOpts(gateway.WithCompression(gateway.CompressionNone))}, extra...)...)
}

// newBotWith is newBot with disgo's own defaults (zstd-stream).
func newBotWith(t *testing.T, emu *Emulator, extra ...bot.ConfigOpt) (*bot.Client, *eventLog) {
	t.Helper()
	ev := &eventLog{ch: make(chan bot.Event, 4096)}
	opts := append([]bot.ConfigOpt{
		bot.WithLogger(quietLogger()),
		bot.WithCacheConfigOpts(cache.WithCaches(cache.FlagGuilds, cache.FlagChannels, cache.FlagMembers, cache.FlagVoiceStates)),
		bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())),
		bot.WithGatewayConfigOpts(gateway.WithURL(emu.GatewayURL()),
			gateway.WithIntents(gateway.IntentGuilds|gateway.IntentGuildVoiceStates)),
		ev.listener(),
	}, extra...)
	client, err := disgo.New(emu.Token(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client.Close(ctx)
	})
	return client, ev
}

func sf(id Snowflake) snowflake.ID { return snowflake.ID(id) }
