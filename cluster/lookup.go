package cluster

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// activatorName is the actor every member asks to activate the identities
// it owns. It is the name protoactor's disthash lookup uses, and the
// messages are disthash's, so members running either lookup activate for
// each other during a rolling upgrade.
const activatorName = "partition-activator"

// activationTimeout is how long a member waits for another to activate an
// identity, as disthash does.
const activationTimeout = 5 * time.Second

// lookup is the member's identity lookup. It places identities exactly as
// protoactor's disthash does (rendezvous hashing over the members that
// host the kind, asked of the owner's activator), but keeps its own
// activations differently, because a member holds thousands of mostly idle
// guild grains and each byte per grain counts (issue 9: 1.5 KiB each):
//
//   - every activation of a kind is spawned from one Props: disthash copies
//     the kind's Props for each activation to carry its identity (about
//     270 B each); here the identity is read back from the activation's
//     name, kind/identity$n;
//   - n never repeats in a member's life, so the PID of a stopped
//     activation can never reach the next activation of the same identity;
//   - the activations are one map entry each (disthash keeps a map entry,
//     a copy of the key and a child entry in its placement actor);
//   - the owner activates its own identities without a round trip through
//     an actor;
//   - kinds with an idle timeout passivate by one member-wide sweep instead
//     of a receive-timeout timer (and its context extras) per activation.
type lookup struct {
	idle map[string]time.Duration
	log  *slog.Logger

	c         *pcluster.Cluster
	self      string
	sub       *eventstream.Subscription
	activator *actor.PID
	stop      chan struct{}
	stopOnce  sync.Once
	swept     chan struct{} // closed when the sweep loop has returned

	mu    sync.RWMutex
	rdv   *pcluster.Rendezvous
	kinds map[string]*localKind
	seq   uint64
}

// localKind is one kind's activations on this member.
type localKind struct {
	l         *lookup
	activated *pcluster.ActivatedKind
	props     *actor.Props
	// quietSweeps is how many sweeps in a row without a message passivate
	// an activation (0: never).
	quietSweeps int32
	active      map[string]*activation // by identity
}

// activation is one live activation.
type activation struct {
	pid *actor.PID
	// quiet counts the sweeps since the activation's last message. Only
	// the activation's mailbox changes it, but from whichever goroutine
	// runs the mailbox at the time.
	quiet atomic.Int32
}

// LeanGrain is the actor of a lean kind (NewKind).
type LeanGrain interface {
	actor.Actor
	// Activated gives the activation its identity and cluster, after
	// Started (again after a restart) and before any other message.
	Activated(identity string, c *pcluster.Cluster)
}

// leanKind is what NewKind recorded of a lean kind.
type leanKind struct {
	produce func() LeanGrain
	opts    []actor.PropsOption
}

// leanKinds are the lean kinds, by the Props of their pcluster.Kind.
var leanKinds sync.Map // *actor.Props → leanKind

// NewKind returns a lean kind: its activations carry no receiver
// middleware and no cluster identity in their context, which is what an
// activation of a kind made by protoactor's cluster.NewKind pays (about
// 180 B of context extras, since protoactor keeps a decorated context for
// any middleware) besides its generated actor and grain context (about
// 150 B): for a guild grain that otherwise keeps a few hundred bytes, half
// of an idle guild's cost. The member's lookup wraps each grain in a small
// shell that does the cluster middleware's work (identity, PID cache,
// passivation) from the activation's name. Lean kinds need that lookup.
func NewKind(name string, produce func() LeanGrain, opts ...actor.PropsOption) *pcluster.Kind {
	props := actor.PropsFromProducer(func() actor.Actor {
		panic("cluster: kind " + name + " is lean and needs the member's own identity lookup")
	}, opts...)
	leanKinds.Store(props, leanKind{produce: produce, opts: opts})
	return &pcluster.Kind{Kind: name, Props: props}
}

// leanShell is an activation of a lean kind.
type leanShell struct {
	inner LeanGrain
	k     *localKind
}

// Receive does what protoactor's cluster middleware (cluster/config.go
// handleStarted, handleStopped) and this lookup's middleware do for other
// kinds.
func (s *leanShell) Receive(ctx actor.Context) {
	k := s.k
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.inner.Receive(ctx)
		_, identity, _ := parseName(ctx.Self().Id)
		s.inner.Activated(identity, k.l.c)
		return
	case sweepTick:
		if m.a.quiet.Add(1) >= k.quietSweeps {
			ctx.Poison(ctx.Self())
		}
		return
	case *actor.Stopped:
		self := ctx.Self()
		_, identity, _ := parseName(self.Id)
		k.l.c.ActorSystem.EventStream.Publish(&pcluster.ActivationTerminating{
			Pid:             self,
			ClusterIdentity: pcluster.NewClusterIdentity(identity, k.activated.Kind),
		})
		k.l.c.PidCache.RemoveByValue(identity, k.activated.Kind, self)
		s.inner.Receive(ctx)
		k.l.stopped(k, self)
		return
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if k.quietSweeps > 0 {
			k.l.touch(k, ctx.Self())
		}
	}
	s.inner.Receive(ctx)
}

