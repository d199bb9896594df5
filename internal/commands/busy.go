package commands

import (
	"strings"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// BusyMessage is the answer to an interaction the bot cannot take on now
// (past its admission limits): fast and ephemeral, never silence. Load
// tests tell busy answers from others by it (IsBusy).
const BusyMessage = "I'm busy right now; please try again in a moment."

// Busy is the reply carrying BusyMessage.
func Busy() *clusterpb.Reply { return Error(BusyMessage) }

// IsBusy reports whether a reply's content is the busy answer.
func IsBusy(content string) bool { return strings.Contains(content, BusyMessage) }
