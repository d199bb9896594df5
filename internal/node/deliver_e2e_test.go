//go:build !race

package node

import (
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/actors/guild"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// TestPostedInteractionFallsBackToACall: the guild grain's activation is
// gone while the PID cache still names it, as when a delivery races the
// guild's passivation. The post comes back as a dead letter, the delivery
// falls back to a grain call, which activates the guild anew, and the
// command gets its own answer, not "busy".
func TestPostedInteractionFallsBackToACall(t *testing.T) {
	w := newWorld(t, worldOpts{})
	first := w.run(w.listener, "queue")
	if first.text() == "" || commands.IsBusy(first.text()) {
		t.Fatalf("first /queue answered %q", first.text())
	}
	c := w.node.member.Cluster
	old := c.Get(w.guild.String(), guild.Kind)
	if old == nil {
		t.Fatal("no guild activation after a command")
	}
	if err := c.ActorSystem.Root.StopFuture(old).Wait(); err != nil {
		t.Fatal(err)
	}
	c.PidCache.Set(w.guild.String(), guild.Kind, old)

	if r := w.run(w.listener, "queue"); r.text() != first.text() {
		t.Fatalf("/queue through a stale PID answered %q, want %q", r.text(), first.text())
	}
	if !strings.Contains(w.logs.String(), "posted interaction not taken; calling the guild grain") {
		t.Errorf("the fallback left no log line")
	}
	if now := c.Get(w.guild.String(), guild.Kind); now == nil || now.Equal(old) {
		t.Errorf("guild activation after the fallback: %v (the stopped one was %v)", now, old)
	}
}
