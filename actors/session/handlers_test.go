package session

import (
	"testing"

	"github.com/ensemble-bot/ensemble/internal/commands"
)

// TestHandlersMatchTheTable: every command the table gives the session
// has a handler here, and every handler here is for such a command.
func TestHandlersMatchTheTable(t *testing.T) {
	for _, c := range commands.Table() {
		if _, ok := handlers[c.Name]; ok != (c.Where == commands.InSession) {
			t.Errorf("%s: runs in the session %v, has a session handler %v", c.Name, c.Where == commands.InSession, ok)
		}
	}
	for name := range handlers {
		if _, ok := commands.Lookup(string(name)); !ok {
			t.Errorf("session handler for %s, which is no command", name)
		}
	}
}
