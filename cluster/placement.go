package cluster

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/asynkron/protoactor-go/eventstream"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
)

// Placement tells which identities this member owns, as the identity
// lookup places them (rendezvous hashing over the members that
// host the kind), and signals every change of the membership. A member
// uses it to do the work of what it owns only: wake its sessions, keep its
// shards, and hand over the activations the cluster now places elsewhere.
type Placement struct {
	self   string
	events *eventstream.EventStream
	sub    *eventstream.Subscription

	mu       sync.RWMutex
	rdv      *pcluster.Rendezvous
	members  map[string]string // address → member ID
	watchers []chan struct{}
	// lost are members whose connection from here dropped and has not
	// come back (remote's endpoint events), by member ID: a new member at
	// a lost one's address (a restarted container keeps its name) is not
	// lost.
	lost map[string]bool
}

// NewPlacement follows c's membership from now on; call it once the member
// has started.
func NewPlacement(c *pcluster.Cluster) *Placement {
	p := &Placement{
		self:   c.ActorSystem.Address(),
		events: c.ActorSystem.EventStream,
	}
	// Subscribed before reading the current members, so no change falls
	// between the two.
	p.sub = p.events.Subscribe(func(ev any) {
		switch ev := ev.(type) {
		case *pcluster.ClusterTopology:
			p.update(ev.Members)
		case *remote.EndpointTerminatedEvent:
			p.setLost(ev.Address, true)
		case *remote.EndpointConnectedEvent:
			p.setLost(ev.Address, false)
		}
	})
	p.update(c.MemberList.Members().Members())
	return p
}

// update runs on the publisher's goroutine (the provider's): it must not
// block.
func (p *Placement) update(members []*pcluster.Member) {
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(members)
	addrs := make(map[string]string, len(members))
	ids := make(map[string]bool, len(members))
	for _, m := range members {
		addrs[m.Address()] = m.Id
		ids[m.Id] = true
	}
	p.mu.Lock()
	p.rdv, p.members = rdv, addrs
	for id := range p.lost {
		if !ids[id] {
			delete(p.lost, id)
		}
	}
	watchers := p.watchers
	p.mu.Unlock()
	for _, w := range watchers {
		select {
		case w <- struct{}{}:
		default: // one signal pending covers any number of changes
		}
	}
}

// Owns reports whether this member is where the cluster places
// kind/identity now.
func (p *Placement) Owns(kind, identity string) bool {
	p.mu.RLock()
	rdv := p.rdv
	p.mu.RUnlock()
	return rdv.GetByClusterIdentity(pcluster.NewClusterIdentity(identity, kind)) == p.self
}

// setLost records the member at address now as lost or back; an address
// no member has is nothing to record.
func (p *Placement) setLost(address string, lost bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.members[address]
	switch {
	case !ok:
	case !lost:
		delete(p.lost, id)
	default:
		if p.lost == nil {
			p.lost = map[string]bool{}
		}
		p.lost[id] = true
	}
}

// ErrOwnerUnreachable: the member the cluster places a grain on has lost
// its connection from this member and is not out of the membership yet.
var ErrOwnerUnreachable = errors.New("the member that owns this grain is unreachable; it is probably leaving the cluster")

// Reachable returns ErrOwnerUnreachable when the member that owns
// kind/identity lost its connection from this one (it died, most likely,
// and the membership will drop it within its lease TTL). A call to it now
// would stick for protoactor's fixed 5 s activation timeout whatever the
// caller's deadline (protoactor), holding up what is queued behind it:
// callers answer "busy" at once instead. protoactor's gossip dials every
// member each 300 ms, so a member that was only cut off for a moment is
// reachable again as soon as its connection is back.
func (p *Placement) Reachable(kind, identity string) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.lost) == 0 {
		return nil
	}
	if owner := p.rdv.GetByClusterIdentity(pcluster.NewClusterIdentity(identity, kind)); p.lost[p.members[owner]] {
		return fmt.Errorf("%s/%s on %s: %w", kind, identity, owner, ErrOwnerUnreachable)
	}
	return nil
}

// Member reports whether a member at address is in the cluster now.
func (p *Placement) Member(address string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.members[address]
	return ok
}

// Members returns the addresses of the cluster's members now, sorted.
func (p *Placement) Members() []string {
	p.mu.RLock()
	out := make([]string, 0, len(p.members))
	for a := range p.members {
		out = append(out, a)
	}
	p.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Watch returns a channel signalled after each change of the membership
// from now on, and once at once (for the membership as it is); one signal
// may stand for several changes.
func (p *Placement) Watch() <-chan struct{} {
	w := make(chan struct{}, 1)
	w <- struct{}{}
	p.mu.Lock()
	p.watchers = append(p.watchers, w)
	p.mu.Unlock()
	return w
}

// Close stops following the membership.
func (p *Placement) Close() { p.events.Unsubscribe(p.sub) }
