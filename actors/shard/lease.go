package shard

import (
	"context"
	"errors"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/store"
)

const (
	// leaseRenew is how often the holder renews its lease, storing the
	// resume state as of then: a member that dies leaves a state about
	// this old, and Discord replays what came after it.
	leaseRenew = time.Second
	// leaseRetry is how often a shard held by a live member is tried
	// again: the holder releases it as soon as its member hands it over.
	leaseRetry = 250 * time.Millisecond
	// leaseCall bounds one store call of the lease loop.
	leaseCall = 5 * time.Second
	// defaultLeaseTTL is how long a lease outlives its last renewal: the
	// longest a shard waits for a holder that vanished while the cluster
	// still counts its member.
	defaultLeaseTTL = 10 * time.Second
)

// Self-messages of the lease loop.
type (
	// leased: the member holds the shard's lease; state is what the
	// previous holder stored (nil if none).
	leased struct {
		epoch uint64
		state []byte
	}
	// leaseLost: a newer holder took the shard (the store fenced a
	// renewal): this connection must end, leaving the session to it.
	leaseLost struct{ err error }
	// stateDue asks for the resume state to store with the next renewal;
	// the grain answers on reply (nil: nothing new). force: the previous
	// answer came too late to be stored, so send the state even if
	// nothing changed since.
	stateDue struct {
		reply chan []byte
		force bool
	}
)

// lease runs the shard's lease in a goroutine: take it (waiting while a
// live member holds it), tell the grain, then renew it with the grain's
// resume state each leaseRenew until ctx ends. Store calls never run in the
// grain.
func (g *grain) lease(ctx context.Context) {
	defer g.leaseWG.Done()
	epoch, state, ok := g.take(ctx)
	if !ok {
		return
	}
	g.root.Send(g.self, &leased{epoch: epoch, state: state})
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	failing, missed := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.saveNow:
		}
		if epoch == 0 {
			// Connected without a lease (a single node whose store was
			// down): take it now the store may answer.
			if epoch = g.takeLate(ctx); epoch == 0 {
				continue
			}
		}
		reply := make(chan []byte, 1)
		g.root.Send(g.self, &stateDue{reply: reply, force: missed})
		var state []byte
		select {
		case <-ctx.Done():
			return
		case state = <-reply:
			missed = false
		case <-time.After(leaseRenew):
			// A grain this busy renews without news; the state it
			// hands over later is asked for again next time.
			missed = true
		}
		cctx, cancel := context.WithTimeout(ctx, leaseCall)
		err := g.deps.Leases.RenewShard(cctx, g.id, g.member, epoch, g.deps.LeaseTTL, state)
		cancel()
		switch {
		case errors.Is(err, store.ErrFenced):
			g.root.Send(g.self, &leaseLost{err: err})
			return
		case err != nil && ctx.Err() == nil:
			if !failing {
				g.log.Warn("shard lease not renewed; retrying", "err", err, "ttl", g.deps.LeaseTTL)
			}
			failing = true
		case err == nil && failing:
			g.log.Info("shard lease renewed again")
			failing = false
		}
	}
}

// saveSoon asks the lease loop to store the resume state now rather than at
// its next tick: a new session (READY) is worth storing at once, as a
// member that dies before it is stored leaves its successor no session to
// resume.
func (g *grain) saveSoon() {
	if g.saveNow == nil {
		return
	}
	select {
	case g.saveNow <- struct{}{}:
	default: // one pending covers it
	}
}

// take takes the lease. A holder that is no longer a member of the
// cluster is evicted at once; a live one is waited for.
func (g *grain) take(ctx context.Context) (uint64, []byte, bool) {
	evict, waiting := "", ""
	failing := false // one WARN per run of store failures, not one per try
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, leaseCall)
		epoch, state, err := g.deps.Leases.TakeShard(cctx, g.id, g.member, evict, g.deps.LeaseTTL)
		cancel()
		var held *store.ShardHeldError
		switch {
		case err == nil:
			g.leaseEpoch.Store(epoch)
			if failing {
				g.log.Info("shard lease taken; the store answers again", "epoch", epoch)
			}
			if evict != "" {
				g.log.Info("shard lease taken from a member that is gone", "member", evict, "epoch", epoch)
			}
			return epoch, state, true
		case errors.As(err, &held) && !g.deps.Alive(held.Holder):
			evict = held.Holder
			continue
		case errors.As(err, &held):
			if waiting != held.Holder {
				g.log.Info("shard held by another member; waiting for it to hand the shard over", "member", held.Holder)
				waiting = held.Holder
			}
		case ctx.Err() == nil && g.deps.Solo:
			// No other member can hold the shard: a store that is down
			// must not keep the bot offline. Without the stored session
			// the shard identifies anew.
			g.log.Warn("take shard lease: the store does not answer; connecting without a lease (single node), taking it once the store answers", "err", err)
			return 0, nil, true
		case ctx.Err() == nil && !failing:
			g.log.Warn("take shard lease; retrying until the store answers (the shard stays offline meanwhile)", "err", err)
			failing = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(leaseRetry):
		}
	}
	return 0, nil, false
}

