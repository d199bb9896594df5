package lavalink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Timing tunes the pool. Zero fields take the defaults in brackets.
type Timing struct {
	// Tick is how often node actors check their connection and the pool
	// its breakers' reset timers [200ms].
	Tick time.Duration
	// ConnectTimeout bounds one connection attempt [5s].
	ConnectTimeout time.Duration
	// ResumeGrace bounds the one quick reconnection tried when a websocket
	// drops: if it resumes the session the players never stopped; if not,
	// they move at once [1s].
	ResumeGrace time.Duration
	// ResumeTimeout is how long Lavalink keeps a dropped session's players
	// playing for us [60s].
	ResumeTimeout time.Duration
	// RequestTimeout bounds health polls and breaker probes
	// [Options.RequestTimeout, else 5s].
	RequestTimeout time.Duration
	// HealthInterval is the period of the stats poll, which feeds the
	// load score and counts as a request for the breaker [5s].
	HealthInterval time.Duration
	// StatsSilence: a websocket with no message for this long is dead
	// (Lavalink sends stats every 60 s) [90s].
	StatsSilence time.Duration
	// UpdateSilence replaces StatsSilence while players with a track are
	// on the node (Lavalink sends their playerUpdates every 5 s) [20s].
	UpdateSilence time.Duration
	// LiveInterval and LiveTimeout: while players with a track are on the
	// node, a REST call (stats) every LiveInterval; one unanswered for
	// LiveTimeout means the node hangs (it accepts connections and says
	// nothing), and its websocket is closed: the resume try fails and its
	// players move. Lavalink's playerUpdates come only every 5 s, too
	// rarely to tell a hang within 3 s [1s, 2s].
	LiveInterval time.Duration
	LiveTimeout  time.Duration
	// StallThreshold: a playing player whose position has not moved for
	// this long is nudged, then moved, then given up on [12s].
	StallThreshold time.Duration
	// DestroyTimeout bounds the best-effort destroy of a moved player on
	// its old node [500ms].
	DestroyTimeout time.Duration
	// ClaimLinger is how long a session resumed to take over its players
	// (TakeOver) stays resumed after its last takeover, for the takeovers
	// of its other guilds that follow [1s].
	ClaimLinger time.Duration
	// Reconnect is the backoff between connection attempts
	// [500ms doubling to 30s, half jitter, no limit].
	Reconnect supervisor.Backoff
	// ResetJitter spreads the breaker's reset timeout [0.2].
	ResetJitter float64
}

func (t Timing) withDefaults(request time.Duration) Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Tick, 200*time.Millisecond)
	def(&t.ConnectTimeout, 5*time.Second)
	def(&t.ResumeGrace, time.Second)
	def(&t.ResumeTimeout, 60*time.Second)
	def(&t.RequestTimeout, request)
	def(&t.RequestTimeout, 5*time.Second)
	def(&t.HealthInterval, 5*time.Second)
	def(&t.StatsSilence, 90*time.Second)
	def(&t.UpdateSilence, 20*time.Second)
	def(&t.LiveInterval, time.Second)
	def(&t.LiveTimeout, 2*time.Second)
	def(&t.StallThreshold, 12*time.Second)
	def(&t.DestroyTimeout, 500*time.Millisecond)
	def(&t.ClaimLinger, time.Second)
	if t.Reconnect.Base <= 0 {
		t.Reconnect = supervisor.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, Factor: 2, Jitter: 0.5}
	}
	if t.ResetJitter <= 0 {
		t.ResetJitter = 0.2
	}
	return t
}

