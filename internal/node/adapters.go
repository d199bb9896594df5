package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/actors/guild"
	"github.com/ensemble-bot/ensemble/actors/lavalink"
	"github.com/ensemble-bot/ensemble/actors/session"
	"github.com/ensemble-bot/ensemble/actors/supervisor"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/inflight"
)

var errNoDiscord = errors.New("discord is not configured")

// replier and messages make a missing Discord client an error instead of
// a nil dereference (the node runs without a token). replier counts the
// busy answers, wherever the shard, guild or session decided them.
type replier struct {
	d    *commands.Discord
	busy prometheus.Counter
	// inFlight is told when an interaction's first answer is on its way
	// (before the REST call: from then on the member is done with it).
	inFlight *inflight.Limit
}

func newReplier(d *commands.Discord, reg prometheus.Registerer, inFlight *inflight.Limit) (replier, error) {
	busy := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ensemble_interactions_busy_total",
		Help: "Interactions answered busy (past an admission limit, or the member behind on its gateway) instead of handled.",
	})
	if err := reg.Register(busy); err != nil {
		return replier{}, fmt.Errorf("register metrics: %w", err)
	}
	return replier{d: d, busy: busy, inFlight: inFlight}, nil
}

func (r replier) count(content string) {
	if commands.IsBusy(content) {
		r.busy.Inc()
	}
}

func (r replier) Respond(ctx context.Context, id, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	r.count(rep.GetContent())
	r.inFlight.Release(id)
	return r.d.Respond(ctx, id, token, rep)
}

func (r replier) Defer(ctx context.Context, id, token string, ephemeral bool) error {
	if r.d == nil {
		return errNoDiscord
	}
	r.inFlight.Release(id)
	return r.d.Defer(ctx, id, token, ephemeral)
}

func (r replier) EditOriginal(ctx context.Context, appID, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	r.count(rep.GetContent())
	return r.d.EditOriginal(ctx, appID, token, rep)
}

func (r replier) DeleteOriginal(ctx context.Context, appID, token string) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.DeleteOriginal(ctx, appID, token)
}

func (r replier) Followup(ctx context.Context, appID, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	// A busy answer after a public deferral comes as an ephemeral
	// follow-up.
	r.count(rep.GetContent())
	return r.d.Followup(ctx, appID, token, rep)
}

func (r replier) Refuse(ctx context.Context, id, token string, kind clusterpb.InteractionKind, message string) error {
	if r.d == nil {
		return errNoDiscord
	}
	r.count(message)
	r.inFlight.Release(id)
	return r.d.Refuse(ctx, id, token, kind, message)
}

func (r replier) Autocomplete(ctx context.Context, id, token string, choices []*clusterpb.Choice) error {
	if r.d == nil {
		return errNoDiscord
	}
	r.inFlight.Release(id)
	return r.d.Autocomplete(ctx, id, token, choices)
}

type messages struct{ d *commands.Discord }

func (m messages) CreateMessage(ctx context.Context, channelID string, r *clusterpb.Reply) (string, error) {
	if m.d == nil {
		return "", errNoDiscord
	}
	return m.d.CreateMessage(ctx, channelID, r)
}

func (m messages) EditMessage(ctx context.Context, channelID, messageID string, r *clusterpb.Reply) error {
	if m.d == nil {
		return errNoDiscord
	}
	return m.d.EditMessage(ctx, channelID, messageID, r)
}

// sessions calls session grains with bounded retries.
type sessions struct {
	c         *cluster.Cluster
	reachable func(kind, identity string) error
}

func (s sessions) Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error) {
	return ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		if err := s.reachable(session.Kind, req.GetGuildId()); err != nil {
			return nil, err
		}
		return clusterpb.GetSessionGrainClient(s.c, req.GetGuildId()).Execute(req, opts...)
	})
}

// guildViews takes the sessions' view changes to their guild grains: one
// attempt, since the guild stops trusting a view whose push failed soon
// anyway (guild.ViewTrust).
type guildViews struct {
	c         *cluster.Cluster
	reachable func(kind, identity string) error
}

func (g guildViews) View(ctx context.Context, v *clusterpb.SessionView) error {
	_, err := ecluster.Call(ctx, 1, func(opts ...cluster.GrainCallOption) (*clusterpb.Ack, error) {
		if err := g.reachable(guild.Kind, v.GetGuildId()); err != nil {
			return nil, err
		}
		return clusterpb.GetGuildGrainClient(g.c, v.GetGuildId()).View(v, opts...)
	})
	return err
}

