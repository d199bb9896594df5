// Package membership keeps a cluster member registered in etcd under a
// lease and follows the others, without anything of protoactor: the
// cluster package turns what it publishes into protoactor's topology.
// Apart so that its tests, which run gRPC clients, run in a process of
// their own (protoactor's remote replaces gRPC's global logger, a data
// race with any gRPC client already running in the process).
package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
)

// ErrEtcdUnavailable wraps a failure to join because etcd did not answer.
var ErrEtcdUnavailable = errors.New("etcd unavailable")

// Record is a member's value in etcd: where to reach it and which
// grain kinds it hosts.
type Record struct {
	ID    string   `json:"id"`
	Host  string   `json:"host"`
	Port  int      `json:"port"`
	Kinds []string `json:"kinds"`
}

// EtcdOptions configure a membership in etcd.
type EtcdOptions struct {
	Endpoints []string
	// Prefix is where the cluster's members live: Prefix + "<id>".
	Prefix   string
	LeaseTTL time.Duration
	// CallTimeout bounds each etcd call.
	CallTimeout time.Duration
	Log         *slog.Logger
}

// Etcd keeps one member registered in etcd under a lease and
// tells publish the whole membership each time it changes.
//
// Our own, rather than protoactor's etcd provider, for what PITFALLS
// records of it: a fixed 3 s lease, a lease left behind on shutdown, and
// silence when the member is ejected (its ID is then blocked by everyone
// else, for good, while it keeps serving).
//
// An etcd outage is not an ejection: the member keeps the last membership
// it saw and its lease is kept alive again when etcd answers. Only etcd
// saying the lease or the member's key is gone ejects it.
type Etcd struct {
	opts    EtcdOptions
	client  *clientv3.Client
	self    Record
	lease   clientv3.LeaseID
	publish func([]Record)
	retry   supervisor.Backoff

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	leaving atomic.Bool
	left    sync.Once

	ejectOnce sync.Once
	ejected   chan struct{}
}

// EtcdClient dials lazily: calls fail after their timeout while etcd is
// unreachable. gRPC's reconnect backoff is capped at 1 s (its default
// grows to 2 min), so a member reconnects, and keeps its lease alive,
// within a second of etcd's return.
func EtcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		PermitWithoutStream:  true,
		// The client's own logs are left out; what matters (joins,
		// losses, outages) is logged here.
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
}

// JoinEtcd registers self and publishes the membership it finds (self
// included) before it returns; ejected is closed if etcd later drops the
// member.
func JoinEtcd(ctx context.Context, opts EtcdOptions, self Record, publish func([]Record), ejected chan struct{}) (_ *Etcd, err error) {
	client, err := EtcdClient(opts.Endpoints)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	m := &Etcd{
		opts: opts, client: client, self: self, publish: publish, ejected: ejected,
		retry: supervisor.Backoff{Base: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5},
	}
	defer func() {
		if err != nil {
			m.revoke()
			_ = client.Close()
		}
	}()
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, opts.CallTimeout) }
	c, cancel := call()
	grant, err := client.Grant(c, int64(opts.LeaseTTL/time.Second))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: lease at %s: %w", ErrEtcdUnavailable, strings.Join(opts.Endpoints, ","), err)
	}
	m.lease = grant.ID
	value, err := json.Marshal(self)
	if err != nil {
		return nil, err
	}
	c, cancel = call()
	_, err = client.Put(c, m.key(self.ID), string(value), clientv3.WithLease(grant.ID))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: register member: %w", ErrEtcdUnavailable, err)
	}
	c, cancel = call()
	members, rev, err := m.list(c)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: list members: %w", ErrEtcdUnavailable, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	keep, err := client.KeepAlive(runCtx, grant.ID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("%w: keep lease alive: %w", ErrEtcdUnavailable, err)
	}
	m.cancel = stop
	publish(Sorted(members))
	m.wg.Add(2)
	go m.keepAlive(runCtx, keep)
	go m.watch(runCtx, members, rev)
	opts.Log.Info("joined the cluster in etcd", "members", len(members), "lease_ttl", opts.LeaseTTL)
	return m, nil
}

func (m *Etcd) key(id string) string { return m.opts.Prefix + id }

