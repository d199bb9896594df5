package cluster

import (
	"context"
	"errors"
	"fmt"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster/membership"
)

// memberRecord is what a provider knows of a member.
type memberRecord = membership.Record

// sorted lists members by ID, as providers publish them.
var sorted = membership.Sorted

// etcdProvider is protoactor's ClusterProvider over membership.Etcd.
type etcdProvider struct {
	opts       membership.EtcdOptions
	ejected    chan struct{}
	membership *membership.Etcd
}

func (p *etcdProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("etcd provider: %w", err)
	}
	self := membership.Record{ID: c.ActorSystem.ID, Host: host, Port: port, Kinds: c.GetClusterKinds()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*p.opts.CallTimeout)
	defer cancel()
	// publish is called from one goroutine at a time (the join, then the
	// watch), as protoactor's member list needs.
	publish := func(members []membership.Record) {
		ms := make(pcluster.Members, 0, len(members))
		for _, r := range members {
			ms = append(ms, &pcluster.Member{Id: r.ID, Host: r.Host, Port: int32(r.Port), Kinds: r.Kinds})
		}
		c.MemberList.UpdateClusterTopology(ms)
	}
	p.membership, err = membership.JoinEtcd(ctx, p.opts, self, publish, p.ejected)
	return err
}

func (p *etcdProvider) StartClient(*pcluster.Cluster) error {
	return errors.New("etcd provider: clients are not supported; start a member")
}

func (p *etcdProvider) Shutdown(bool) error {
	if p.membership != nil {
		p.membership.Leave()
	}
	return nil
}