// sweepTick asks an activation whether it has been idle long enough; the
// lookup's middleware answers it and the grain never sees it.
type sweepTick struct{ a *activation }

func newLookup(idle map[string]time.Duration, log *slog.Logger) *lookup {
	return &lookup{idle: idle, log: log, stop: make(chan struct{}), swept: make(chan struct{})}
}

// Setup is called by protoactor's StartMember once the remote listens.
func (l *lookup) Setup(c *pcluster.Cluster, kinds []string, _ bool) {
	l.c, l.self = c, c.ActorSystem.Address()
	l.rdv = pcluster.NewRendezvous()
	l.kinds = make(map[string]*localKind, len(kinds))
	period := l.sweepPeriod()
	for _, name := range kinds {
		ak := c.GetClusterKind(name)
		k := &localKind{l: l, activated: ak, active: map[string]*activation{}}
		if idle := l.idle[name]; idle > 0 {
			k.quietSweeps = int32((idle + period - 1) / period)
		}
		if lk, lean := leanKinds.Load(ak.Props); lean {
			lk := lk.(leanKind)
			k.props = actor.PropsFromProducer(func() actor.Actor { return &leanShell{inner: lk.produce(), k: k} },
				append([]actor.PropsOption{actor.WithDispatcher(Dispatcher)}, lk.opts...)...)
		} else {
			// protoactor's cluster middleware is in the kind's Props and
			// reads the identity from the context.
			k.props = ak.Props.Clone(
				actor.WithOnInit(func(ctx actor.Context) {
					kind, identity, _ := parseName(ctx.Self().Id)
					pcluster.SetClusterIdentity(ctx, pcluster.NewClusterIdentity(identity, kind))
				}),
				actor.WithReceiverMiddleware(l.middleware(k)),
				actor.WithDispatcher(Dispatcher),
			)
		}
		l.kinds[name] = k
	}
	l.activator, _ = c.ActorSystem.Root.SpawnNamed(actor.PropsFromFunc(l.receive), activatorName)
	l.sub = c.ActorSystem.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			l.topology(t)
		}
	})
	if period > 0 {
		go l.sweep(period)
	} else {
		close(l.swept)
	}
}

// sweepPeriod is a quarter of the shortest idle timeout: an activation
// passivates between its timeout and a quarter more after its last
// message.
func (l *lookup) sweepPeriod() time.Duration {
	var p time.Duration
	for _, idle := range l.idle {
		if idle > 0 && (p == 0 || idle/4 < p) {
			p = max(idle/4, time.Millisecond)
		}
	}
	return p
}

// parseName splits an activation's name, kind/identity$n. Kind names hold
// no slash; identities may hold anything.
func parseName(name string) (kind, identity string, ok bool) {
	slash, dollar := strings.IndexByte(name, '/'), strings.LastIndexByte(name, '$')
	if slash < 0 || dollar < slash {
		return "", "", false
	}
	return name[:slash], name[slash+1 : dollar], true
}

// Get returns the PID of ci's activation, activating it on its owner;
// nil when no member hosts the kind or the owner did not answer.
func (l *lookup) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	l.mu.RLock()
	rdv := l.rdv
	l.mu.RUnlock()
	owner := rdv.GetByClusterIdentity(ci)
	switch owner {
	case "":
		return nil
	case l.self:
		return l.activate(ci)
	}
	res, err := l.c.ActorSystem.Root.RequestFuture(actor.NewPID(owner, activatorName),
		&pcluster.ActivationRequest{ClusterIdentity: ci}, activationTimeout).Result()
	if err != nil {
		return nil
	}
	if r, ok := res.(*pcluster.ActivationResponse); ok && !r.Failed {
		return r.Pid
	}
	return nil
}

// activate returns ci's local activation, spawning it if there is none.
func (l *lookup) activate(ci *pcluster.ClusterIdentity) *actor.PID {
	l.mu.RLock()
	k := l.kinds[ci.Kind]
	var a *activation
	if k != nil {
		a = k.active[ci.Identity]
	}
	l.mu.RUnlock()
	if a != nil {
		return a.pid
	}
	if k == nil {
		l.log.Error("activation of a kind this member does not host", "kind", ci.Kind, "identity", ci.Identity)
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := k.active[ci.Identity]; a != nil {
		return a.pid
	}
	l.seq++
	name := ci.Kind + "/" + ci.Identity + "$" + strconv.FormatUint(l.seq, 36)
	pid, err := l.c.ActorSystem.Root.SpawnNamed(k.props, name)
	if err != nil {
		l.log.Error("spawn activation", "kind", ci.Kind, "identity", ci.Identity, "err", err)
		return nil
	}
	// Keyed by the identity within the PID's name, so the key costs
	// nothing more.
	_, identity, _ := parseName(pid.Id)
	k.active[identity] = &activation{pid: pid}
	k.activated.Inc()
	return pid
}

// middleware follows each activation of k: it counts the sweeps it has
// been idle for, passivates it when they reach k's timeout (as a receive
// timeout would, by handing the grain actor.ReceiveTimeout), and forgets
// it once it has stopped.
func (l *lookup) middleware(k *localKind) actor.ReceiverMiddleware {
	timeout := actor.WrapEnvelope(&actor.ReceiveTimeout{})
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch m := env.Message.(type) {
			case sweepTick:
				if m.a.quiet.Add(1) >= k.quietSweeps {
					next(c, timeout)
				}
				return
			case *actor.Stopped:
				next(c, env)
				l.stopped(k, c.Self())
				return
			case actor.SystemMessage, actor.AutoReceiveMessage:
			default:
				if k.quietSweeps > 0 {
					l.touch(k, c.Self())
				}
			}
			next(c, env)
		}
	}
}