// Options configure a Client.
type Options struct {
	// BotUserID is the bot's Discord user ID (Lavalink's User-Id header).
	BotUserID string
	Nodes     []config.LavalinkNode
	Breaker   config.Breaker
	// RequestTimeout is the default for Timing.RequestTimeout.
	RequestTimeout time.Duration
	Log            *slog.Logger
	// OnEvent receives every player event, and a NODE_LOST event for each
	// guild whose player must move; it must not block for long (it runs
	// on disgolink's reader goroutines, the watchdog, and the pool's
	// forwarder goroutine; the pool actor itself never calls it).
	OnEvent func(*clusterpb.PlayerEvent)
	// OnReady is told how many nodes can take players whenever that
	// changes.
	OnReady func(selectable, total int)
	// OnBreaker is told every breaker transition (they are also published
	// on the actor system's event stream).
	OnBreaker func(supervisor.Change)
	// Registerer receives the pool's metrics (nil: not exported).
	Registerer prometheus.Registerer
	// System runs the pool and node actors (nil: a private one).
	System *actor.ActorSystem
	Timing Timing
	// KeepPlayersOnClose leaves session resuming on when the client
	// closes, so that Lavalink keeps this member's players playing for its
	// resume timeout: in a cluster, the members that take the sessions
	// over take those players over at their position (TakeOver) instead of
	// starting new ones after a gap. Off, the players end with the client
	// (a bot stopped for good goes quiet at once).
	KeepPlayersOnClose bool
}

// Client is a member's Lavalink pool, seen by sessions as their Audio.
type Client struct {
	o       Options
	t       Timing
	log     *slog.Logger
	m       *metrics
	uid     snowflake.ID
	http    *http.Client
	onEvent func(*clusterpb.PlayerEvent)
	onReady func(int, int)

	sys    *actor.ActorSystem
	ownSys bool
	pool   *actor.PID
	pids   atomic.Pointer[map[string]*actor.PID]

	mu     sync.Mutex
	guilds map[string]*guildPlayer
	links  map[string]*link
	up     map[string]bool // websocket up: its players play and it answers
	usable map[string]bool // selectable: up and breaker closed
	stop   chan struct{}
	kick   chan struct{} // wakes the watchdog
	fwd    *forwarder    // NODE_LOST from the pool, off the pool's goroutine

	// life guards closing against the start of background work: work
	// starts (wg.Add) under its read lock after checking closing, Close
	// sets closing under its write lock, so no Add races Wait.
	life    sync.RWMutex
	closing atomic.Bool
	wg      sync.WaitGroup
	// newNode makes a node actor (tests replace it with one that needs
	// no Lavalink server).
	newNode func(config.LavalinkNode) actor.Actor
	// dial connects a node (tests replace it with a fake Lavalink).
	dial func(ctx context.Context, l *link, cfg config.LavalinkNode) (*link, error)
	// claims are the other sessions resumed for takeovers, by node and
	// session; resume makes one (tests replace it).
	claimMu sync.Mutex
	claims  map[string]*sessionClaim
	resume  func(ctx context.Context, cfg config.LavalinkNode, sessionID string) (close func(), resumed bool, err error)
}

// guildPlayer is what the client knows of one guild's player.
type guildPlayer struct {
	// op serializes operations on the player: sessions call from one
	// actor per guild, the watchdog from its own goroutine.
	op sync.Mutex
	// mu guards the fields below; websocket readers take it briefly.
	mu      sync.Mutex
	node    string // where the player lives
	pending string // where a Play is creating it (its events are let through)
	link    *link
	req     audio.PlayRequest // the last full play, for nudges
	// gen counts the session's operations on the player (plays,
	// updates, destroys): a watchdog nudge decided before one of them
	// is stale.
	gen     uint64
	track   bool
	paused  bool
	filters *lavalink.Filters // as last echoed by Lavalink, restored on a move
	lostAt  time.Time
	w       watch
}

// New creates a client; Start connects it.
func New(o Options) (*Client, error) {
	uid, err := snowflake.Parse(o.BotUserID)
	if err != nil {
		return nil, fmt.Errorf("lavalink: bot user ID %q: %w", o.BotUserID, err)
	}
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if n.Name == "" || seen[n.Name] {
			return nil, fmt.Errorf("lavalink: node names must be unique and non-empty (%q)", n.Name)
		}
		seen[n.Name] = true
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(o.Nodes))
	for _, n := range o.Nodes {
		names = append(names, n.Name)
	}
	m.initNodes(names)
	c := &Client{
		o: o, t: o.Timing.withDefaults(o.RequestTimeout), log: o.Log.With("component", "lavalink"), m: m, uid: uid,
		http:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second},
		onEvent: o.OnEvent, onReady: o.OnReady,
		guilds: map[string]*guildPlayer{}, links: map[string]*link{}, up: map[string]bool{}, usable: map[string]bool{},
		kick: make(chan struct{}, 1), fwd: newForwarder(),
	}
	c.newNode = func(cfg config.LavalinkNode) actor.Actor { return &nodeActor{cfg: cfg, c: c} }
	c.dial = c.dialDisgolink
	c.claims, c.resume = map[string]*sessionClaim{}, c.resumeSession
	if c.onEvent == nil {
		c.onEvent = func(*clusterpb.PlayerEvent) {}
	}
	if c.onReady == nil {
		c.onReady = func(int, int) {}
	}
	return c, nil
}