// audioClient is what the node needs of lavalink.Client.
type audioClient interface {
	session.Audio
	Start(ctx context.Context)
	Close()
	Nodes(ctx context.Context) ([]lavalink.NodeStatus, error)
	Subscribe(fn func(supervisor.Change)) (cancel func())
}

// errAwaitingReady is the Audio's answer before Discord's READY gave the bot
// user ID that Lavalink needs. Sessions retry plays that fail with
// audio.ErrNoNode.
var errAwaitingReady = fmt.Errorf("lavalink: waiting for Discord READY (the bot user ID): %w", audio.ErrNoNode)

// lateAudio is the sessions' Audio and the guilds' Searcher from the start,
// and the Lavalink client once READY made it possible to start one.
type lateAudio struct {
	client atomic.Pointer[audioClient]
	// mu orders start against close, so that a client started by a READY
	// that races Stop is closed (or never started).
	mu     sync.Mutex
	closed bool
	// subs wait for the client (Subscribe before READY).
	subs []*lateSub
}

type lateSub struct {
	fn       func(supervisor.Change)
	cancel   func()
	canceled bool
}

// start creates a client with newClient and starts it, unless one runs
// already or close was called; started says whether it did.
func (a *lateAudio) start(ctx context.Context, newClient func() (audioClient, error)) (started bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.client.Load() != nil {
		return false, nil
	}
	c, err := newClient()
	if err != nil {
		return false, err
	}
	c.Start(ctx)
	for _, s := range a.subs {
		if !s.canceled {
			s.cancel = c.Subscribe(s.fn)
		}
	}
	a.subs = nil
	a.client.Store(&c)
	return true, nil
}

// Nodes reports the Lavalink nodes as the client sees them.
func (a *lateAudio) Nodes(ctx context.Context) ([]lavalink.NodeStatus, error) {
	c, err := a.get()
	if err != nil {
		return nil, err
	}
	return c.Nodes(ctx)
}

// Subscribe is the client's Subscribe; before the client exists, fn is
// subscribed when it starts.
func (a *lateAudio) Subscribe(fn func(supervisor.Change)) (cancel func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.client.Load(); c != nil {
		return (*c).Subscribe(fn)
	}
	s := &lateSub{fn: fn}
	a.subs = append(a.subs, s)
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if s.canceled {
			return
		}
		s.canceled = true
		if s.cancel != nil {
			s.cancel()
		}
	}
}

// close closes the client, if one was started, and refuses to start one
// later.
func (a *lateAudio) close() {
	a.mu.Lock()
	a.closed = true
	c := a.client.Load()
	a.mu.Unlock()
	if c != nil {
		(*c).Close()
	}
}

func (a *lateAudio) get() (audioClient, error) {
	if c := a.client.Load(); c != nil {
		return *c, nil
	}
	return nil, errAwaitingReady
}

func (a *lateAudio) Load(ctx context.Context, identifier string) (audio.Loaded, error) {
	c, err := a.get()
	if err != nil {
		return audio.Loaded{}, err
	}
	return c.Load(ctx, identifier)
}

func (a *lateAudio) Play(ctx context.Context, guildID string, p audio.PlayRequest) (audio.Holder, error) {
	c, err := a.get()
	if err != nil {
		return audio.Holder{}, err
	}
	return c.Play(ctx, guildID, p)
}

// TakeOver before READY fails like Play (audio.ErrNoNode): the session
// tries it again before its next play.
func (a *lateAudio) TakeOver(ctx context.Context, guildID string, from audio.Holder) (audio.PlayerState, bool, error) {
	c, err := a.get()
	if err != nil {
		return audio.PlayerState{}, false, err
	}
	return c.TakeOver(ctx, guildID, from)
}

func (a *lateAudio) Pause(ctx context.Context, guildID string, paused bool) error {
	c, err := a.get()
	if err != nil {
		return err
	}
	return c.Pause(ctx, guildID, paused)
}

func (a *lateAudio) Seek(ctx context.Context, guildID string, pos time.Duration) error {
	c, err := a.get()
	if err != nil {
		return err
	}
	return c.Seek(ctx, guildID, pos)
}

func (a *lateAudio) Volume(ctx context.Context, guildID string, volume int) error {
	c, err := a.get()
	if err != nil {
		return err
	}
	return c.Volume(ctx, guildID, volume)
}

// Stop and Destroy succeed without a client: no client, no player.
func (a *lateAudio) Stop(ctx context.Context, guildID string) error {
	c, err := a.get()
	if err != nil {
		return nil
	}
	return c.Stop(ctx, guildID)
}

func (a *lateAudio) Destroy(ctx context.Context, guildID string) error {
	c, err := a.get()
	if err != nil {
		return nil
	}
	return c.Destroy(ctx, guildID)
}
