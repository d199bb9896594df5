// Package status is the cluster's status page. Each member describes
// itself (a Member) from what it already tracks — readiness, its shards and
// its Prometheus registry — and answers for itself through a named local
// actor that other members reach over protoactor remote; the admin server
// of any member asks every member the cluster lists and renders the answers
// as JSON (/status.json) and as a self-contained HTML page (/status).
package status

import (
	"math"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Member is one member's part of the status. Fields are only ever added:
// members of two versions answer each other during a rolling upgrade.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Admin is the member's admin HTTP address (its own /status, /metrics).
	Admin     string    `json:"admin"`
	Provider  string    `json:"provider"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	// Ready is /readyz's verdict; Components says why.
	Ready      bool        `json:"ready"`
	Components []Component `json:"components"`
	// Shards are the Discord shards this member runs.
	Shards             []Shard `json:"shards"`
	GuildActivations   int     `json:"guild_activations"`
	SessionActivations int     `json:"session_activations"`
	// Mailboxes are the messages waiting per grain kind.
	Mailboxes map[string]int `json:"mailbox_messages"`
	// Acks counts how interactions were first answered, by result, since
	// the member started; Busy counts the fast "busy" answers.
	Acks         map[string]int `json:"interaction_acks"`
	Busy         int            `json:"interactions_busy"`
	SongsStarted int            `json:"songs_started"`
	Lavalink     []LavalinkNode `json:"lavalink"`
	Store        Store          `json:"store"`
}

// Component is a readiness component.
type Component struct {
	Name   string `json:"name"`
	Ready  bool   `json:"ready"`
	Detail string `json:"detail,omitempty"`
}

// Shard is a shard a member runs.
type Shard struct {
	ID    int  `json:"id"`
	Ready bool `json:"ready"`
}

// LavalinkNode is a Lavalink node as this member's client sees it.
type LavalinkNode struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Breaker is closed, half-open or open.
	Breaker string `json:"breaker"`
	// Load is the node's load score (lower is better).
	Load     float64 `json:"load"`
	Resuming bool    `json:"resuming"`
}

// Store is the store as this member sees it.
type Store struct {
	Kind string `json:"kind"`
	// Breaker is closed, half-open or open; empty for a store without one
	// (bbolt).
	Breaker string `json:"breaker,omitempty"`
	Ready   bool   `json:"ready"`
	Detail  string `json:"detail,omitempty"`
}

// breakerStates are the values of the breaker-state gauges.
var breakerStates = []string{"closed", "half-open", "open"}

func breakerName(v float64) string {
	if i := int(v); i >= 0 && i < len(breakerStates) && float64(i) == v {
		return breakerStates[i]
	}
	return "unknown"
}

// FromMetrics fills in what the member's Prometheus registry knows:
// activations, mailboxes, acknowledgements, busy answers, songs, the
// Lavalink nodes and the store's breaker. Reading a gathered registry keeps
// the status true to /metrics and costs the packages that own those
// figures nothing.
func (m *Member) FromMetrics(families []*dto.MetricFamily) {
	nodes := map[string]*LavalinkNode{}
	node := func(met *dto.Metric) *LavalinkNode {
		name := label(met, "node")
		n := nodes[name]
		if n == nil {
			n = &LavalinkNode{Name: name, Breaker: "unknown"}
			nodes[name] = n
		}
		return n
	}
	for _, f := range families {
		for _, met := range f.GetMetric() {
			v := value(met)
			switch f.GetName() {
			case "ensemble_guild_activations":
				m.GuildActivations = int(v)
			case "ensemble_session_activations":
				m.SessionActivations = int(v)
			case "ensemble_mailbox_messages":
				m.Mailboxes = add(m.Mailboxes, label(met, "kind"), v)
			case "ensemble_interaction_acks_total":
				m.Acks = add(m.Acks, label(met, "result"), v)
			case "ensemble_interactions_busy_total":
				m.Busy += int(v)
			case "ensemble_songs_started_total":
				m.SongsStarted += int(v)
			case "ensemble_store_breaker_state":
				m.Store.Breaker = breakerName(v)
			case "ensemble_lavalink_breaker_state":
				node(met).Breaker = breakerName(v)
			case "ensemble_lavalink_node_up":
				node(met).Up = v == 1
			case "ensemble_lavalink_node_load_score":
				node(met).Load = v
			case "ensemble_lavalink_node_resuming":
				node(met).Resuming = v == 1
			}
		}
	}
	m.Lavalink = m.Lavalink[:0]
	for _, n := range nodes {
		m.Lavalink = append(m.Lavalink, *n)
	}
	sort.Slice(m.Lavalink, func(i, j int) bool { return m.Lavalink[i].Name < m.Lavalink[j].Name })
}

func add(m map[string]int, key string, v float64) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[key] += int(v)
	return m
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	var v float64
	switch {
	case m.Gauge != nil:
		v = m.Gauge.GetValue()
	case m.Counter != nil:
		v = m.Counter.GetValue()
	case m.Untyped != nil:
		v = m.Untyped.GetValue()
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Cluster is the whole status: every member the asking member's cluster
// lists, each with its answer or why there is none.
type Cluster struct {
	Name        string    `json:"cluster"`
	GeneratedAt time.Time `json:"generated_at"`
	// Self is the address of the member that answered the request.
	Self    string         `json:"self"`
	Members []MemberResult `json:"members"`
	Totals  Totals         `json:"totals"`
}

// MemberResult is one member's answer, or the error asking it.
type MemberResult struct {
	Address string  `json:"address"`
	Member  *Member `json:"member,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Totals add up the members that answered.
type Totals struct {
	Members     int `json:"members"`
	Answered    int `json:"answered"`
	Ready       int `json:"ready"`
	Shards      int `json:"shards"`
	ShardsReady int `json:"shards_ready"`
	Guilds      int `json:"guild_activations"`
	Sessions    int `json:"session_activations"`
}

func (c *Cluster) total() {
	t := Totals{Members: len(c.Members)}
	for _, r := range c.Members {
		m := r.Member
		if m == nil {
			continue
		}
		t.Answered++
		if m.Ready {
			t.Ready++
		}
		t.Shards += len(m.Shards)
		for _, s := range m.Shards {
			if s.Ready {
				t.ShardsReady++
			}
		}
		t.Guilds += m.GuildActivations
		t.Sessions += m.SessionActivations
	}
	c.Totals = t
}
