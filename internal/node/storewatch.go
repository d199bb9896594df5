package node

import (
	"context"
	"time"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// storeProbe is how often the node asks the store whether it answers, and
// how long it waits for the answer.
const storeProbe = time.Second

// openStore opens the configured store. Redis is not waited for: a node
// started while Redis is down runs (watchStore says so in /readyz) and
// works once Redis answers, instead of exiting and waiting for someone to
// start it again. It sits behind a circuit breaker (n.breaker), so that a
// Redis that fails or hangs costs each call nothing but a fast error. A
// bbolt file that cannot be opened is an error.
func (n *Node) openStore(ctx context.Context, cfg config.Store) (store.Store, error) {
	if cfg.Kind != config.StoreRedis {
		return store.Open(ctx, cfg, cfg.Redis.Password)
	}
	r := store.ConnectRedis(store.RedisOptions{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB,
		Password: cfg.Redis.Password, Timeout: cfg.Redis.Timeout})
	b := cfg.Redis.Breaker
	g, err := store.WithBreaker(r, store.BreakerOptions{
		Config: supervisor.BreakerConfig{Window: b.Window, FailureRatio: b.FailureRatio, MinRequests: b.MinRequests,
			ResetTimeout: b.ResetTimeout, ResetJitter: 0.2},
		Log:        n.log,
		Registerer: n.metrics.Registry,
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	n.breaker = g
	return g, nil
}

// watchStore pings the store once now and then every storeProbe until the
// node stops, keeping the store's readiness true to it: one WARN when it
// stops answering, one INFO when it answers again.
func (n *Node) watchStore(ctx context.Context) {
	kind := string(n.cfg.Store.Kind)
	ping := func(ctx context.Context) error {
		c, cancel := context.WithTimeout(ctx, storeProbe)
		defer cancel()
		return n.store.Ping(c)
	}
	up := true
	check := func(err error) {
		switch {
		case err == nil && !up:
			n.log.Info("store answers again", "store", kind)
		case err != nil && up:
			n.log.Warn("store unreachable; commands that need it are answered 'try again' until it answers", "store", kind, "err", err)
		}
		up = err == nil
		if up {
			detail := kind
			if n.breaker != nil {
				if st := n.breaker.State(); st != supervisor.Closed {
					// Degraded: Redis answers pings, and store calls
					// fail fast until the breaker's probe succeeds.
					detail += " (circuit breaker " + st.String() + ": store calls fail at once until a probe succeeds)"
				}
			}
			n.ready.Set(compStore, true, detail)
		} else {
			n.ready.Set(compStore, false, kind+" unreachable: "+err.Error())
		}
	}
	check(ping(ctx))
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTicker(storeProbe)
		defer t.Stop()
		for {
			select {
			case <-n.runCtx.Done():
				return
			case <-t.C:
				if err := ping(n.runCtx); n.runCtx.Err() == nil {
					check(err)
				}
			}
		}
	}()
}