// touch marks pid's activation as having had a message.
func (l *lookup) touch(k *localKind, pid *actor.PID) {
	_, identity, _ := parseName(pid.Id)
	l.mu.RLock()
	a := k.active[identity]
	l.mu.RUnlock()
	if a != nil && a.pid == pid {
		a.quiet.Store(0)
	}
}

// stopped forgets pid's activation and tells every member, so that their
// PID caches drop it (as disthash does).
func (l *lookup) stopped(k *localKind, pid *actor.PID) {
	_, identity, _ := parseName(pid.Id)
	l.mu.Lock()
	a := k.active[identity]
	if a != nil && a.pid == pid {
		delete(k.active, identity)
	}
	l.mu.Unlock()
	if a == nil || a.pid != pid {
		return
	}
	k.activated.Dec()
	l.c.MemberList.BroadcastEvent(&pcluster.ActivationTerminated{
		Pid:             pid,
		ClusterIdentity: pcluster.NewClusterIdentity(identity, k.activated.Kind),
	}, true)
}

// receive is the activator: other members ask it for the identities this
// member owns.
func (l *lookup) receive(ctx actor.Context) {
	req, ok := ctx.Message().(*pcluster.ActivationRequest)
	if !ok {
		return
	}
	if pid := l.activate(req.ClusterIdentity); pid != nil {
		ctx.Respond(&pcluster.ActivationResponse{Pid: pid})
		return
	}
	ctx.Respond(&pcluster.ActivationResponse{Failed: true})
}

// topology places identities on the new members and stops the activations
// this member no longer owns, as disthash does. It runs on the
// publisher's goroutine and does not block.
func (l *lookup) topology(t *pcluster.ClusterTopology) {
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(t.Members)
	var moved []*actor.PID
	l.mu.Lock()
	l.rdv = rdv
	for name, k := range l.kinds {
		for identity, a := range k.active {
			if rdv.GetByClusterIdentity(pcluster.NewClusterIdentity(identity, name)) != l.self {
				moved = append(moved, a.pid)
			}
		}
	}
	l.mu.Unlock()
	for _, pid := range moved {
		l.c.ActorSystem.Root.Poison(pid)
	}
}

// sweep ticks every activation of an idle-passivated kind each period.
func (l *lookup) sweep(period time.Duration) {
	defer close(l.swept)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.sweepOnce()
		}
	}
}

// sweepOnce sends each activation of an idle-passivated kind a tick,
// which its middleware counts.
func (l *lookup) sweepOnce() {
	var ticks []sweepTick
	l.mu.RLock()
	for _, k := range l.kinds {
		if k.quietSweeps > 0 {
			for _, a := range k.active {
				ticks = append(ticks, sweepTick{a})
			}
		}
	}
	l.mu.RUnlock()
	root := l.c.ActorSystem.Root
	for _, tick := range ticks {
		root.Send(tick.a.pid, tick)
	}
}

// RemovePid is protoactor's report of a PID that answered as dead: every
// member's PID cache drops it, as disthash does.
func (l *lookup) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	l.c.MemberList.BroadcastEvent(&pcluster.ActivationTerminated{Pid: pid, ClusterIdentity: ci}, true)
}

// Shutdown stops the sweep and the activator and poisons every local
// activation, waiting for each; protoactor calls it on a graceful stop
// only, Member.Stop always (close).
func (l *lookup) Shutdown() {
	if l.c == nil {
		return
	}
	l.close()
	l.mu.RLock()
	var pids []*actor.PID
	for _, k := range l.kinds {
		for _, a := range k.active {
			pids = append(pids, a.pid)
		}
	}
	l.mu.RUnlock()
	root := l.c.ActorSystem.Root
	futures := make([]*actor.Future, len(pids))
	for i, pid := range pids {
		futures[i] = root.PoisonFuture(pid)
	}
	for _, f := range futures {
		_ = f.Wait()
	}
}

// close stops the sweep and the activator without touching activations.
func (l *lookup) close() {
	if l.c == nil {
		return
	}
	l.stopOnce.Do(func() {
		close(l.stop)
		l.c.ActorSystem.EventStream.Unsubscribe(l.sub)
		l.c.ActorSystem.Root.Stop(l.activator)
		<-l.swept
	})
}
