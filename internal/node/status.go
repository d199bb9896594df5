package node

import (
	"context"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/status"
)

// clusterStatus asks every member of the cluster for its status (/status).
func (n *Node) clusterStatus(ctx context.Context) (status.Cluster, error) {
	p := n.statusFrom.Load()
	if p == nil {
		return status.Cluster{}, status.ErrNotRunning
	}
	return status.Ask(ctx, n.member.System, n.cfg.Cluster.Name, p.Members(), statusAskTimeout), nil
}

// statusAskTimeout bounds one member's answer; the HTTP request's own
// deadline may be shorter.
const statusAskTimeout = 2 * time.Second

// memberStatus describes this member from what it already tracks. It runs
// on the status actor's behalf, off its mailbox: it reads state under
// locks and gathers the metrics registry, and waits on nothing else.
func (n *Node) memberStatus() status.Member {
	rep := n.ready.Snapshot()
	m := status.Member{
		ID:        n.member.System.ID,
		Address:   n.member.System.Address(),
		Admin:     n.adminSrv.Addr(),
		Provider:  string(n.cfg.Cluster.Provider),
		Version:   status.Version(),
		StartedAt: n.started.UTC(),
		Ready:     rep.Ready,
	}
	for name, c := range rep.Components {
		m.Components = append(m.Components, status.Component{Name: name, Ready: c.Ready, Detail: c.Detail})
	}
	sort.Slice(m.Components, func(i, j int) bool { return m.Components[i].Name < m.Components[j].Name })
	n.shardMu.Lock()
	for id, ready := range n.shardReady {
		m.Shards = append(m.Shards, status.Shard{ID: id, Ready: ready})
	}
	n.shardMu.Unlock()
	sort.Slice(m.Shards, func(i, j int) bool { return m.Shards[i].ID < m.Shards[j].ID })
	// A registry that fails to gather some collector still returns the
	// others.
	families, _ := n.metrics.Registry.Gather()
	m.FromMetrics(families)
	store := rep.Components[compStore]
	m.Store.Kind, m.Store.Ready, m.Store.Detail = string(n.cfg.Store.Kind), store.Ready, store.Detail
	return m
}

// loopback reports whether an admin address binds loopback only: a host
// that is a loopback IP or "localhost". An empty host binds every
// interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
