package commands

import (
	"fmt"
	"strings"
	"time"

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

// RateLimitedMessage is the answer to a command past the rate limits:
// guild says whether the guild's limit (all its users) was reached rather
// than the user's own; the wait is rounded up to whole seconds.
func RateLimitedMessage(guild bool, wait time.Duration) string {
	secs := int((wait + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	who := "You're"
	if guild {
		who = "This server is"
	}
	return fmt.Sprintf("%s sending commands faster than I take them; please try again in %d s.", who, secs)
}
