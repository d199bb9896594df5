package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/secret"
	"github.com/ensemble-bot/ensemble/internal/store"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// Kind is the cluster kind name of shard grains.
const Kind = "Shard"

// DefaultGatewayURL is Discord's gateway. disgo would otherwise ask REST
// for it, which needs a REST client the shard does not have.
const DefaultGatewayURL = "wss://gateway.discord.gg"

const (
	// sendTimeout bounds an op 4 in the shard's sender: disgo's gateway
	// rate limiter may make it wait.
	sendTimeout = 5 * time.Second
	// sendQueue bounds the op 4s waiting for the sender; past it a join
	// or leave is refused at once.
	sendQueue = 256
	// deliverTimeout bounds one delivery to a guild or session grain:
	// later deliveries for that guild wait behind it.
	deliverTimeout = 5 * time.Second
	// deliverWithin bounds an interaction's delivery to its guild grain,
	// from its arrival: a failed delivery is answered busy in the rest of
	// Discord's 3 s.
	deliverWithin = 2500 * time.Millisecond
	// deliverBudget is how long an interaction may wait for its guild's
	// earlier deliveries: past it, it is answered busy at once, within
	// Discord's 3 s, instead of late or never.
	deliverBudget = 2 * time.Second
	// openTimeout bounds one Open: disgo retries inside it (1 s, 2 s, 4 s,
	// ... delays), then the grain's own backoff takes over.
	openTimeout = 30 * time.Second
	// closeTimeout bounds closing the gateway when the grain stops.
	closeTimeout = 5 * time.Second
)

// openBackoff spaces the gateway opens that failed.
var openBackoff = supervisor.Backoff{Base: time.Second, Max: time.Minute, Jitter: 0.5}

// Deps is what the shard grains of a member share. The generated kind keeps
// its factory in a package global, so a process has one Deps.
type Deps struct {
	Token secret.String
	// Tracer starts each interaction's trace; nil: none.
	Tracer trace.Tracer
	// Mailbox, if set, counts the messages waiting in the shards' mailboxes.
	Mailbox *cluster.MailboxDepth
	// GatewayURL is the websocket URL without a query (the emulator's in
	// tests). Default DefaultGatewayURL.
	GatewayURL string
	// ShardCount is the total number of shards. Default 1.
	ShardCount int
	// Intents default to Guilds|GuildVoiceStates: the guild list and the
	// voice states are all the bot reads from the gateway (interactions
	// need no intent).
	Intents gateway.Intents
	// GatewayOpts are appended to the shard's own options (an identify
	// limiter shared by the member's shards, compression, a dialer). A
	// logger given here replaces the shard's and must drop disgo's DEBUG
	// records: they show the token.
	GatewayOpts []gateway.ConfigOpt
	Log         *slog.Logger
	// Guilds delivers an interaction to its guild grain.
	Guilds func(ctx context.Context, in *clusterpb.Interaction) error
	// Voice delivers the bot's own voice event to the guild's session grain.
	Voice func(ctx context.Context, ev *clusterpb.VoiceEvent) error
	// Ordered runs the deliveries, in order per guild, never blocking the
	// grain: a guild whose backlog is full gets its interactions answered
	// busy. Default: a private one (64 per guild).
	Ordered *cluster.Ordered
	// Answers runs refusals and busy answers (Refuse), apart from the
	// deliveries so a full guild backlog can still be answered. Default: a
	// private one.
	Answers *cluster.Ordered
	// Refuse answers an interaction the bot cannot handle, within Discord's
	// 3 s (ctx carries that deadline): an autocomplete (kind
	// INTERACTION_KIND_AUTOCOMPLETE) with no choices, anything else with
	// message as an ephemeral reply. It is a Discord REST call: it runs on
	// Answers, never in the grain.
	Refuse func(ctx context.Context, id, token string, kind clusterpb.InteractionKind, message string) error
	// OnStatus is told when a shard becomes ready or stops being ready. It
	// runs in the grain and must not block.
	OnStatus func(shardID int, ready bool)
	// OnActive is told when the shard's activation starts on this member
	// (true, before any OnStatus) and when it has stopped (false): a member
	// of a cluster answers for the shards it runs. It runs in the grain and
	// must not block.
	OnActive func(shardID int, active bool)
	// OnReady is told the application ID and the bot's user ID of every
	// READY (application.id and user.id; "" when READY lacks one). Discord
	// documents no token format, so these are the only source of both. It
	// runs in the grain and must not block.
	OnReady func(appID, botUserID string)
	// Connected is told once per activation, at its first READY
	// (resumed false) or RESUMED (true: a session another activation
	// stored, after a failover or a handover), how long it took from the
	// activation, lease wait included. It runs in the grain and must not
	// block.
	Connected func(resumed bool, took time.Duration)
	// MaxLag is how long after Discord created it an interaction may reach
	// the grain; later ones are answered busy at once (the member is
	// behind on its gateway). Default 250 ms, as in cluster.yaml.
	MaxLag time.Duration
	// Admit is asked, on the gateway reader, whether the member has room
	// for interaction id (see internal/inflight); without room the shard
	// answers busy at once. Default: always room.
	Admit func(id string) bool
	Now   func() time.Time

	// Leases, when set, keeps one gateway connection per shard across the
	// cluster and carries the shard's Discord session from holder to
	// holder (store.Shards): an activation connects only once it holds
	// the shard's lease, and then resumes the session the previous holder
	// stored instead of identifying again. Without it every activation
	// identifies.
	Leases store.Shards
	// Member names this member in leases. Default: the actor system's
	// address (what the cluster's placement names members by).
	Member string
	// Alive tells whether a lease holder is still a member of the
	// cluster: one that is not (it died, or left without releasing) is
	// evicted at once instead of after LeaseTTL. Default: every holder is.
	Alive func(member string) bool
	// LeaseTTL is how long a lease outlives its last renewal. Default 10 s.
	LeaseTTL time.Duration
	// Solo says no other member can hold the shards (the single
	// provider): when the store does not answer, a shard connects without
	// its lease (identifying anew) and takes it once the store answers,
	// instead of leaving the bot offline.
	Solo bool
	// Stopping tells whether the member is stopping: an activation then
	// stops at once, and the request that made it fails (the caller's
	// retry finds the shard's next member), instead of connecting a shard
	// the member has just handed over. Default: never.
	Stopping func() bool
}