// Start spawns the pool (which connects every node in the background,
// picking up a node that appears later without a restart) and the
// watchdog.
func (c *Client) Start(context.Context) {
	c.sys = c.o.System
	if c.sys == nil {
		lib := slog.New(telemetry.WithMinLevel(c.o.Log.Handler(), slog.LevelWarn)).With("lib", "protoactor", "component", "lavalink")
		c.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return lib }))
		c.ownSys = true
	}
	p := newPool(c)
	c.pool = c.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return p }, actor.WithSupervisor(p.strategy)))
	c.stop = make(chan struct{})
	c.goAsync(c.watchdog)
	c.goAsync(func() { c.fwd.run(c.stop, c.onEvent) })
}

// goAsync runs f in a goroutine Close waits for; false (f not run) once
// the client is closing.
func (c *Client) goAsync(f func()) bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closing.Load() {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// errClosed is what Audio calls return once Close has begun.
var errClosed = fmt.Errorf("lavalink: client closed: %w", audio.ErrNoNode)

// enter is the check at the top of every Audio call: after Close (or
// before Start) there is no pool to ask.
func (c *Client) enter() error {
	if c.closing.Load() || c.pool == nil {
		return errClosed
	}
	return nil
}

// Close stops the watchdog, the node actors (closing their connections)
// and the pool. Calls made meanwhile or later fail with
// audio.ErrNoNode. c.pool is never cleared: calls already past
// their entry check still hold a valid (stopped) PID.
func (c *Client) Close() {
	c.life.Lock()
	if c.pool == nil || c.closing.Load() {
		c.life.Unlock()
		return
	}
	c.closing.Store(true)
	c.life.Unlock()
	close(c.stop)
	c.closeClaims()
	_ = c.sys.Root.PoisonFuture(c.pool).Wait()
	c.wg.Wait() // the watchdog, forwarder, nudges, destroys, sweeps and connection attempts
	if c.ownSys {
		c.sys.Shutdown()
	}
}

// Nodes reports every node as the pool sees it.
func (c *Client) Nodes(ctx context.Context) ([]NodeStatus, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	r, err := c.ask(ctx, statusReq{})
	if err != nil {
		return nil, err
	}
	return r.([]NodeStatus), nil
}

func (c *Client) ask(ctx context.Context, msg any) (any, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	d := time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(dl), time.Millisecond))
	}
	r, err := c.sys.Root.RequestFuture(c.pool, msg, d).Result()
	if err != nil {
		return nil, fmt.Errorf("lavalink: pool: %w", err)
	}
	return r, nil
}

func nodeNames(ns []config.LavalinkNode) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

func (c *Client) sendNode(name string, msg any) {
	if c.closing.Load() {
		return
	}
	if pids := c.pids.Load(); pids != nil {
		if pid := (*pids)[name]; pid != nil {
			c.sys.Root.Send(pid, msg)
		}
	}
}

// report tells node's actor how a request went (the breaker counts it).
func (c *Client) report(node string, err error) { c.sendNode(node, outcome{err: err}) }

// publish announces a breaker transition.
func (c *Client) publish(ch supervisor.Change) {
	if c.o.OnBreaker != nil {
		c.o.OnBreaker(ch)
	}
	c.sys.EventStream.Publish(ch)
}

