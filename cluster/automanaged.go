package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// automanagedPath is where a member answers who it is.
const automanagedPath = "/ensemble/member"

// automanagedOptions configure a membership over a fixed list of members.
type automanagedOptions struct {
	// Cluster is the cluster's name: an address that answers for another
	// cluster is not a member.
	Cluster string
	// Addr is this member's own provider listener (host:port).
	Addr string
	// Members are the provider addresses of every member; this member's
	// own may be among them (it is recognised by its ID).
	Members []string
	// Refresh bounds how long a member that stopped answering stays in the
	// membership: each address is asked three times per Refresh, and a
	// member is dropped once it has not answered for a whole Refresh (at
	// once when its address refuses connections: it has stopped).
	Refresh time.Duration
	// Ejected is closed when another member has dropped this one (nil: a
	// channel of the membership's own).
	Ejected chan struct{}
	Log     *slog.Logger
}

// automanagedAnswer is what a member serves at automanagedPath.
type automanagedAnswer struct {
	Cluster string `json:"cluster"`
	memberRecord
	// Dropped are the members this one has dropped: protoactor refuses
	// them for good, so a member that finds its own ID here must rejoin
	// as a new member.
	Dropped []string `json:"dropped,omitempty"`
}

// peer is a member seen at one address.
type peer struct {
	rec      memberRecord
	lastSeen time.Time
	// failing is set after an unanswered poll, until it answers again.
	failing bool
}

// pollResult is one address's answer to one poll.
type pollResult struct {
	addr   string
	answer automanagedAnswer
	err    error
}

// automanagedMembership serves this member's record on its own address,
// asks every listed address for theirs each Refresh/3, and tells publish
// the membership (self included) each time it changes.
//
// Our own rather than protoactor's automanaged provider
// (cluster/clusterproviders/automanaged), which listens on 0.0.0.0
// whatever the configuration (automanaged.go:181), prints echo's start-up
// line to stdout (it hides the banner only, :171), drops a member at the
// first poll it misses (:244-261), does not report a busy port (:176-187),
// and holds a package-level lock over each poll and the sleep after it
// (:21, :231-262), so every provider of a process waits for the others.
type automanagedMembership struct {
	opts    automanagedOptions
	period  time.Duration
	self    memberRecord
	publish func([]memberRecord)

	listener  net.Listener
	server    *http.Server
	transport *http.Transport
	client    *http.Client

	// Touched by the join, then by the poll loop only.
	peers     map[string]*peer
	unreached map[string]string // address -> what it last said, for addresses not members
	published []string          // IDs last published, sorted

	mu      sync.Mutex
	dropped map[string]bool // IDs this member has dropped (served to the others)

	cancel  context.CancelFunc
	wg      sync.WaitGroup // serve and poll loops
	conns   sync.WaitGroup // the server's connections
	leaving atomic.Bool
	left    sync.Once

	ejectOnce sync.Once
	ejected   chan struct{}
}

// joinAutomanaged starts serving self on opts.Addr, asks every listed
// member once and publishes what it found (self included) before it
// returns.
func joinAutomanaged(ctx context.Context, opts automanagedOptions, self memberRecord, publish func([]memberRecord)) (*automanagedMembership, error) {
	if opts.Refresh <= 0 {
		return nil, fmt.Errorf("automanaged provider: refresh %v must be positive", opts.Refresh)
	}
	ejected := opts.Ejected
	if ejected == nil {
		ejected = make(chan struct{})
	}
	period := opts.Refresh / 3
	m := &automanagedMembership{
		opts: opts, period: period, self: self, publish: publish,
		peers: map[string]*peer{}, unreached: map[string]string{}, dropped: map[string]bool{},
		ejected: ejected,
	}
	listener, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("automanaged provider: listen on %s: %w", opts.Addr, err)
	}
	m.listener = listener
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+automanagedPath, m.serveMember)
	m.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: opts.Refresh,
		ReadTimeout:       opts.Refresh,
		WriteTimeout:      opts.Refresh,
		IdleTimeout:       2 * opts.Refresh,
		// net/http's own complaints (bad requests, TLS probes) go to the
		// node's log, never to stderr.
		ErrorLog: slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				m.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				m.conns.Done()
			}
		},
	}
	m.transport = &http.Transport{
		Proxy:               nil, // members are on loopback or the LAN
		DialContext:         (&net.Dialer{Timeout: period}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     opts.Refresh,
		DisableCompression:  true,
	}
	m.client = &http.Client{Transport: m.transport, Timeout: period}

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("automanaged provider: listener failed; the others will drop this member", "addr", opts.Addr, "err", err)
		}
	}()

	runCtx, stop := context.WithCancel(context.Background())
	m.cancel = stop
	// The first round is bounded by the poll timeout; ctx can cut it short.
	joinCtx, cancelJoin := context.WithCancel(runCtx)
	unhook := context.AfterFunc(ctx, cancelJoin)
	m.round(joinCtx)
	unhook()
	cancelJoin()
	if ctx.Err() != nil {
		m.leave()
		return nil, fmt.Errorf("automanaged provider: join: %w", ctx.Err())
	}
	m.wg.Add(1)
	go m.loop(runCtx)
	opts.Log.Info("joined the automanaged cluster", "addr", listener.Addr().String(),
		"members", len(m.published), "listed", len(opts.Members), "refresh", opts.Refresh)
	return m, nil
}