// takeLate takes the lease of a shard that connected without one (Solo):
// its epoch, or 0 while the store does not answer. A holder that is no
// member (this node's previous process) is evicted; another live process
// holding it (a second node started on the same store) wins: this
// connection ends.
func (g *grain) takeLate(ctx context.Context) uint64 {
	take := func(evict string) (uint64, error) {
		cctx, cancel := context.WithTimeout(ctx, leaseCall)
		defer cancel()
		epoch, _, err := g.deps.Leases.TakeShard(cctx, g.id, g.member, evict, g.deps.LeaseTTL)
		return epoch, err
	}
	epoch, err := take("")
	var held *store.ShardHeldError
	if errors.As(err, &held) && !g.deps.Alive(held.Holder) {
		// Left by this node's previous process (it died holding it).
		epoch, err = take(held.Holder)
	}
	switch {
	case err == nil:
		g.leaseEpoch.Store(epoch)
		g.log.Info("shard lease taken; the store answers again", "epoch", epoch)
		return epoch
	case errors.As(err, &held):
		g.root.Send(g.self, &leaseLost{err: err})
		<-ctx.Done()
	}
	return 0
}

// resumeState encodes what the next holder needs to resume the session;
// nil before the first READY (a state taken over and not yet resumed
// stays as stored).
func (g *grain) resumeState() []byte {
	if g.sessionID == "" {
		return nil
	}
	st := &clusterpb.ShardResume{
		SessionId:     g.sessionID,
		Seq:           int64(g.seq),
		ResumeUrl:     g.resumeURL,
		ApplicationId: g.appID,
		BotUserId:     idText(g.botID),
		ShardCount:    int32(g.deps.ShardCount),
		Intents:       int64(g.deps.Intents),
		Guilds:        make([]*clusterpb.GuildVoice, 0, len(g.cache)),
	}
	for gid, users := range g.cache {
		gv := &clusterpb.GuildVoice{GuildId: uint64(gid), Users: make([]*clusterpb.UserVoice, 0, len(users))}
		for uid, vs := range users {
			gv.Users = append(gv.Users, &clusterpb.UserVoice{UserId: uint64(uid), ChannelId: uint64(vs.channel), SessionId: vs.session})
		}
		st.Guilds = append(st.Guilds, gv)
	}
	b, err := proto.Marshal(st)
	if err != nil {
		g.log.Error("encode shard resume state", "err", err)
		return nil
	}
	return b
}

// restore reads a stored resume state into the grain; false when there is
// none or it cannot be read (the shard then identifies).
func (g *grain) restore(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	var st clusterpb.ShardResume
	if err := proto.Unmarshal(b, &st); err != nil || st.GetSessionId() == "" {
		g.log.Warn("stored shard resume state unreadable; identifying", "err", err)
		return false
	}
	if int(st.GetShardCount()) != g.deps.ShardCount || gateway.Intents(st.GetIntents()) != g.deps.Intents {
		g.log.Info("stored Discord session was made with other shards or intents; identifying",
			"stored_shards", st.GetShardCount(), "shards", g.deps.ShardCount)
		return false
	}
	g.sessionID, g.seq, g.resumeURL, g.appID = st.GetSessionId(), int(st.GetSeq()), st.GetResumeUrl(), st.GetApplicationId()
	if id, err := snowflake.Parse(st.GetBotUserId()); err == nil {
		g.botID = id
	}
	for _, gv := range st.GetGuilds() {
		users := make(map[snowflake.ID]voiceState, len(gv.GetUsers()))
		for _, u := range gv.GetUsers() {
			users[snowflake.ID(u.GetUserId())] = voiceState{channel: snowflake.ID(u.GetChannelId()), session: u.GetSessionId()}
		}
		g.cache[snowflake.ID(gv.GetGuildId())] = users
	}
	return true
}
