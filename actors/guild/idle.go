package guild

import (
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// A guild that plays nothing has no session activation: while the guild
// knows its session has nothing (no track, no queue, no voice connection),
// it answers the commands.IdleAnswer commands (/queue, /nowplaying) itself,
// with the session's own words (idleAnswers).

// sessionState is what the guild knows of its session.
type sessionState uint8

const (
	// sessionUnknown: the store could not say, or a reply may be stale;
	// commands go to the session, whose reply settles it.
	sessionUnknown sessionState = iota
	sessionActive
	sessionInactive
)

// answersLocally reports whether the guild answers c itself: only while
// its session is known to have nothing and no command on its way there
// could change that.
func (g *Grain) answersLocally(c commands.Command) bool {
	return c.IdleAnswer && g.session == sessionInactive && len(g.inFlight) == 0
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
