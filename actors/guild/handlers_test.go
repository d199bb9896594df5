package guild

import (
	"testing"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// TestHandlersMatchTheTable: every command the table gives the guild grain
// (to run, or to answer for an idle session) has a handler here, and every
// handler here has such a command.
func TestHandlersMatchTheTable(t *testing.T) {
	for _, c := range commands.Table() {
		if _, ok := guildCommands[c.Name]; ok != (c.Where == commands.InGuild) {
			t.Errorf("%s: runs in the guild %v, has a guild handler %v", c.Name, c.Where == commands.InGuild, ok)
		}
		if _, ok := idleAnswers[c.Name]; ok != c.IdleAnswer {
			t.Errorf("%s: answered for an idle session %v, has an idle answer %v", c.Name, c.IdleAnswer, ok)
		}
	}
	for name := range guildCommands {
		if _, ok := commands.Lookup(string(name)); !ok {
			t.Errorf("guild handler for %s, which is no command", name)
		}
	}
	for name := range idleAnswers {
		if _, ok := commands.Lookup(string(name)); !ok {
			t.Errorf("idle answer for %s, which is no command", name)
		}
	}
}

// TestEveryButtonRunsItsCommand: each now-playing button reaches the
// session as the command the table gives it (the Loop and Autoplay buttons
// were once refused as unknown commands: their commands had no DJ rule).
func TestEveryButtonRunsItsCommand(t *testing.T) {
	h := newHarness(t, nil, nil)
	for button, want := range map[string]string{
		commands.ButtonPauseResume: "pause_resume", commands.ButtonSkip: "skip", commands.ButtonStop: "stop",
		commands.ButtonLoop: "loop_cycle", commands.ButtonShuffle: "shuffle", commands.ButtonAutoplay: "autoplay_toggle",
	} {
		r := h.answer(h.send(mod, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, commands.CustomID(button, testGuild)))
		if r.GetContent() != "did "+want || !r.GetEphemeral() {
			t.Errorf("button %s: %+v, want the session's answer to %s, ephemeral", button, r, want)
		}
	}
}