// Addr is the address the membership serves on (Addr's port 0 resolved).
func (m *automanagedMembership) Addr() string { return m.listener.Addr().String() }

func (m *automanagedMembership) serveMember(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	dropped := make([]string, 0, len(m.dropped))
	for id := range m.dropped {
		dropped = append(dropped, id)
	}
	m.mu.Unlock()
	slices.Sort(dropped)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(automanagedAnswer{Cluster: m.opts.Cluster, memberRecord: m.self, Dropped: dropped})
}

// loop polls every period until ctx ends. A round takes at most a period
// (the client's timeout), so rounds never overlap and publish is called
// from this goroutine only.
func (m *automanagedMembership) loop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.round(ctx)
		}
	}
}

// round asks every listed address, updates the peers and publishes the
// membership if it changed.
func (m *automanagedMembership) round(ctx context.Context) {
	start := time.Now()
	results := make([]pollResult, len(m.opts.Members))
	var wg sync.WaitGroup
	for i, addr := range m.opts.Members {
		wg.Go(func() { results[i] = m.ask(ctx, addr) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // leaving: what a cancelled poll says is not about the others
	}
	for _, r := range results {
		m.apply(r, start)
	}
	m.expire(time.Now())
	m.changed()
}

// ask fetches one address's answer.
func (m *automanagedMembership) ask(ctx context.Context, addr string) pollResult {
	r := pollResult{addr: addr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+automanagedPath, nil)
	if err != nil {
		r.err = err
		return r
	}
	res, err := m.client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer res.Body.Close()
	body := io.LimitReader(res.Body, 64<<10)
	if res.StatusCode != http.StatusOK {
		r.err = fmt.Errorf("status %s", res.Status)
	} else if err := json.NewDecoder(body).Decode(&r.answer); err != nil {
		r.err = fmt.Errorf("unreadable answer: %w", err)
	} else if r.answer.ID == "" {
		r.err = errors.New("unreadable answer: no member ID")
	}
	_, _ = io.Copy(io.Discard, body) // so the connection is reused
	return r
}

// refused reports whether err says nothing listens at the address: the
// member there has stopped (a crashed process or one that left), unlike a
// timeout, which may be a slow member or a lossy network.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// apply takes one poll result into the peers; at is when the round began.
func (m *automanagedMembership) apply(r pollResult, at time.Time) {
	log := m.opts.Log.With("addr", r.addr)
	p := m.peers[r.addr]
	switch {
	case r.err != nil && p == nil:
		// Logged when what the address says changes, not every poll.
		state := "no answer"
		if refused(r.err) {
			state = "refused"
		}
		if m.unreached[r.addr] != state {
			m.unreached[r.addr] = state
			log.Debug("no member at this address", "err", r.err)
		}
	case r.err != nil && refused(r.err):
		delete(m.peers, r.addr)
		log.Info("member left (its address refuses connections)", "member", p.rec.ID)
	case r.err != nil:
		if !p.failing {
			p.failing = true
			log.Warn("member does not answer; dropped if it stays silent", "member", p.rec.ID, "within", m.opts.Refresh, "err", r.err)
		}
	case r.answer.Cluster != m.opts.Cluster:
		if p != nil {
			delete(m.peers, r.addr)
		}
		if m.unreached[r.addr] != "cluster "+r.answer.Cluster {
			m.unreached[r.addr] = "cluster " + r.answer.Cluster
			log.Warn("the member at this address belongs to another cluster; ignored", "cluster", r.answer.Cluster, "member", r.answer.ID)
		}
	case r.answer.ID == m.self.ID:
		delete(m.unreached, r.addr) // this member's own address
	default:
		delete(m.unreached, r.addr)
		if slices.Contains(r.answer.Dropped, m.self.ID) {
			m.eject("dropped by member " + r.answer.ID)
		}
		if m.isDropped(r.answer.ID) {
			// Refused by protoactor for good; the member learns it from
			// our answer and rejoins under a new ID.
			if p != nil {
				delete(m.peers, r.addr)
			}
			return
		}
		if p != nil && p.rec.ID == r.answer.ID {
			if p.failing {
				log.Info("member answers again", "member", p.rec.ID)
			}
			p.lastSeen, p.failing = at, false
			return
		}
		if p != nil {
			log.Info("member replaced at its address", "member", p.rec.ID, "by", r.answer.ID)
		}
		m.peers[r.addr] = &peer{rec: r.answer.memberRecord, lastSeen: at}
	}
}

// expire drops the peers that have not answered for a whole Refresh.
func (m *automanagedMembership) expire(now time.Time) {
	for addr, p := range m.peers {
		if now.Sub(p.lastSeen) >= m.opts.Refresh {
			delete(m.peers, addr)
			m.opts.Log.Warn("member stopped answering; dropped", "addr", addr, "member", p.rec.ID, "silent", now.Sub(p.lastSeen).Round(time.Millisecond))
		}
	}
}

// changed publishes the membership (self and the peers) if its IDs
// changed, and remembers the IDs it no longer holds as dropped.
func (m *automanagedMembership) changed() {
	members := map[string]memberRecord{m.self.ID: m.self}
	for _, p := range m.peers {
		members[p.rec.ID] = p.rec
	}
	list := sorted(members)
	ids := make([]string, len(list))
	for i, r := range list {
		ids[i] = r.ID
	}
	if slices.Equal(ids, m.published) {
		return
	}
	m.mu.Lock()
	for _, id := range m.published {
		if _, ok := members[id]; !ok {
			m.dropped[id] = true
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		if !slices.Contains(m.published, id) && id != m.self.ID {
			m.opts.Log.Info("member joined", "member", id)
		}
	}
	m.published = ids
	m.publish(list)
}

func (m *automanagedMembership) isDropped(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped[id]
}

// eject tells the node the membership is lost: another member has
// dropped this one and refuses its ID from now on.
func (m *automanagedMembership) eject(reason string) {
	if m.leaving.Load() {
		return
	}
	m.ejectOnce.Do(func() {
		m.opts.Log.Error("dropped from the cluster; this member must rejoin under a new ID", "reason", reason, "member", m.self.ID)
		close(m.ejected)
	})
}

// leave closes the listener first (the others see this member refuse
// connections at their next poll and drop it), then stops polling and
// waits for every goroutine and connection of the membership. Safe to
// call more than once.
func (m *automanagedMembership) leave() {
	m.left.Do(func() {
		m.leaving.Store(true)
		_ = m.server.Close()
		m.cancel()
		m.wg.Wait()
		m.conns.Wait()
		m.transport.CloseIdleConnections()
	})
}

// automanagedProvider is protoactor's ClusterProvider over
// automanagedMembership.
type automanagedProvider struct {
	opts       automanagedOptions
	membership *automanagedMembership
}

func newAutomanagedProvider(opts automanagedOptions) *automanagedProvider {
	return &automanagedProvider{opts: opts}
}

func (p *automanagedProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("automanaged provider: %w", err)
	}
	self := memberRecord{ID: c.ActorSystem.ID, Host: host, Port: port, Kinds: c.GetClusterKinds()}
	// publish is called from one goroutine at a time (the join, then the
	// poll loop), as protoactor's member list needs.
	publish := func(members []memberRecord) {
		ms := make(pcluster.Members, 0, len(members))
		for _, r := range members {
			ms = append(ms, &pcluster.Member{Id: r.ID, Host: r.Host, Port: int32(r.Port), Kinds: r.Kinds})
		}
		c.MemberList.UpdateClusterTopology(ms)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Refresh)
	defer cancel()
	p.membership, err = joinAutomanaged(ctx, p.opts, self, publish)
	return err
}

func (p *automanagedProvider) StartClient(*pcluster.Cluster) error {
	return errors.New("automanaged provider: clients are not supported; start a member")
}

func (p *automanagedProvider) Shutdown(bool) error {
	if p.membership != nil {
		p.membership.leave()
	}
	return nil
}