// setNode records a node's link, liveness and selectability (called by
// the pool).
func (c *Client) setNode(name string, l *link, up, usable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l != nil {
		c.links[name] = l
	}
	c.up[name], c.usable[name] = up, usable
}

// isUsable: node takes new players (connected, breaker closed).
func (c *Client) isUsable(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usable[name]
}

// liveLink is node's current link if its websocket is up: its players
// play and it answers requests, whatever its breaker says.
func (c *Client) liveLink(name string) (*link, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.links[name]
	return l, l != nil && c.up[name]
}

func (c *Client) guild(id string, create bool) *guildPlayer {
	c.mu.Lock()
	defer c.mu.Unlock()
	gp := c.guilds[id]
	if gp == nil && create {
		gp = &guildPlayer{}
		c.guilds[id] = gp
	}
	return gp
}

// markLost stamps when guild was told to move (for the migration metric).
func (c *Client) markLost(guild string, at time.Time) {
	if gp := c.guild(guild, false); gp != nil {
		gp.mu.Lock()
		if gp.lostAt.IsZero() {
			gp.lostAt = at
		}
		gp.mu.Unlock()
	}
}

func (c *Client) place(ctx context.Context, guild string) (placeRes, error) {
	r, err := c.ask(ctx, placeReq{guild: guild})
	if err != nil {
		return placeRes{}, err
	}
	res := r.(placeRes)
	if !res.ok || res.link == nil {
		return placeRes{}, fmt.Errorf("lavalink: %w", audio.ErrNoNode)
	}
	return res, nil
}

// Load resolves identifier on the least-loaded healthy node.
func (c *Client) Load(ctx context.Context, identifier string) (audio.Loaded, error) {
	if err := c.enter(); err != nil {
		return audio.Loaded{}, err
	}
	r, err := c.ask(ctx, pickReq{})
	if err != nil {
		return audio.Loaded{}, err
	}
	res := r.(placeRes)
	if !res.ok || res.link == nil {
		return audio.Loaded{}, fmt.Errorf("lavalink: %w", audio.ErrNoNode)
	}
	out, err := res.link.api.LoadTracks(ctx, identifier)
	c.report(res.node, err)
	if err != nil {
		return audio.Loaded{}, fmt.Errorf("lavalink: load on %s: %w", res.node, refused(err))
	}
	switch d := out.Data.(type) {
	case lavalink.Track:
		return audio.Loaded{Tracks: []music.Track{toTrack(d)}}, nil
	case lavalink.Playlist:
		l := audio.Loaded{Playlist: d.Info.Name}
		for _, t := range d.Tracks {
			l.Tracks = append(l.Tracks, toTrack(t))
		}
		if l.Playlist == "" {
			l.Playlist = "playlist"
		}
		return l, nil
	case lavalink.Search:
		l := audio.Loaded{Search: true}
		for _, t := range d {
			l.Tracks = append(l.Tracks, toTrack(t))
		}
		return l, nil
	case lavalink.Empty:
		return audio.Loaded{}, nil
	case lavalink.Exception:
		// The server answered: the track cannot be played, and why.
		return audio.Loaded{}, fmt.Errorf("lavalink: load on %s: %w", res.node, &audio.LoadFailedError{Message: d.Message})
	}
	return audio.Loaded{}, fmt.Errorf("lavalink: unexpected load type %q", out.LoadType)
}

// refused marks an error status the server answered with as
// audio.ErrRefused, so users are not told it did not answer.
func refused(err error) error {
	var le lavalink.Error
	if errors.As(err, &le) {
		return fmt.Errorf("%w: %w", audio.ErrRefused, err)
	}
	return err
}

func toTrack(t lavalink.Track) music.Track {
	out := music.Track{
		Encoded: t.Encoded, Identifier: t.Info.Identifier, Title: t.Info.Title, Author: t.Info.Author,
		SourceName: t.Info.SourceName, Length: time.Duration(t.Info.Length) * time.Millisecond, IsStream: t.Info.IsStream,
	}
	if t.Info.URI != nil {
		out.URI = *t.Info.URI
	}
	if t.Info.ArtworkURL != nil {
		out.ArtworkURL = *t.Info.ArtworkURL
	}
	return out
}