func (d *Deps) defaults() {
	if d.GatewayURL == "" {
		d.GatewayURL = DefaultGatewayURL
	}
	if d.ShardCount <= 0 {
		d.ShardCount = 1
	}
	if d.Intents == 0 {
		d.Intents = gateway.IntentGuilds | gateway.IntentGuildVoiceStates
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Guilds == nil {
		d.Guilds = func(context.Context, *clusterpb.Interaction) error { return errors.New("no guild delivery wired") }
	}
	if d.Voice == nil {
		d.Voice = func(context.Context, *clusterpb.VoiceEvent) error { return errors.New("no voice delivery wired") }
	}
	if d.Ordered == nil {
		d.Ordered = cluster.NewOrdered(64, 100_000)
	}
	if d.Answers == nil {
		d.Answers = cluster.NewOrdered(1, 1024)
	}
	if d.Refuse == nil {
		d.Refuse = func(context.Context, string, string, clusterpb.InteractionKind, string) error {
			return errors.New("no refusal wired")
		}
	}
	if d.OnStatus == nil {
		d.OnStatus = func(int, bool) {}
	}
	if d.OnReady == nil {
		d.OnReady = func(string, string) {}
	}
	if d.Connected == nil {
		d.Connected = func(bool, time.Duration) {}
	}
	if d.OnActive == nil {
		d.OnActive = func(int, bool) {}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Admit == nil {
		d.Admit = func(string) bool { return true }
	}
	if d.MaxLag <= 0 {
		d.MaxLag = 250 * time.Millisecond
	}
	if d.Stopping == nil {
		d.Stopping = func() bool { return false }
	}
	if d.Alive == nil {
		d.Alive = func(string) bool { return true }
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = defaultLeaseTTL
	}
}

// NewKind returns the shard kind. Shards never passivate: an idle shard
// still owns its guilds' gateway connection.
func NewKind(deps Deps) *pcluster.Kind {
	deps.defaults()
	d := &deps
	var depth []actor.MailboxMiddleware
	if d.Mailbox != nil {
		depth = append(depth, d.Mailbox)
	}
	return clusterpb.NewShardKind(func() clusterpb.Shard { return &grain{deps: d} }, 0, actor.WithMailbox(actor.Unbounded(depth...)))
}

// grain is one activation of a shard identity.
type grain struct {
	deps *Deps
	log  *slog.Logger
	id   int
	// invalid is set when the identity is not a shard of this deployment;
	// requests get it as their error until the grain has stopped.
	invalid error

	gw      gateway.Gateway
	root    *actor.RootContext
	self    *actor.PID
	stop    context.CancelFunc
	base    context.Context
	openWG  sync.WaitGroup
	opening bool

	ready bool
	botID snowflake.ID
	cache voiceCache

	// The Discord session, as the next holder of the shard needs it to
	// resume (see lease.go): from READY, or from the previous holder.
	sessionID, resumeURL, appID string
	seq                         int
	// dirty: handled events since the resume state was last stored.
	dirty bool
	// replaying: the shard resumed a stored session and RESUMED has not
	// come yet, so every dispatch is one Discord replays.
	replaying bool
	// leaseStop ends the lease loop; leaseEpoch is the epoch it took (0
	// before), read by Terminate to release it.
	leaseStop  context.CancelFunc
	leaseWG    sync.WaitGroup
	leaseEpoch atomic.Uint64
	saveNow    chan struct{}
	// fenced: another member took the shard; its session is theirs now.
	fenced bool
	// member names this member in the lease.
	member string
	// sends feeds the shard's sender (sendLoop), which makes the gateway
	// sends the grain must not wait for.
	sends  chan gateway.MessageDataVoiceStateUpdate
	sendWG sync.WaitGroup

	// fullRefused counts the interactions answered busy on the reader for
	// want of room (Deps.Admit) since there was room last.
	fullRefused atomic.Int64

	// closing is set, under closeMu, once the grain is being stopped: its
	// reader then answers interactions busy itself. Queued, they would
	// land behind the PoisonPill and be dropped with the mailbox, left to
	// Discord's replay on the shard's next holder, which resumes a second
	// or more later (disgo waits 1 s before it dials): too late to answer.
	// The reader holds closeMu while it queues an event, so every event
	// queued before the flag is ahead of the PoisonPill and handled.
	closeMu sync.Mutex
	closing bool

	lag lagMeter
	// shedding counts the interactions answered busy since the shard fell
	// behind; 0 when it is not behind.
	shedding int
	// activatedAt is when this activation started; connected is set at
	// its first READY or RESUMED (Deps.Connected is told once).
	activatedAt time.Time
	connected   bool
}

// Self-messages. They never leave the member, so they need not be protobuf.
type (
	// dispatch is a gateway event as the reader goroutine saw it.
	dispatch struct {
		at  time.Time
		seq int
		ev  gateway.EventData
	}
	// interactionCreate is an INTERACTION_CREATE with the payload disgo
	// parsed it from (nil when the raw event did not come), read only
	// when the parsed interaction lacks its channel.
	interactionCreate struct {
		gateway.EventInteractionCreate
		payload io.Reader
	}
	// closed is disgo giving up on the connection (it reconnects by itself
	// otherwise, without telling anyone).
	closed struct{ err error }
	// openEnded is the end of the open loop.
	openEnded struct{ err error }
)

// Init parses the identity and starts connecting. Connecting runs in a
// goroutine: Open blocks until READY (after a fixed 1 s delay in disgo), and
// the grain must answer Ensure meanwhile.
func (g *grain) Init(ctx pcluster.GrainContext) {
	g.log = g.deps.Log.With("shard", ctx.Identity())
	g.cache = voiceCache{}
	id, err := parseShardID(ctx.Identity(), g.deps.ShardCount)
	if err != nil {
		g.invalid = err
		g.log.Error("refusing shard identity; stopping", "err", err)
		// Poison, not Stop: the request that activated the grain is
		// already queued and gets the error instead of a timeout.
		ctx.Poison(ctx.Self())
		return
	}
	if g.deps.Stopping() {
		g.invalid = fmt.Errorf("shard %d: %w", id, ErrMemberStopping)
		ctx.Poison(ctx.Self())
		return
	}
	g.id = id
	g.activatedAt = g.deps.Now()
	g.deps.OnActive(id, true)
	g.root = ctx.ActorSystem().Root
	g.self = ctx.Self()
	g.base, g.stop = context.WithCancel(context.Background())
	local.Add(ctx.ActorSystem(), g.self, ctx.Identity())
	closers.Store(g.self, g)
	if g.deps.Leases == nil {
		g.log.Info("shard activated; connecting", "shards", g.deps.ShardCount)
		g.connect(nil)
		return
	}
	g.member = g.deps.Member
	if g.member == "" {
		g.member = ctx.ActorSystem().Address()
	}
	var leaseCtx context.Context
	leaseCtx, g.leaseStop = context.WithCancel(context.Background())
	g.saveNow = make(chan struct{}, 1)
	g.leaseWG.Add(1)
	go g.lease(leaseCtx)
	g.log.Info("shard activated; taking its lease", "shards", g.deps.ShardCount)
}

// connect makes the gateway and opens it: resuming the session in state
// (the lease's resume state) if it holds one, else identifying.
func (g *grain) connect(state []byte) {
	var resume []gateway.ConfigOpt
	if g.restore(state) {
		resume = []gateway.ConfigOpt{gateway.WithSessionID(g.sessionID), gateway.WithSequence(g.seq)}
		if g.resumeURL != "" {
			resume = append(resume, gateway.WithResumeURL(g.resumeURL))
		}
		g.log.Info("resuming the shard's Discord session", "seq", g.seq, "guilds", len(g.cache))
		g.replaying = true
		// A RESUME brings no READY: the IDs come from the state.
		if g.appID != "" || g.botID != 0 {
			g.deps.OnReady(g.appID, idText(g.botID))
		}
	}
	id, root, self := g.id, g.root, g.self
	onEvent := g.eventHandler(func(m any) { root.Send(self, m) })
	onClose := func(_ gateway.Gateway, err error, _ bool) {
		root.Send(self, &closed{err: err})
	}
	opts := append([]gateway.ConfigOpt{
		gateway.WithURL(g.deps.GatewayURL),
		gateway.WithShardID(id),
		gateway.WithShardCount(g.deps.ShardCount),
		gateway.WithIntents(g.deps.Intents),
		gateway.WithCloseHandler(onClose),
		// No transport compression: disgo v0.19.6's zstd-stream transport
		// closes its decoder while the reader may be inside it
		// (gateway_transports.go:195 vs klauspost zstd decoder.go:576), a
		// nil-pointer crash of the whole process on a reconnect; zlib-stream
		// resets its buffer under the reader the same way. Plain JSON costs
		// bandwidth, not a node.
		gateway.WithCompression(gateway.CompressionNone),
		// disgo logs every payload it sends at DEBUG, IDENTIFY and RESUME
		// with the token in clear: its floor is INFO whatever ours is.
		gateway.WithLogger(slog.New(telemetry.WithMinLevel(g.log.Handler(), slog.LevelInfo)).With("lib", "disgo")),
	}, g.deps.GatewayOpts...)
	// disgo fills an interaction's channel only from the optional
	// `channel` object; `channel_id` is in the raw payload alone. Raw
	// events come last so that no GatewayOpts can turn them off.
	opts = append(opts, gateway.WithEnableRawEvents(true))
	opts = append(opts, resume...)
	g.gw = gateway.New(g.deps.Token.Reveal(), onEvent, opts...)
	g.sends = make(chan gateway.MessageDataVoiceStateUpdate, sendQueue)
	g.sendWG.Add(1)
	go sendLoop(g.base, g.gw, g.sends, g.log, &g.sendWG)
	g.open()
}

// eventHandler is the gateway's event handler: it runs on disgo's reader
// goroutine and hands each event the grain needs to it with send. An
// interaction the member has no room for (Deps.Admit) is answered busy right
// there, before it waits in the grain's mailbox or costs anything more.
func (g *grain) eventHandler(send func(any)) gateway.EventHandlerFunc {
	var raw lastPayload
	now, admit := g.deps.Now, g.deps.Admit
	return func(_ gateway.Gateway, _ gateway.EventType, seq int, ev gateway.EventData) {
		g.closeMu.Lock()
		defer g.closeMu.Unlock()
		if g.closing {
			// The next holder gets the rest again from Discord (the
			// stored sequence is the last event handled): a replayed
			// interaction answered here fails to acknowledge there and
			// is dropped.
			if ev, ok := ev.(gateway.EventInteractionCreate); ok && ev.Interaction != nil {
				g.refuse(now(), ev.Interaction, commands.BusyMessage)
			}
			return
		}
		switch ev := ev.(type) {
		case gateway.EventRaw:
			if ev.EventType == gateway.EventTypeInteractionCreate {
				raw.keep(seq, ev.Payload)
			}
		case gateway.EventInteractionCreate:
			payload := raw.take(seq)
			if i := ev.Interaction; i != nil {
				if !admit(i.ID().String()) {
					g.full(now(), i)
					return
				}
				if n := g.fullRefused.Swap(0); n > 0 {
					g.log.Info("room for interactions again", "answered_busy", n)
				}
			}
			send(&dispatch{at: now(), seq: seq, ev: interactionCreate{ev, payload}})
		case gateway.EventReady, gateway.EventResumed, gateway.EventGuildCreate, gateway.EventGuildDelete,
			gateway.EventVoiceStateUpdate, gateway.EventVoiceServerUpdate:
			send(&dispatch{at: now(), seq: seq, ev: ev})
		}
	}
}

// beginClose turns the reader to busy answers (see closing). It returns
// once the reader queues nothing more.
func (g *grain) beginClose() {
	g.closeMu.Lock()
	g.closing = true
	g.closeMu.Unlock()
}

// full answers busy an interaction the member has no room for. It runs on
// the reader goroutine: it touches only what Init set and atomics. One line
// per episode.
func (g *grain) full(at time.Time, i discord.Interaction) {
	if g.fullRefused.Add(1) == 1 {
		g.log.Warn("member at its limit of interactions in flight; answering busy until there is room")
	}
	g.refuse(at, i, commands.BusyMessage)
}

func parseShardID(identity string, count int) (int, error) {
	id, err := strconv.Atoi(identity)
	// One shard must have one identity: "01" would be a second activation
	// of shard 1 with its own gateway connection.
	if err != nil || id < 0 || strconv.Itoa(id) != identity {
		return 0, fmt.Errorf("shard identity %q is not a shard number", identity)
	}
	if id >= count {
		return 0, fmt.Errorf("shard %d does not exist: the bot runs %d shards", id, count)
	}
	return id, nil
}

// open starts the open loop unless it runs already.
func (g *grain) open() {
	if g.opening || g.base.Err() != nil {
		return
	}
	g.opening = true
	g.openWG.Add(1)
	base, gw, log, root, self := g.base, g.gw, g.log, g.root, g.self
	go func() {
		defer g.openWG.Done()
		root.Send(self, &openEnded{err: openLoop(base, gw, log)})
	}()
}

// openLoop opens the gateway, retrying with jittered exponential backoff
// until it is open, the grain stops, or Discord refuses the shard for good
// (bad token, bad shard, disallowed intents: retrying cannot help and
// Discord counts the attempts).
func openLoop(ctx context.Context, gw gateway.Gateway, log *slog.Logger) error {
	for retry := 0; ; retry++ {
		attempt, cancel := context.WithTimeout(ctx, openTimeout)
		err := gw.Open(attempt)
		cancel()
		// Already connected: disgo's own reconnect won the race with a
		// restart of this loop.
		if err == nil || errors.Is(err, discord.ErrGatewayAlreadyConnected) {
			return nil
		}
		if ctx.Err() != nil || fatal(err) {
			return err
		}
		wait, _ := openBackoff.Delay(retry, rand.Float64())
		log.Warn("gateway open failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// fatal reports a close code after which Discord will not accept the shard.
func fatal(err error) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && !gateway.CloseEventCodeByCode(ce.Code).Reconnect
}

// Terminate closes the gateway connection. Without leases it closes with
// 1000, so Discord ends the session rather than waiting for it to time
// out. With leases the session outlives the connection (close 1012): the
// grain stores where it stopped and releases the lease, and the shard's
// next holder resumes the session, with the events Discord kept since.
func (g *grain) Terminate(pcluster.GrainContext) {
	if g.self == nil {
		return // an invalid identity: nothing started
	}
	// StopLocal did this already; other ends (a lost lease, the system
	// stopping) come here first.
	g.beginClose()
	if g.leaseStop != nil {
		// Before the release: a renewal must not follow it.
		g.leaseStop()
		g.leaseWG.Wait() // bounded: each store call is
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	g.stop()
	if g.gw != nil {
		done := make(chan struct{})
		go func() { g.openWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			g.log.Warn("open loop did not end in time")
		}
		close(g.sends)
		g.sendWG.Wait() // bounded: the base context is canceled
		if g.deps.Leases != nil {
			g.gw.CloseWithCode(ctx, websocket.CloseServiceRestart, "handing the shard over")
		} else {
			g.gw.Close(ctx)
		}
	}
	if epoch := g.leaseEpoch.Load(); epoch != 0 && !g.fenced {
		if err := g.deps.Leases.ReleaseShard(ctx, g.id, epoch, g.resumeState()); err != nil {
			g.log.Warn("shard lease not released; it lapses by itself", "err", err, "ttl", g.deps.LeaseTTL)
		}
	}
	g.setReady(false)
	g.deps.OnActive(g.id, false)
	local.Remove(g.self)
	closers.Delete(g.self)
	g.log.Info("shard stopped")
}

// ReceiveDefault handles gateway events and the connection's life.
func (g *grain) ReceiveDefault(ctx pcluster.GrainContext) {
	switch msg := ctx.Message().(type) {
	case *dispatch:
		// A panic would restart the grain: the generated actor comes back
		// without its state or ClusterInit, and the old connection runs on
		// unowned. One bad event is not worth that.
		defer func() {
			if r := recover(); r != nil {
				g.log.Error("panic handling a gateway event", "panic", r, "event", fmt.Sprintf("%T", msg.ev))
			}
		}()
		g.handle(msg.at, msg.ev)
		if msg.seq > 0 {
			g.seq, g.dirty = msg.seq, true
		}
	case *closed:
		g.setReady(false)
		if fatal(msg.err) {
			g.log.Error("Discord closed the shard for good; not reconnecting", "err", msg.err)
			return
		}
		g.log.Warn("gateway closed; reconnecting", "err", msg.err)
		g.open()
	case *leased:
		if msg.epoch != 0 {
			g.log.Info("shard lease taken; connecting", "epoch", msg.epoch)
		}
		g.connect(msg.state)
	case *stateDue:
		var state []byte
		if g.dirty || msg.force {
			state, g.dirty = g.resumeState(), false
		}
		msg.reply <- state // buffered for one
	case *leaseLost:
		g.fenced = true
		g.log.Error("another member took the shard; closing this connection", "err", msg.err)
		ctx.Poison(ctx.Self())
	case *openEnded:
		g.opening = false
		switch {
		case msg.err == nil, g.base.Err() != nil:
		case fatal(msg.err):
			g.log.Error("Discord refused the shard; not retrying", "err", msg.err)
		default:
			g.log.Warn("gateway open ended", "err", msg.err)
		}
	}
}

func (g *grain) setReady(ready bool) {
	if g.ready == ready {
		return
	}
	g.ready = ready
	g.log.Info("shard status", "ready", ready)
	g.deps.OnStatus(g.id, ready)
}

// syncStatus notices disgo reconnecting after a drop or op 7: it does that
// without calling the close handler, so its status is the only sign until
// RESUMED arrives.
func (g *grain) syncStatus() {
	if g.ready && g.gw.Status() != gateway.StatusReady {
		g.setReady(false)
	}
}

// UpdateVoice sends op 4 for a guild of this shard; an empty channel
// leaves voice. The bot always deafens itself: it never listens, and
// Discord then sends it no audio.
func (g *grain) UpdateVoice(req *clusterpb.VoiceRequest, _ pcluster.GrainContext) (*clusterpb.Ack, error) {
	if g.invalid != nil {
		return nil, g.invalid
	}
	msg, err := voiceUpdate(req, g.id, g.deps.ShardCount)
	if err != nil {
		return nil, err
	}
	// The send waits on disgo's gateway rate limiter: the sender makes
	// it, in order, and the grain goes on. A send that fails later is
	// logged; the session gives up on a join that never completes.
	if !g.ready {
		return nil, fmt.Errorf("shard %d: voice update for guild %s: %w", g.id, req.GetGuildId(), discord.ErrShardNotReady)
	}
	select {
	case g.sends <- msg:
		return &clusterpb.Ack{}, nil
	default:
		return nil, fmt.Errorf("shard %d: voice update for guild %s: %w", g.id, req.GetGuildId(), errSendQueueFull)
	}
}

var errSendQueueFull = errors.New("too many gateway sends waiting")

// ErrMemberStopping refuses an activation on a member that is stopping.
var ErrMemberStopping = errors.New("the member is stopping and takes no shard")

// sendLoop is the shard's sender: it sends the op 4s the grain queued, in
// order, each within sendTimeout, until the grain closes sends.
func sendLoop(base context.Context, gw gateway.Gateway, sends <-chan gateway.MessageDataVoiceStateUpdate, log *slog.Logger, wg *sync.WaitGroup) {
	defer wg.Done()
	for msg := range sends {
		if base.Err() != nil {
			continue // stopping: drain without sending
		}
		ctx, cancel := context.WithTimeout(base, sendTimeout)
		err := gw.Send(ctx, gateway.OpcodeVoiceStateUpdate, msg)
		cancel()
		if err != nil {
			log.Warn("voice update not sent", "err", err, "guild", msg.GuildID.String())
		}
	}
}

// voiceUpdate checks a request against the shard and builds the op 4.
func voiceUpdate(req *clusterpb.VoiceRequest, shardID, shardCount int) (gateway.MessageDataVoiceStateUpdate, error) {
	owner, err := ForGuild(req.GetGuildId(), shardCount)
	if err != nil {
		return gateway.MessageDataVoiceStateUpdate{}, fmt.Errorf("voice update: %w", err)
	}
	if owner != shardID {
		return gateway.MessageDataVoiceStateUpdate{}, fmt.Errorf("voice update for guild %s refused by shard %d: the guild belongs to shard %d of %d",
			req.GetGuildId(), shardID, owner, shardCount)
	}
	guild, _ := parseID(req.GetGuildId())
	msg := gateway.MessageDataVoiceStateUpdate{GuildID: guild, SelfDeaf: true}
	if req.GetChannelId() != "" {
		ch, err := parseID(req.GetChannelId())
		if err != nil {
			return gateway.MessageDataVoiceStateUpdate{}, fmt.Errorf("voice update: channel: %w", err)
		}
		msg.ChannelID = &ch
	}
	return msg, nil
}

// Ensure reports the shard's state; calling it is what activates the shard.
func (g *grain) Ensure(_ *clusterpb.Ack, ctx pcluster.GrainContext) (*clusterpb.ShardStatus, error) {
	if g.invalid != nil {
		return nil, g.invalid
	}
	g.syncStatus()
	return &clusterpb.ShardStatus{
		Ready:  g.ready,
		Guilds: int32(len(g.cache)),
		Member: ctx.ActorSystem().Address(),
	}, nil
}

// lastPayload keeps the raw payload of the last INTERACTION_CREATE until
// the parsed event of the same dispatch takes it. disgo calls the handler
// with the raw event and then the parsed one, both on the reader goroutine
// with the same sequence number (gateway.go:666-676), so keeping costs a
// pointer per interaction and nothing is decoded unless needed. The lock
// and the sequence check cover a reader of a closing connection still
// handling its last dispatch while the next connection's reader starts.
type lastPayload struct {
	mu      sync.Mutex
	seq     int
	payload io.Reader
}

func (l *lastPayload) keep(seq int, payload io.Reader) {
	l.mu.Lock()
	l.seq, l.payload = seq, payload
	l.mu.Unlock()
}

// take returns the payload kept for seq, if any, and forgets it.
func (l *lastPayload) take(seq int) io.Reader {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.payload
	l.payload = nil
	if l.seq != seq {
		return nil
	}
	return p
}

func (d *Deps) tracer() trace.Tracer {
	if d.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return d.Tracer
}
