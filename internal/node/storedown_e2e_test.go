//go:build !race

package node

import (
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/testserver"
)

// TestNodeStartsWithRedisDown: a node started while Redis is down runs
// (it used to exit 1), says in /readyz that the store is unreachable, and
// once Redis comes up it is ready by itself and plays.
func TestNodeStartsWithRedisDown(t *testing.T) {
	srv := testserver.StartRedis(t)
	srv.Stop()
	w := newWorld(t, worldOpts{store: config.StoreRedis, redis: srv, unready: true})
	rep := w.node.Readiness().Snapshot()
	if rep.Ready || rep.Components[compStore].Ready || !strings.Contains(rep.Components[compStore].Detail, "redis unreachable") {
		t.Fatalf("readiness with Redis down: %+v", rep)
	}
	srv.Restart(t) // the same address
	w.waitReady()
	if logs := w.logs.String(); strings.Count(logs, "store unreachable") != 1 || !strings.Contains(logs, "store answers again") {
		t.Fatalf("want one warning for the outage and one note for its end:\n%s", logs)
	}
	w.join(w.listener, w.voice)
	wantContains(t, w.run(w.listener, "play", discordemu.StringOption("query", "after the outage")), "after the outage")
	w.player(playing("after the outage"))
}
