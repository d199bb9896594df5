package lavalink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/actors/session"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// Client is a member's connection to its Lavalink nodes.
type Client struct {
	dl      disgolink.Client
	log     *slog.Logger
	nodes   []config.LavalinkNode
	onEvent func(*clusterpb.PlayerEvent)
	onReady func(connected, total int)

	mu        sync.Mutex
	connected map[string]bool
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// Options configure a Client.
type Options struct {
	// BotUserID is the bot's Discord user ID (Lavalink's User-Id header).
	BotUserID string
	Nodes     []config.LavalinkNode
	Log       *slog.Logger
	// OnEvent receives every player event; it must not block for long
	// (it runs on disgolink's reader goroutine).
	OnEvent func(*clusterpb.PlayerEvent)
	// OnReady is told how many nodes are connected whenever that changes.
	OnReady func(connected, total int)
}

// New creates a client; Start connects it.
func New(o Options) (*Client, error) {
	uid, err := snowflake.Parse(o.BotUserID)
	if err != nil {
		return nil, fmt.Errorf("lavalink: bot user ID %q: %w", o.BotUserID, err)
	}
	c := &Client{
		log:       o.Log.With("component", "lavalink"),
		nodes:     o.Nodes,
		onEvent:   o.OnEvent,
		onReady:   o.OnReady,
		connected: map[string]bool{},
	}
	if c.onEvent == nil {
		c.onEvent = func(*clusterpb.PlayerEvent) {}
	}
	if c.onReady == nil {
		c.onReady = func(int, int) {}
	}
	c.dl = disgolink.New(uid,
		disgolink.WithLogger(o.Log.With("lib", "disgolink")),
		disgolink.WithListeners(listener{c}),
	)
	return c, nil
}

// Start connects every node in the background, retrying with jittered
// exponential backoff (1 s doubling to 30 s), so a node that is down at
// start is picked up when it appears, without a restart.
func (c *Client) Start(ctx context.Context) {
	ctx, c.stop = context.WithCancel(ctx)
	for _, n := range c.nodes {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.connectLoop(ctx, n)
		}()
	}
}

