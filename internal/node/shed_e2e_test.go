//go:build !race

package node

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/gorilla/websocket"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// gate holds what the node's gateway reader gets: while it is held, data
// the emulator wrote waits after the socket read, as when a member's
// reader falls behind.
type gate struct{ mu sync.Mutex }

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.g.mu.Lock()
	//lint:ignore SA2001 waiting for the gate is the point
	c.g.mu.Unlock()
	return n, err
}

func (g *gate) dialer() gateway.ConfigOpt {
	var d net.Dialer
	return gateway.WithDialer(&websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return gatedConn{Conn: c, g: g}, nil
		},
	})
}

// TestBehindNodeAnswersBusy: interactions that reach a member long after
// Discord created them (its gateway reader was behind) are answered busy at
// once, within Discord's deadline, and counted; once the member has caught
// up, commands are handled again.
func TestBehindNodeAnswersBusy(t *testing.T) {
	var g gate
	const maxLag = 500 * time.Millisecond
	w := newWorld(t, worldOpts{shardMaxLag: maxLag, gatewayOpts: []gateway.ConfigOpt{g.dialer()}})
	// A first interaction on time gives the shard its reading of the
	// clock offset.
	if r := w.run(w.listener, "queue"); commands.IsBusy(r.content) {
		t.Fatalf("first /queue answered busy: %+v", r)
	}

	g.mu.Lock()
	held := make([]*discordemu.Interaction, 3)
	for i := range held {
		var err error
		if held[i], err = w.discord.InvokeCommand(w.guild, w.listener, w.text, "queue"); err != nil {
			g.mu.Unlock()
			t.Fatal(err)
		}
	}
	// Let them age past the limit (with room for a slow machine) before
	// the reader gets them.
	time.Sleep(time.Until(held[len(held)-1].Created.Add(2 * maxLag)))
	g.mu.Unlock()
	for i, ix := range held {
		r := w.await(ix)
		if !commands.IsBusy(r.content) || !r.ephemeral || r.deferred {
			t.Fatalf("held interaction %d answered %+v, want an ephemeral busy answer", i, r)
		}
	}
	if late := w.discord.ErrorsOfKind(discordemu.ErrLateInteraction); len(late) != 0 {
		t.Fatalf("busy answers after Discord's deadline: %v", late)
	}
	if r := w.run(w.listener, "queue"); commands.IsBusy(r.content) {
		t.Fatalf("/queue after the node caught up answered busy: %+v", r)
	}
	if m := metricsText(t, w); !strings.Contains(m, "\nensemble_interactions_busy_total 3\n") {
		t.Fatalf("/metrics busy counter is not 3:\n%s", grepLines(m, "ensemble_interactions_busy"))
	}
	logs := w.logs.String()
	if n := strings.Count(logs, "shard behind on its interactions"); n != 1 {
		t.Fatalf("%d 'behind' log lines, want 1 for the episode:\n%s", n, logs)
	}
	if !strings.Contains(logs, "answered_busy=3") {
		t.Fatalf("no 'caught up' line counting 3 busy answers:\n%s", logs)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAnswersMakeRoomForInteractions: every kind of first answer (the
// guild's, the session's, a refusal) ends an interaction's flight, so a member with room
// for two at a time handles any number in sequence, none answered busy.
func TestAnswersMakeRoomForInteractions(t *testing.T) {
	w := newWorld(t, worldOpts{interactionsInFlight: 2})
	w.join(w.dj, w.voice)
	for i := range 3 {
		for _, c := range []struct {
			name string
			opts []discordemu.Option
		}{
			{"queue", nil}, // answered by the guild
			{"play", []discordemu.Option{discordemu.StringOption("query", "synthwave drive")}}, // through the session
			{"nowplaying", nil},
			{"eval", nil}, // not a command of the bot: refused
		} {
			var r reply
			if c.name == "eval" {
				ix, err := w.discord.InvokeUnregistered(w.guild, w.dj, w.text, "eval")
				if err != nil {
					t.Fatal(err)
				}
				r = w.await(ix)
			} else {
				r = w.run(w.dj, c.name, c.opts...)
			}
			if commands.IsBusy(r.content) {
				t.Fatalf("round %d: /%s answered busy with nothing else in flight: %+v", i, c.name, r)
			}
		}
	}
}
