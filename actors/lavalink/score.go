package lavalink

import (
	"math"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
)

// Load is what node selection knows about a node's load.
type Load struct {
	// PlayingPlayers is the node's playing players (all clients), from its
	// last stats.
	PlayingPlayers int
	// SystemLoad is the node's CPU load, 0..1.
	SystemLoad float64
	// Deficit is frames missing per minute (frameStats.deficit), a sign of
	// an overloaded node or network.
	Deficit int
}

// Score is a node's load score; lower is better. It follows the penalties
// Lavalink client libraries use: one point per playing player, a CPU
// penalty that grows exponentially past ~50 % (a busy node degrades every
// stream on it), and a steep penalty for frame deficit (listeners already
// hear stutter there). Exponents are capped so the score stays finite.
func Score(l Load) float64 {
	players := float64(max(l.PlayingPlayers, 0))
	cpu := math.Pow(1.05, min(100*max(l.SystemLoad, 0), 500))*10 - 10
	deficit := math.Pow(1.03, min(500*float64(max(l.Deficit, 0))/3000, 1000))*600 - 600
	return players + cpu + deficit
}

// nodeInfo is the pool's view of one node.
type nodeInfo struct {
	name    string
	link    *link // nil until the first connection
	up      bool  // websocket connected and its reader alive
	breaker supervisor.State
	load    Load
	// placed counts guilds this member assigned to the node;
	// sinceStats the placements since its last stats, so a burst of
	// placements (200 migrations) spreads instead of all landing on the
	// node that was least loaded at the last stats.
	placed, sinceStats int
	// lost: the node was lost (breaker open, websocket gone, new
	// session) and its guilds must move once another node can take
	// them; gone: its players are gone too (a new Lavalink session), so
	// they must be re-created even on this node. See pool.flushLost.
	lost, gone bool
}

func (n *nodeInfo) selectable() bool { return n.up && n.link != nil && n.breaker == supervisor.Closed }

// live reports that the node's websocket is up: its players play and it
// answers, whatever its breaker says.
func (n *nodeInfo) live() bool { return n.up && n.link != nil }

func (n *nodeInfo) score() float64 {
	l := n.load
	l.PlayingPlayers = max(l.PlayingPlayers+n.sinceStats, n.placed)
	return Score(l)
}

// table is the pool's bookkeeping: nodes, which node each guild's player
// was placed on, and which node a guild must avoid (the watchdog moved it
// off a node that left it stuck). It is owned by the pool actor.
type table struct {
	order  []string // configuration order: ties go to the first
	nodes  map[string]*nodeInfo
	guilds map[string]string
	avoid  map[string]string
	// notified holds guilds told their node was lost, so one outage
	// produces one NODE_LOST per guild however many signals report it.
	notified map[string]bool
	// left holds, per node, the guilds whose player left it while it may
	// not have been reachable: their old player may still be there.
	left map[string]map[string]bool
}

func newTable(names []string) *table {
	t := &table{nodes: map[string]*nodeInfo{}, guilds: map[string]string{}, avoid: map[string]string{}, notified: map[string]bool{}, left: map[string]map[string]bool{}}
	for _, n := range names {
		t.order = append(t.order, n)
		t.nodes[n] = &nodeInfo{name: n}
	}
	return t
}

// place returns the node for guild's player: its current node while that
// is selectable and not to be avoided (no flapping back and forth), else
// the selectable node with the lowest score; with none, its current node
// if that is still connected (a degraded node that plays beats silence).
// prev is the node it was on. A placement answers any NODE_LOST the guild
// was sent.
func (t *table) place(guild string) (node, prev string, ok bool) {
	prev = t.guilds[guild]
	avoid := t.avoid[guild]
	delete(t.notified, guild)
	if n := t.nodes[prev]; n != nil && n.selectable() && prev != avoid {
		return prev, prev, true
	}
	var best *nodeInfo
	for _, name := range t.order {
		n := t.nodes[name]
		if !n.selectable() || name == avoid {
			continue
		}
		if best == nil || n.score() < best.score() {
			best = n
		}
	}
	if best == nil {
		// Avoiding the only healthy node leaves nothing: re-create the
		// player there rather than play nothing.
		if n := t.nodes[avoid]; n != nil && n.selectable() {
			best = n
		} else if n := t.nodes[prev]; n != nil && n.live() {
			// Nothing selectable: stay where the player is while that
			// node still answers (half-open, open), rather than fail
			// and leave the guild silent. flushLost moves it once
			// another node can take it.
			return prev, prev, true
		} else {
			return "", prev, false
		}
	}
	if best.name == prev {
		// The avoided node is the only one: the player is re-created in
		// place.
		delete(t.avoid, guild)
		return prev, prev, true
	}
	if p := t.nodes[prev]; p != nil {
		p.placed = max(p.placed-1, 0)
		t.leave(prev, guild)
	}
	best.placed++
	best.sinceStats++
	t.guilds[guild] = best.name
	t.forget(best.name, guild) // its player there is the one we create
	delete(t.avoid, guild)
	return best.name, prev, true
}

// release forgets guild's player. destroyed: the caller destroyed it on
// its node; otherwise it may still be there and is swept later.
func (t *table) release(guild string, destroyed bool) {
	if n := t.nodes[t.guilds[guild]]; n != nil {
		n.placed = max(n.placed-1, 0)
		if destroyed {
			t.forget(n.name, guild)
		} else {
			t.leave(n.name, guild)
		}
	}
	delete(t.guilds, guild)
	delete(t.avoid, guild)
	delete(t.notified, guild)
}

// lose returns the guilds on node not yet told it was lost, marking them.
func (t *table) lose(node string) []string {
	var out []string
	for g, n := range t.guilds {
		if n == node && !t.notified[g] {
			t.notified[g] = true
			out = append(out, g)
		}
	}
	return out
}

func (t *table) setLoad(node string, l Load) {
	if n := t.nodes[node]; n != nil {
		n.load, n.sinceStats = l, 0
	}
}

// selectable counts the nodes that can take a player.
func (t *table) selectable() int {
	c := 0
	for _, n := range t.nodes {
		if n.selectable() {
			c++
		}
	}
	return c
}

func (t *table) leave(node, guild string) {
	if t.left[node] == nil {
		t.left[node] = map[string]bool{}
	}
	t.left[node][guild] = true
}

// forget drops guild from node's strays: its old player there was
// destroyed (or is the guild's current player again).
func (t *table) forget(node, guild string) {
	if set := t.left[node]; set != nil {
		delete(set, guild)
		if len(set) == 0 {
			delete(t.left, node)
		}
	}
}

// clearLeft forgets every stray on node: its Lavalink session was
// replaced, and the old session's players ended with it.
func (t *table) clearLeft(node string) { delete(t.left, node) }

// strays returns the guilds whose player left node and that are not
// placed there again: once node answers, their old players there are
// destroyed so they cannot play on beside the new ones. They stay listed
// until each destroy is confirmed (forget); a guild placed there again is
// forgotten at once.
func (t *table) strays(node string) []string {
	var out []string
	for g := range t.left[node] {
		if t.guilds[g] != node {
			out = append(out, g)
		} else {
			t.forget(node, g)
		}
	}
	return out
}