func guildID(s string) (snowflake.ID, error) {
	id, err := snowflake.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("lavalink: guild ID %q: %w", s, err)
	}
	return id, nil
}

// playUserData is the track's userData: Lavalink echoes it in every event
// about the track (a JSON object; anything else comes back as {}), which
// is how events are matched to the play they are about.
type playUserData struct {
	PlayID string `json:"ensemblePlayId"`
}

// playOf reads the play ID back from an event's track, and the track's
// identifier for servers that do not echo userData.
func playOf(t lavalink.Track) (playID, identifier string) {
	var ud playUserData
	if len(t.UserData) > 0 {
		_ = json.Unmarshal(t.UserData, &ud) // not ours, or not an object: no play ID
	}
	return ud.PlayID, t.Info.Identifier
}

// playUpdate is the one update that (re)creates a player: voice, track,
// position, volume, pause state and the filters it had.
func playUpdate(p audio.PlayRequest, filters *lavalink.Filters) (lavalink.PlayerUpdate, error) {
	ch, err := snowflake.Parse(p.Voice.ChannelID)
	if err != nil {
		return lavalink.PlayerUpdate{}, fmt.Errorf("lavalink: voice channel %q: %w", p.Voice.ChannelID, err)
	}
	u := lavalink.DefaultPlayerUpdate()
	u.Apply([]lavalink.PlayerUpdateOpt{
		lavalink.WithEncodedTrack(p.Track.Encoded),
		lavalink.WithTrackUserData(playUserData{PlayID: p.PlayID}),
		lavalink.WithPosition(lavalink.Duration(max(p.Position, 0).Milliseconds())),
		lavalink.WithVolume(p.Volume),
		lavalink.WithPaused(p.Paused),
		lavalink.WithVoice(lavalink.VoiceState{
			Token: p.Voice.Token, Endpoint: p.Voice.Endpoint, SessionID: p.Voice.SessionID, ChannelID: ch,
		}),
	})
	if filters != nil {
		f := *filters
		u.Filters = &f
	}
	return *u, nil
}

// Play creates or replaces the guild's player with one update. It stays
// on the guild's node while that node is healthy; otherwise it goes to the
// least-loaded healthy node, and a player left on a lost node is moved:
// removed from that node's client (destroyed there too if the node still
// answers), created on the new node at the requested position. It returns
// the node and the Lavalink session (this member's, on that node) that
// hold the player.
func (c *Client) Play(ctx context.Context, guild string, p audio.PlayRequest) (audio.Holder, error) {
	if err := c.enter(); err != nil {
		return audio.Holder{}, err
	}
	gid, err := guildID(guild)
	if err != nil {
		return audio.Holder{}, err
	}
	gp := c.guild(guild, true)
	gp.op.Lock()
	defer gp.op.Unlock()
	return c.play(ctx, gid, gp, p)
}

func (c *Client) play(ctx context.Context, gid snowflake.ID, gp *guildPlayer, p audio.PlayRequest) (audio.Holder, error) {
	res, err := c.place(ctx, gid.String())
	if err != nil {
		return audio.Holder{}, err
	}
	// The session the update goes to: disgolink's node sends it with the
	// session ID it has now (a reconnection that resumed keeps it).
	holder := audio.Holder{Node: res.node, Session: res.link.sessionID()}
	gp.mu.Lock()
	old, oldLink, filters := gp.node, gp.link, gp.filters
	gp.pending = res.node
	gp.gen++
	gp.mu.Unlock()
	upd, err := playUpdate(p, filters)
	if err != nil {
		return audio.Holder{}, err
	}
	if old != "" && old != res.node && oldLink != nil {
		c.detach(old, oldLink, gid, gp)
	}
	res.link.api.Track(gid) // disgolink delivers the guild's events from this node
	pl, err := res.link.api.UpdatePlayer(ctx, gid, upd)
	c.report(res.node, err)
	now := time.Now()
	gp.mu.Lock()
	gp.node, gp.link, gp.pending = res.node, res.link, ""
	if err != nil {
		gp.track = false
		gp.mu.Unlock()
		if _, failed := classify(err); failed {
			// The session retries by itself; its retry goes to another
			// node, without waiting for this one's breaker to open.
			c.sys.Root.Send(c.pool, avoidReq{guild: gid.String(), node: res.node, quiet: true})
			// (c.pool stays valid after Close: a send to a stopped PID is
			// a dead letter.)
		}
		return audio.Holder{}, fmt.Errorf("lavalink: play on %s: %w", res.node, refused(err))
	}
	gp.req, gp.track, gp.paused = p, true, p.Paused
	if pl != nil && !isZeroFilters(pl.Filters) {
		f := pl.Filters
		gp.filters = &f
	}
	gp.w.played(now, p.Position)
	lostAt := gp.lostAt
	gp.lostAt = time.Time{}
	gp.mu.Unlock()
	if old != "" && old != res.node {
		c.m.migrations.WithLabelValues(old, res.node).Inc()
		if !lostAt.IsZero() {
			c.m.migrationSeconds.Observe(now.Sub(lostAt).Seconds())
		}
	}
	return holder, nil
}