// list reads every member and the revision to watch from.
func (m *Etcd) list(ctx context.Context) (map[string]Record, int64, error) {
	res, err := m.client.Get(ctx, m.opts.Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	members := make(map[string]Record, len(res.Kvs))
	for _, kv := range res.Kvs {
		if r, ok := m.decode(kv); ok {
			members[r.ID] = r
		}
	}
	return members, res.Header.Revision, nil
}

// decode reads one member's value; a value it cannot read is left out
// (and said), not taken as a member no one can reach.
func (m *Etcd) decode(kv *mvccpb.KeyValue) (Record, bool) {
	var r Record
	if err := json.Unmarshal(kv.Value, &r); err != nil || r.ID == "" || r.ID != strings.TrimPrefix(string(kv.Key), m.opts.Prefix) {
		m.opts.Log.Warn("unreadable member record in etcd; ignored", "key", string(kv.Key), "err", err)
		return r, false
	}
	return r, true
}

// Sorted lists members by ID, as providers publish them.
func Sorted(members map[string]Record) []Record {
	out := make([]Record, 0, len(members))
	for _, r := range members {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// keepAlive renews the lease. The client closes keep when etcd says the
// lease is gone, or when etcd has not answered for a whole TTL; only the
// first ejects the member: after an outage the lease is usually still
// there (etcd renews leases when it elects a leader), and keeping it alive
// again is all that is needed.
func (m *Etcd) keepAlive(ctx context.Context, keep <-chan *clientv3.LeaseKeepAliveResponse) {
	defer m.wg.Done()
	for {
		for range keep {
		}
		// A pause even when etcd answers at once: a channel that closes
		// again at once must not make this a busy loop.
		if !m.sleep(ctx, 0) {
			return
		}
		var ok bool
		if keep, ok = m.renew(ctx); !ok {
			return
		}
	}
}

// renew waits until etcd answers, then keeps the lease alive again, or
// ejects the member if the lease is gone.
func (m *Etcd) renew(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, bool) {
	for attempt := 0; ; attempt++ {
		alive, err := m.leaseAlive(ctx)
		if err == nil && !alive {
			m.eject("lease expired")
			return nil, false
		}
		if err == nil {
			var keep <-chan *clientv3.LeaseKeepAliveResponse
			if keep, err = m.client.KeepAlive(ctx, m.lease); err == nil {
				if attempt > 0 {
					m.opts.Log.Info("etcd answers again; the member's lease is kept")
				}
				return keep, true
			}
		}
		if attempt == 0 {
			m.opts.Log.Warn("etcd does not answer; keeping the last membership seen", "err", err)
		}
		if !m.sleep(ctx, attempt) {
			return nil, false
		}
	}
}

// leaseAlive asks etcd whether the lease still exists.
func (m *Etcd) leaseAlive(ctx context.Context) (bool, error) {
	c, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	res, err := m.client.TimeToLive(c, m.lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return res.TTL > 0, nil
}

// watch follows the membership from rev on, and lists it again whenever
// the watch breaks (etcd restarted, lost its leader, compacted rev).
func (m *Etcd) watch(ctx context.Context, members map[string]Record, rev int64) {
	defer m.wg.Done()
	for attempt := 0; ; attempt++ {
		w := m.client.Watch(clientv3.WithRequireLeader(ctx), m.opts.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for res := range w {
			if res.Err() != nil {
				break
			}
			attempt = 0
			for _, ev := range res.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), m.opts.Prefix)
				switch ev.Type {
				case clientv3.EventTypeDelete:
					delete(members, id)
				case clientv3.EventTypePut:
					if r, ok := m.decode(ev.Kv); ok {
						members[r.ID] = r
					}
				}
			}
			rev = res.Header.Revision
			m.changed(members)
		}
		if ctx.Err() != nil {
			return
		}
		if !m.sleep(ctx, attempt) {
			return
		}
		c, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
		listed, listedRev, err := m.list(c)
		cancel()
		if err != nil {
			continue // the last membership seen stands meanwhile
		}
		members, rev = listed, listedRev
		m.changed(members)
	}
}

// changed publishes a new membership, or ejects the member if its own key
// is gone from it; nothing once the member is leaving.
func (m *Etcd) changed(members map[string]Record) {
	if m.leaving.Load() {
		// The member drains: it still serves its own activations until
		// they have stopped, so it must keep seeing itself.
		return
	}
	if _, ok := members[m.self.ID]; !ok {
		m.eject("member key removed")
		return
	}
	m.publish(Sorted(members))
}

// eject tells the node the membership is lost: the other members have
// dropped this member and will refuse its ID from now on, so it has to
// rejoin as a new member.
func (m *Etcd) eject(reason string) {
	if m.leaving.Load() {
		return
	}
	m.ejectOnce.Do(func() {
		m.opts.Log.Error("dropped from the cluster; this member must rejoin under a new ID", "reason", reason, "member", m.self.ID)
		close(m.ejected)
	})
}

// sleep waits the retry delay of attempt, or returns false when ctx ends.
func (m *Etcd) sleep(ctx context.Context, attempt int) bool {
	d, _ := m.retry.Delay(attempt, rand.Float64())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// revoke deletes the member's key at once (its lease with it), so the
// others see it leave now rather than a TTL later.
func (m *Etcd) revoke() {
	if m.lease == 0 {
		return
	}
	c, cancel := context.WithTimeout(context.Background(), m.opts.CallTimeout)
	defer cancel()
	if _, err := m.client.Revoke(c, m.lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		m.opts.Log.Warn("could not revoke the member's lease; the others see it leave within the lease TTL", "err", err)
	}
}

// Leave revokes the lease and closes the client; safe to call more than
// once.
func (m *Etcd) Leave() {
	m.left.Do(func() {
		m.leaving.Store(true)
		m.revoke()
		m.cancel()
		m.wg.Wait()
		_ = m.client.Close()
	})
}

// Lease is the member's etcd lease (tests drop it from outside).
func (m *Etcd) Lease() clientv3.LeaseID { return m.lease }
