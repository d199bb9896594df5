package cluster

import (
	"sync"

	"github.com/asynkron/protoactor-go/eventstream"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// Placement tells which identities this member owns, as protoactor's
// disthash lookup places them (rendezvous hashing over the members that
// host the kind), and signals every change of the membership. A member
// uses it to do the work of what it owns only: wake its sessions, keep its
// shards, and hand over the activations the cluster now places elsewhere.
type Placement struct {
	self   string
	events *eventstream.EventStream
	sub    *eventstream.Subscription

	mu       sync.RWMutex
	rdv      *pcluster.Rendezvous
	members  map[string]bool // addresses
	watchers []chan struct{}
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
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			p.update(t.Members)
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
	addrs := make(map[string]bool, len(members))
	for _, m := range members {
		addrs[m.Address()] = true
	}
	p.mu.Lock()
	p.rdv, p.members = rdv, addrs
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

// Member reports whether a member at address is in the cluster now.
func (p *Placement) Member(address string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.members[address]
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