// detach removes the guild's player from the node it leaves. disgolink has
// no move: the old player is dropped from that node's client, and
// destroyed on the node if its websocket is still up, whatever its
// breaker says (an open breaker's node may well still play: left alone,
// the old player would play on beside the new one). The destroy runs off
// the caller's path with a short deadline; the pool keeps the guild
// among the node's strays until a destroy is confirmed, and sweeps it
// when the node answers again otherwise.
func (c *Client) detach(node string, l *link, gid snowflake.ID, gp *guildPlayer) {
	l.api.Untrack(gid)
	if _, up := c.liveLink(node); !up {
		return // unreachable now: swept when the node is up again
	}
	c.goAsync(func() {
		if c.destroyStray(node, gid.String()) {
			c.sys.Root.Send(c.pool, strayGone{node: node, guild: gid.String()})
		}
	})
}

// destroyStray destroys guild's old player on node, under the guild's op
// lock, unless the guild's player now lives on node again (then that is
// the fresh one). It reports whether the old player is known to be gone:
// destroyed, not there (404), or replaced by the current one.
func (c *Client) destroyStray(node string, guild string) bool {
	gid, err := snowflake.Parse(guild)
	if err != nil {
		return true
	}
	if gp := c.guild(guild, false); gp != nil {
		gp.op.Lock()
		defer gp.op.Unlock()
		gp.mu.Lock()
		here := gp.node == node || gp.pending == node
		gp.mu.Unlock()
		if here {
			return true
		}
	}
	// The node's current link: after a reconnection it is the one whose
	// session holds the player.
	l, up := c.liveLink(node)
	if !up {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.t.DestroyTimeout)
	defer cancel()
	err = l.api.DestroyPlayer(ctx, gid)
	if err == nil || notFound(err) {
		return true
	}
	c.log.Debug("destroy old player", "node", node, "guild", guild, "err", err)
	return false
}

// update sends opts to the guild's player on its node. Without a player
// there is nothing to change: the session holds the state and sends it
// with its next Play.
func (c *Client) update(ctx context.Context, guild string, apply func(gp *guildPlayer, now time.Time), opts ...lavalink.PlayerUpdateOpt) error {
	if err := c.enter(); err != nil {
		return err
	}
	gid, err := guildID(guild)
	if err != nil {
		return err
	}
	gp := c.guild(guild, false)
	if gp == nil {
		return nil
	}
	gp.op.Lock()
	defer gp.op.Unlock()
	gp.mu.Lock()
	node, l := gp.node, gp.link
	gp.gen++
	gp.mu.Unlock()
	if node == "" || l == nil {
		return nil
	}
	// The player's node, while its websocket is up, whatever its
	// breaker: the player is there (the pool moves it once another node
	// can take it).
	if _, up := c.liveLink(node); !up {
		return fmt.Errorf("lavalink: node %s: %w", node, audio.ErrNoNode)
	}
	u := lavalink.DefaultPlayerUpdate()
	u.Apply(opts)
	_, err = l.api.UpdatePlayer(ctx, gid, *u)
	c.report(node, err)
	if err != nil {
		return fmt.Errorf("lavalink: update on %s: %w", node, refused(err))
	}
	gp.mu.Lock()
	apply(gp, time.Now())
	gp.mu.Unlock()
	return nil
}

