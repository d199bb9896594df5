package guild

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/commands"
)

func TestAnswerLabels(t *testing.T) {
	acks := []struct {
		err  error
		want string
	}{
		{nil, ackDirect},
		{fmt.Errorf("respond: %w", commands.ErrUnknownInteraction), ackLate},
		{fmt.Errorf("rate limited (%w)", context.DeadlineExceeded), ackLate},
		{errors.New("connection refused"), ackFailed},
	}
	for _, a := range acks {
		if got := ackResult(ackDirect, a.err); got != a.want {
			t.Errorf("ackResult(%v) = %s, want %s", a.err, got, a.want)
		}
	}
	outcomes := map[string]string{
		commands.Busy().GetContent():                               outcomeBusy,
		commands.Error("Join a voice channel first.").GetContent(): outcomeError,
		commands.Info("Paused.").GetContent():                      outcomeOK,
	}
	for content, want := range outcomes {
		r := commands.Info(content)
		if got := outcomeOf(r); got != want {
			t.Errorf("outcomeOf(%q) = %s, want %s", content, got, want)
		}
	}
	for name, want := range map[string]string{"play": "play", "ens1:skip:1": "other", "@everyone": "other"} {
		if got := commandLabel(name); got != want {
			t.Errorf("commandLabel(%q) = %s, want %s", name, got, want)
		}
	}
}
