package lavalink

import (
	"context"
	"time"

	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// action is what the watchdog does about a player.
type action int

const (
	actNone action = iota
	actNudge
	actMove
	actGiveUp
)

func (a action) String() string {
	return [...]string{"none", "nudge", "move", "give_up"}[a]
}

// watch follows one player's position. A playing, voice-connected player
// whose position has not changed for the threshold is nudged (its track
// re-sent at its position on the same node); if that does not help within
// another threshold it is moved to another node; if it is still stuck
// there, the watchdog gives up and lets the session skip the track. Each
// step waits a threshold, so the escalation is bounded: three actions,
// then nothing until the player advances again.
type watch struct {
	pos        time.Duration
	advancedAt time.Time
	connected  bool
	// fresh: the next playerUpdate sets the baseline (a re-created player
	// reports a new position once; that is not progress).
	fresh  bool
	step   action // the last action taken
	stepAt time.Time
}

// played records that the player was (re)started at pos.
func (w *watch) played(now time.Time, pos time.Duration) {
	w.pos, w.advancedAt, w.fresh = pos, now, true
	if w.step != actNone {
		w.stepAt = now // the step's effect is measured from here
	}
}

// observe records a playerUpdate.
func (w *watch) observe(now time.Time, pos time.Duration, connected bool) {
	w.connected = connected
	if w.fresh {
		w.pos, w.advancedAt, w.fresh = pos, now, false
		return
	}
	if pos != w.pos {
		w.pos, w.advancedAt, w.step = pos, now, actNone
	}
}

// stuck records Lavalink's TrackStuckEvent: act now rather than after the
// threshold. It reports whether the watchdog handles it (false once it
// gave up: the session then skips the track).
func (w *watch) stuck(now time.Time) bool {
	switch w.step {
	case actGiveUp:
		return false
	case actNone:
		w.advancedAt = time.Time{}
	default:
		w.stepAt = time.Time{}
	}
	return true
}

// due is the action to take now, if any.
func (w *watch) due(now time.Time, threshold time.Duration) action {
	if !w.connected {
		return actNone // no voice: it cannot advance anywhere
	}
	var since time.Time
	var next action
	switch w.step {
	case actNone:
		since, next = w.advancedAt, actNudge
	case actNudge:
		since, next = w.stepAt, actMove
	case actMove:
		since, next = w.stepAt, actGiveUp
	default:
		return actNone
	}
	if now.Sub(since) < threshold {
		return actNone
	}
	w.step, w.stepAt = next, now
	return next
}

// watchdog checks every player a few times per threshold, and counts the
// players with a track per node for the silence check.
func (c *Client) watchdog() {
	// A few checks per threshold, at least one a second (the per-node
	// track counts feed the silence check); a TrackStuckEvent kicks a
	// check at once.
	period := min(max(c.t.StallThreshold/4, 20*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.kick:
		}
		c.checkPlayers(time.Now())
	}
}

func (c *Client) checkPlayers(now time.Time) {
	c.mu.Lock()
	guilds := make(map[string]*guildPlayer, len(c.guilds))
	for g, gp := range c.guilds {
		guilds[g] = gp
	}
	links := make([]*link, 0, len(c.links))
	for _, l := range c.links {
		links = append(links, l)
	}
	c.mu.Unlock()
	tracks := map[*link]int32{}
	for g, gp := range guilds {
		gp.mu.Lock()
		act, node, gen := actNone, gp.node, gp.gen
		if gp.watched() {
			// Only playing players are sure to get playerUpdates.
			tracks[gp.link]++
			act = gp.w.due(now, c.t.StallThreshold)
		}
		playID, ident := gp.req.PlayID, gp.req.Track.Identifier
		gp.mu.Unlock()
		if act == actNone {
			continue
		}
		c.m.watchdog.WithLabelValues(act.String()).Inc()
		c.log.Warn("lavalink watchdog: player stalled", "guild", g, "node", node, "action", act)
		switch act {
		case actNudge:
			c.goAsync(func() { c.nudge(g, gp, node, gen) })
		case actMove:
			// The pool marks the node to avoid and sends the session a
			// NODE_LOST for it; the session's Play lands elsewhere.
			c.sys.Root.Send(c.pool, avoidReq{guild: g, node: node})
		case actGiveUp:
			c.onEvent(&clusterpb.PlayerEvent{GuildId: g, Node: node, PlayId: playID, TrackIdentifier: ident,
				Kind: clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK, Message: "stalled on every node tried"})
		}
	}
	for _, l := range links {
		l.tracks.Store(tracks[l])
	}
}

// nudge re-sends the guild's track at its last reported position, on the
// same node. It was decided under gp.mu, and runs later under gp.op: if
// the session acted on the player meanwhile (a new track, a stop, a pause,
// a seek, a move: gen or node changed) or the track ended, the decision
// is stale and re-sending gp.req would restart a stopped track or rewind
// a new one.
func (c *Client) nudge(guild string, gp *guildPlayer, decidedNode string, decidedGen uint64) {
	gid, err := snowflake.Parse(guild)
	if err != nil {
		return
	}
	gp.op.Lock()
	defer gp.op.Unlock()
	gp.mu.Lock()
	if gp.gen != decidedGen || gp.node != decidedNode || !gp.watched() {
		gp.mu.Unlock()
		return
	}
	node, l, req, filters := gp.node, gp.link, gp.req, gp.filters
	req.Position = gp.w.pos
	gp.mu.Unlock()
	if _, up := c.liveLink(node); !up {
		return
	}
	upd, err := playUpdate(req, filters)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.t.RequestTimeout)
	defer cancel()
	_, err = l.api.UpdatePlayer(ctx, gid, upd)
	c.report(node, err)
	if err != nil {
		c.log.Warn("lavalink watchdog: nudge failed", "guild", guild, "node", node, "err", err)
		return
	}
	gp.mu.Lock()
	gp.w.played(time.Now(), req.Position)
	gp.mu.Unlock()
}
