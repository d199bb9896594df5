package guild

import (
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// A guild that plays nothing has no session activation: while the guild
// knows its session has nothing (no track, no queue, no voice connection),
// it answers /queue and /nowplaying itself, with the session's own words.

// sessionState is what the guild knows of its session.
type sessionState uint8

const (
	// sessionUnknown: the store could not say, or a reply may be stale;
	// commands go to the session, whose reply settles it.
	sessionUnknown sessionState = iota
	sessionActive
	sessionInactive
)

// queuePageSize is the session's /queue page size.
const queuePageSize = 10

// emptyQueue renders the pages of a session that has nothing; it is only
// read.
var emptyQueue, _ = music.NewQueue(1)

// answersLocally reports whether the guild answers name itself: only while
// its session is known to have nothing and no command on its way there
// could change that.
func (g *Grain) answersLocally(name string) bool {
	return (name == "queue" || name == "nowplaying") && g.session == sessionInactive && len(g.inFlight) == 0
}

// idleReply is the session's answer to /queue or /nowplaying when it has
// nothing (actors/session/execute.go).
func idleReply(name string, opts []*clusterpb.Option) *clusterpb.Reply {
	if name == "nowplaying" {
		return commands.Error("Nothing is playing.")
	}
	n, err := commands.ParseQueuePage(opts)
	if err != nil {
		return commands.Error(err.Error())
	}
	page, err := emptyQueue.Page(n, queuePageSize)
	if err != nil {
		return commands.Error(err.Error())
	}
	return commands.QueuePage(page, nil)
}

// learnSession updates what the guild knows from a session reply to w. An
// "inactive" reply is believed only when no other command was on its way
// to the session meanwhile: replies come back in any order, so a later
// command's "active" could be overtaken by an earlier "inactive".
func (g *Grain) learnSession(w *work, reply *clusterpb.SessionReply, err error) {
	overlapped := w.overlapped || g.sessionEvents != w.events
	g.sessionEvents++
	switch {
	case err != nil || reply == nil:
		g.session = sessionUnknown
	case reply.GetActive():
		g.session = sessionActive
	case !overlapped:
		g.session = sessionInactive
	default:
		g.session = sessionUnknown
	}
}
