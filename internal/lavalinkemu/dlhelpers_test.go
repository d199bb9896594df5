//go:build !race

package lavalinkemu

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
)

// dl is a real disgolink client connected to an emulator.
type dl struct {
	t      *testing.T
	client disgolink.Client
	node   disgolink.Node
	events chan lavalink.Message
}

type listenerFunc func(disgolink.Player, lavalink.Message)

func (f listenerFunc) OnEvent(p disgolink.Player, m lavalink.Message) { f(p, m) }

func newDL(t *testing.T, e *Emulator, password string, timeout time.Duration) (*dl, error) {
	t.Helper()
	d := &dl{t: t, events: make(chan lavalink.Message, 10000)}
	d.client = disgolink.New(snowflake.MustParse(testUserID),
		disgolink.WithLogger(slog.New(slog.DiscardHandler)),
		disgolink.WithListeners(listenerFunc(func(_ disgolink.Player, m lavalink.Message) {
			// The listener runs on disgolink's reader goroutine: hand off only.
			select {
			case d.events <- m:
			default:
			}
		})))
	t.Cleanup(d.client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	node, err := d.client.AddNode(ctx, disgolink.NodeConfig{Name: "emu", Address: e.Addr(), Password: password})
	d.node = node
	return d, err
}

func mustDL(t *testing.T, e *Emulator) *dl {
	t.Helper()
	d, err := newDL(t, e, testPassword, waitTimeout)
	if err != nil {
		t.Fatalf("AddNode: %v", err)
	}
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitMsg waits for the next message of type T that matches.
func waitMsg[T lavalink.Message](d *dl, match func(T) bool) T {
	d.t.Helper()
	deadline := time.After(waitTimeout)
	var seen []lavalink.Message
	for {
		select {
		case m := <-d.events:
			if v, ok := m.(T); ok && (match == nil || match(v)) {
				return v
			}
			seen = append(seen, m)
		case <-deadline:
			var zero T
			d.t.Fatalf("no %T within %v; saw %d other messages: %+v", zero, waitTimeout, len(seen), seen)
			return zero
		}
	}
}

// nextEvent returns the next event (op "event"), skipping stats and
// playerUpdate messages.
func nextEvent(d *dl) lavalink.Event {
	d.t.Helper()
	return waitMsg[lavalink.Event](d, nil)
}

// connectVoice feeds disgolink the two Discord voice events in the order
// Discord sends them, which makes it PATCH a full voice state.
func (d *dl) connectVoice(guild snowflake.ID) {
	d.t.Helper()
	ch := snowflake.ID(42)
	ctx := ctxT(d.t)
	d.client.OnVoiceStateUpdate(ctx, guild, &ch, "vsess")
	d.client.OnVoiceServerUpdate(ctx, guild, "tok", "voice.example:443")
}

func playerOf(t *testing.T, e *Emulator, guild snowflake.ID) PlayerInfo {
	t.Helper()
	for _, p := range e.Players("") {
		if p.GuildID == uint64(guild) {
			return p
		}
	}
	t.Fatalf("no emulator player for guild %d", guild)
	return PlayerInfo{}
}
