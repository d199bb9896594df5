package commands

import (
	"fmt"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// Answers the session gives and the guild grain gives in its stead while
// the session has nothing (Command.IdleAnswer): one source, so a member
// cannot tell which grain answered.

// QueuePageSize is how many tracks a /queue page lists.
const QueuePageSize = 10

// NothingPlaying answers a command that needs a current track when none
// plays.
func NothingPlaying() *clusterpb.Reply { return Error("Nothing is playing.") }

// UnknownCommand answers a command the grain has no handler for (one sent
// by a member of another version).
func UnknownCommand(name string) *clusterpb.Reply {
	return Error(fmt.Sprintf("Unknown command %q.", name))
}

// QueueAnswer answers /queue with its options opts: the page of q they ask
// for, under current (nil when nothing plays).
func QueueAnswer(q *music.Queue, current *music.Track, opts []*clusterpb.Option) *clusterpb.Reply {
	n, err := ParseQueuePage(opts)
	if err != nil {
		return Error(err.Error())
	}
	page, err := q.Page(n, QueuePageSize)
	if err != nil {
		return Error(err.Error())
	}
	return QueuePage(page, current)
}