// Pause pauses or resumes.
func (c *Client) Pause(ctx context.Context, guild string, paused bool) error {
	return c.update(ctx, guild, func(gp *guildPlayer, now time.Time) {
		gp.paused, gp.req.Paused = paused, paused
		gp.w.played(now, gp.w.pos) // paused time is not a stall
	}, lavalink.WithPaused(paused))
}

// Seek moves the current track.
func (c *Client) Seek(ctx context.Context, guild string, pos time.Duration) error {
	return c.update(ctx, guild, func(gp *guildPlayer, now time.Time) {
		gp.req.Position = pos
		gp.w.played(now, pos)
	}, lavalink.WithPosition(lavalink.Duration(pos.Milliseconds())))
}

// Volume sets the volume (0–1000 on Lavalink; we allow 0–200).
func (c *Client) Volume(ctx context.Context, guild string, v int) error {
	return c.update(ctx, guild, func(gp *guildPlayer, _ time.Time) { gp.req.Volume = v }, lavalink.WithVolume(v))
}

// Stop stops the track, keeping the player and its voice connection.
func (c *Client) Stop(ctx context.Context, guild string) error {
	return c.update(ctx, guild, func(gp *guildPlayer, _ time.Time) { gp.track = false }, lavalink.WithNullTrack())
}

// Destroy removes the guild's player from its node, the client and the
// pool.
func (c *Client) Destroy(ctx context.Context, guild string) error {
	if err := c.enter(); err != nil {
		return err
	}
	gid, err := guildID(guild)
	if err != nil {
		return err
	}
	destroyed := false
	// The pool forgets the guild; a player not confirmed destroyed stays
	// among its node's strays and is swept.
	defer func() { c.sys.Root.Send(c.pool, releaseReq{guild: guild, destroyed: destroyed}) }()
	gp := c.guild(guild, false)
	if gp == nil {
		destroyed = true
		return nil
	}
	gp.op.Lock()
	defer gp.op.Unlock()
	c.mu.Lock()
	delete(c.guilds, guild)
	c.mu.Unlock()
	gp.mu.Lock()
	node, l := gp.node, gp.link
	gp.node, gp.track = "", false
	gp.gen++
	gp.mu.Unlock()
	if l == nil {
		destroyed = true
		return nil
	}
	l.api.Untrack(gid)
	if _, up := c.liveLink(node); !up {
		return nil // unreachable: swept when it answers again
	}
	err = l.api.DestroyPlayer(ctx, gid)
	c.report(node, err)
	destroyed = err == nil || notFound(err)
	if err != nil && !destroyed && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("lavalink: destroy on %s: %w", node, refused(err))
	}
	return nil
}

// nodeListener turns one node's messages into PlayerEvents.
type nodeListener struct {
	c *Client
	l *link
}

func (nl nodeListener) OnEvent(p disgolink.Player, msg lavalink.Message) {
	if p == nil {
		if s, ok := msg.(lavalink.StatsMessage); ok {
			nl.c.sendNode(nl.l.name, wsStats{s: lavalink.Stats(s)})
		}
		return
	}
	nl.c.playerMessage(nl.l.name, p.GuildID().String(), msg, time.Now())
}