func (c *Client) connectLoop(ctx context.Context, n config.LavalinkNode) {
	backoff := time.Second
	for ctx.Err() == nil {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.dl.AddNode(attempt, disgolink.NodeConfig{
			Name: n.Name, Address: n.Address, Password: n.Password.Reveal(), Secure: n.Secure,
		})
		cancel()
		if err == nil {
			c.log.Info("lavalink node connected", "node", n.Name, "address", n.Address)
			c.watch(ctx, n.Name)
			return
		}
		c.log.Warn("lavalink node unreachable; retrying", "node", n.Name, "address", n.Address, "err", err, "in", backoff)
		// Full jitter: concurrent members do not retry in step.
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// watch reports the node's status while disgolink reconnects it by
// itself after a drop.
func (c *Client) watch(ctx context.Context, name string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := false
	for {
		nd := c.dl.Node(name)
		up := nd != nil && nd.Status() == disgolink.StatusConnected
		if up != last {
			c.setConnected(name, up)
			last = up
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Client) setConnected(name string, ok bool) {
	c.mu.Lock()
	c.connected[name] = ok
	n := 0
	for _, v := range c.connected {
		if v {
			n++
		}
	}
	c.mu.Unlock()
	c.onReady(n, len(c.nodes))
}

// Close stops connecting and closes every node.
func (c *Client) Close() {
	if c.stop != nil {
		c.stop()
	}
	c.wg.Wait()
	c.dl.Close()
}

// node picks a connected node.
func (c *Client) node() (disgolink.Node, error) {
	var best disgolink.Node
	for _, n := range c.nodes {
		if nd := c.dl.Node(n.Name); nd != nil && nd.Status() == disgolink.StatusConnected {
			best = nd
			break
		}
	}
	if best == nil {
		return nil, fmt.Errorf("lavalink: %w", session.ErrNoAudioNode)
	}
	return best, nil
}

// Load resolves identifier on a connected node.
func (c *Client) Load(ctx context.Context, identifier string) (session.Loaded, error) {
	n, err := c.node()
	if err != nil {
		return session.Loaded{}, err
	}
	res, err := n.LoadTracks(ctx, identifier)
	if err != nil {
		return session.Loaded{}, fmt.Errorf("lavalink: load: %w", err)
	}
	switch d := res.Data.(type) {
	case lavalink.Track:
		return session.Loaded{Tracks: []music.Track{toTrack(d)}}, nil
	case lavalink.Playlist:
		out := session.Loaded{Playlist: d.Info.Name}
		for _, t := range d.Tracks {
			out.Tracks = append(out.Tracks, toTrack(t))
		}
		if out.Playlist == "" {
			out.Playlist = "playlist"
		}
		return out, nil
	case lavalink.Search:
		out := session.Loaded{Search: true}
		for _, t := range d {
			out.Tracks = append(out.Tracks, toTrack(t))
		}
		return out, nil
	case lavalink.Empty:
		return session.Loaded{}, nil
	case lavalink.Exception:
		return session.Loaded{}, fmt.Errorf("lavalink: load failed: %s", d.Message)
	}
	return session.Loaded{}, fmt.Errorf("lavalink: unexpected load type %q", res.LoadType)
}

func toTrack(t lavalink.Track) music.Track {
	out := music.Track{
		Encoded: t.Encoded, Identifier: t.Info.Identifier, Title: t.Info.Title, Author: t.Info.Author,
		SourceName: t.Info.SourceName, Length: time.Duration(t.Info.Length) * time.Millisecond, IsStream: t.Info.IsStream,
	}
	if t.Info.URI != nil {
		out.URI = *t.Info.URI
	}
	if t.Info.ArtworkURL != nil {
		out.ArtworkURL = *t.Info.ArtworkURL
	}
	return out
}

func guildID(s string) (snowflake.ID, error) {
	id, err := snowflake.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("lavalink: guild ID %q: %w", s, err)
	}
	return id, nil
}

// player returns the guild's player, creating it on a connected node.
func (c *Client) player(guild string) (disgolink.Player, error) {
	gid, err := guildID(guild)
	if err != nil {
		return nil, err
	}
	if p := c.dl.ExistingPlayer(gid); p != nil && p.Node() != nil && p.Node().Status() == disgolink.StatusConnected {
		return p, nil
	}
	n, err := c.node()
	if err != nil {
		return nil, err
	}
	c.dl.RemovePlayer(gid)
	return c.dl.PlayerOnNode(n, gid), nil
}

// Play sends one update with everything the player needs.
func (c *Client) Play(ctx context.Context, guild string, p session.PlayRequest) (string, error) {
	pl, err := c.player(guild)
	if err != nil {
		return "", err
	}
	ch, err := snowflake.Parse(p.Voice.ChannelID)
	if err != nil {
		return "", fmt.Errorf("lavalink: voice channel %q: %w", p.Voice.ChannelID, err)
	}
	err = pl.Update(ctx,
		lavalink.WithEncodedTrack(p.Track.Encoded),
		lavalink.WithPosition(lavalink.Duration(p.Position.Milliseconds())),
		lavalink.WithVolume(p.Volume),
		lavalink.WithPaused(p.Paused),
		lavalink.WithVoice(lavalink.VoiceState{
			Token: p.Voice.Token, Endpoint: p.Voice.Endpoint, SessionID: p.Voice.SessionID, ChannelID: ch,
		}),
	)
	if err != nil {
		return "", fmt.Errorf("lavalink: play: %w", err)
	}
	return pl.Node().Config().Name, nil
}

func (c *Client) update(ctx context.Context, guild string, opts ...lavalink.PlayerUpdateOpt) error {
	pl, err := c.player(guild)
	if err != nil {
		return err
	}
	if err := pl.Update(ctx, opts...); err != nil {
		return fmt.Errorf("lavalink: update: %w", err)
	}
	return nil
}

// Pause pauses or resumes.
func (c *Client) Pause(ctx context.Context, guild string, paused bool) error {
	return c.update(ctx, guild, lavalink.WithPaused(paused))
}

// Seek moves the current track.
func (c *Client) Seek(ctx context.Context, guild string, pos time.Duration) error {
	return c.update(ctx, guild, lavalink.WithPosition(lavalink.Duration(pos.Milliseconds())))
}

// Volume sets the volume (0–1000 on Lavalink; we allow 0–200).
func (c *Client) Volume(ctx context.Context, guild string, v int) error {
	return c.update(ctx, guild, lavalink.WithVolume(v))
}

// Stop stops the track, keeping the player and its voice connection.
func (c *Client) Stop(ctx context.Context, guild string) error {
	gid, err := guildID(guild)
	if err != nil {
		return err
	}
	if c.dl.ExistingPlayer(gid) == nil {
		return nil
	}
	return c.update(ctx, guild, lavalink.WithNullTrack())
}

// Destroy removes the guild's player from its node and from the client.
func (c *Client) Destroy(ctx context.Context, guild string) error {
	gid, err := guildID(guild)
	if err != nil {
		return err
	}
	p := c.dl.ExistingPlayer(gid)
	if p == nil {
		return nil
	}
	defer c.dl.RemovePlayer(gid)
	if err := p.Destroy(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("lavalink: destroy: %w", err)
	}
	return nil
}

// listener turns disgolink's events into PlayerEvents.
type listener struct{ c *Client }

func (l listener) OnEvent(p disgolink.Player, msg lavalink.Message) {
	if p == nil {
		return // node-level messages (stats, ready) have no player
	}
	ev := &clusterpb.PlayerEvent{GuildId: p.GuildID().String()}
	if n := p.Node(); n != nil {
		ev.Node = n.Config().Name
	}
	switch e := msg.(type) {
	case lavalink.PlayerUpdateMessage:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_PLAYER_UPDATE
		ev.PositionMs = int64(e.State.Position)
		ev.TimeUnixMs = e.State.Time.UnixMilli()
		ev.Connected = e.State.Connected
	case lavalink.TrackStartEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START
		ev.EncodedTrack = e.Track.Encoded
	case lavalink.TrackEndEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END
		ev.EncodedTrack = e.Track.Encoded
		ev.EndReason = string(e.Reason)
	case lavalink.TrackExceptionEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION
		ev.EncodedTrack = e.Track.Encoded
		ev.Message = e.Exception.Message
	case lavalink.TrackStuckEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK
		ev.EncodedTrack = e.Track.Encoded
	case lavalink.WebSocketClosedEvent:
		ev.Kind = clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_VOICE_CLOSED
		ev.Message = fmt.Sprintf("%d %s", e.Code, e.Reason)
	default:
		return
	}
	l.c.onEvent(ev)
}