// playerMessage handles one player message from node. Messages from a
// node the guild's player has left are dropped: a resumed old session can
// still report on a player we moved, and its TrackEnd must not skip the
// session's track.
func (c *Client) playerMessage(node, guild string, msg lavalink.Message, now time.Time) {
	gp := c.guild(guild, false)
	if gp == nil {
		return
	}
	ev := &clusterpb.PlayerEvent{GuildId: guild, Node: node}
	gp.mu.Lock()
	if gp.node != node && gp.pending != node {
		gp.mu.Unlock()
		return
	}
	forward := true
	switch e := msg.(type) {
	case lavalink.PlayerUpdateMessage:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE
		ev.PositionMs = int64(e.State.Position)
		ev.TimeUnixMs = e.State.Time.UnixMilli()
		ev.Connected = e.State.Connected
		gp.w.observe(now, time.Duration(e.State.Position)*time.Millisecond, e.State.Connected)
	case lavalink.TrackStartEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START
		ev.PlayId, ev.TrackIdentifier = playOf(e.Track)
		gp.track = true
	case lavalink.TrackEndEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END
		ev.PlayId, ev.TrackIdentifier = playOf(e.Track)
		ev.EndReason = string(e.Reason)
		if e.Reason != lavalink.TrackEndReasonReplaced {
			gp.track = false
		}
	case lavalink.TrackExceptionEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION
		ev.PlayId, ev.TrackIdentifier = playOf(e.Track)
		ev.Message = e.Exception.Message
	case lavalink.TrackStuckEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK
		ev.PlayId, ev.TrackIdentifier = playOf(e.Track)
		// The watchdog nudges and moves first; it forwards the event (and
		// the session skips the track) only once both failed, or when it
		// would not act at all (no voice, no track, paused): then the
		// session must hear of it.
		forward = !(gp.watched() && gp.w.connected && gp.w.stuck(now))
		if !forward {
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
	case lavalink.WebSocketClosedEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_VOICE_CLOSED
		ev.Message = fmt.Sprintf("%d %s", e.Code, e.Reason)
	default:
		forward = false
	}
	gp.mu.Unlock()
	if forward {
		c.onEvent(ev)
	}
}

// watched reports whether the watchdog follows the player (gp.mu held):
// it has a track, a node, and is not paused.
func (gp *guildPlayer) watched() bool { return gp.track && gp.link != nil && !gp.paused }

// isZeroFilters reports whether f sets nothing.
func isZeroFilters(f lavalink.Filters) bool {
	b, err := json.Marshal(f)
	return err == nil && string(b) == "{}"
}

// ReadyDetail is the readiness detail for up usable nodes of total.
func ReadyDetail(up, total int) string {
	if up == 0 {
		return fmt.Sprintf("%s (0/%d nodes usable)", audio.ErrNoNode, total)
	}
	return fmt.Sprintf("%d/%d nodes usable", up, total)
}

// Subscribe calls fn with every breaker transition until cancel is called.
func (c *Client) Subscribe(fn func(supervisor.Change)) (cancel func()) {
	if c.sys == nil {
		return func() {}
	}
	sub := c.sys.EventStream.Subscribe(func(ev any) {
		if ch, ok := ev.(supervisor.Change); ok {
			fn(ch)
		}
	})
	return func() { c.sys.EventStream.Unsubscribe(sub) }
}

// forwarder carries the pool's NODE_LOST events to Options.OnEvent on its
// own goroutine, so the pool actor never waits for the receiver (the
// node's wiring submits to a bounded queue and may block). The queue is
// unbounded but coalescing: one pending event per guild, the latest.
type forwarder struct {
	mu      sync.Mutex
	order   []string
	pending map[string]*clusterpb.PlayerEvent
	wake    chan struct{}
}

func newForwarder() *forwarder {
	return &forwarder{pending: map[string]*clusterpb.PlayerEvent{}, wake: make(chan struct{}, 1)}
}

// push queues ev; it never blocks.
func (f *forwarder) push(ev *clusterpb.PlayerEvent) {
	f.mu.Lock()
	g := ev.GetGuildId()
	if _, ok := f.pending[g]; !ok {
		f.order = append(f.order, g)
	}
	f.pending[g] = ev
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events in order until stop closes.
func (f *forwarder) run(stop <-chan struct{}, deliver func(*clusterpb.PlayerEvent)) {
	for {
		select {
		case <-stop:
			return
		case <-f.wake:
		}
		for {
			f.mu.Lock()
			if len(f.order) == 0 {
				f.order = nil
				f.mu.Unlock()
				break
			}
			g := f.order[0]
			f.order = f.order[1:]
			ev := f.pending[g]
			delete(f.pending, g)
			f.mu.Unlock()
			select {
			case <-stop:
				return
			default:
			}
			deliver(ev)
		}
	}
}
