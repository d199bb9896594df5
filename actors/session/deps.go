package session

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
)

// Audio plays a guild's music on Lavalink. Every call carries a deadline;
// failures wrap audio.ErrNoNode, audio.ErrRefused or an
// *audio.LoadFailedError when the user should hear why.
type Audio interface {
	// Load resolves a query or URL to tracks.
	Load(ctx context.Context, identifier string) (audio.Loaded, error)
	// Play creates or replaces the guild's player with one update: voice,
	// track, position, volume and pause state together, which is what
	// migration and restore need. It returns the node and the Lavalink
	// session that hold the player.
	Play(ctx context.Context, guildID string, p audio.PlayRequest) (audio.Holder, error)
	// TakeOver reads and destroys the guild's player held by from, a
	// previous activation's (another member's, or a dead process's,
	// Lavalink session), so that it stops playing and the next Play can
	// start where it was. ok reports that a player with a track was read
	// (state is then set, even when err says the destroy failed). A
	// holder that is this member's own session, or a player already gone,
	// is no error: ok is false. An unknown or unreachable node fails
	// with audio.ErrNoNode.
	TakeOver(ctx context.Context, guildID string, from audio.Holder) (state audio.PlayerState, ok bool, err error)
	Pause(ctx context.Context, guildID string, paused bool) error
	Seek(ctx context.Context, guildID string, pos time.Duration) error
	Volume(ctx context.Context, guildID string, volume int) error
	// Stop stops the track and keeps the player (and its voice connection).
	Stop(ctx context.Context, guildID string) error
	// Destroy removes the player.
	Destroy(ctx context.Context, guildID string) error
}

// Gateway asks the shard that owns the guild to join or leave voice.
type Gateway interface {
	// UpdateVoice sends op 4; channelID "" leaves.
	UpdateVoice(ctx context.Context, guildID, channelID string) error
}

// Messages posts and edits the now-playing message.
type Messages interface {
	CreateMessage(ctx context.Context, channelID string, r *clusterpb.Reply) (messageID string, err error)
	EditMessage(ctx context.Context, channelID, messageID string, r *clusterpb.Reply) error
}

// Store is the part of internal/store a session uses.
type Store interface {
	Activate(ctx context.Context, guildID string) (uint64, error)
	LoadSession(ctx context.Context, guildID string) ([]byte, error)
	SaveSession(ctx context.Context, guildID string, epoch uint64, snapshot []byte) error
	DeleteSession(ctx context.Context, guildID string, epoch uint64) error
}

// Deps is what every session of a member shares.
type Deps struct {
	Store    Store
	Audio    Audio
	Gateway  Gateway
	Messages Messages
	// Guilds, if set, takes the view changes to the guild grains (view.go).
	Guilds Guilds
	Log    *slog.Logger
	// Now is time.Now outside tests.
	Now func() time.Time
	// AfterFunc is time.AfterFunc outside tests: the grain's timers
	// (coalesced edits, deadlines, cooldowns) start through it.
	AfterFunc func(time.Duration, func()) *time.Timer
	// Rand picks shuffle positions: rand.IntN outside tests.
	Rand func(n int) int
	// Metrics, if set, count songs, queues and activations.
	Metrics *Metrics
	// Mailbox, if set, counts the messages waiting in the grains' mailboxes.
	Mailbox *ecluster.MailboxDepth
	// Tracer, if set, traces the commands that come with a trace.
	Tracer trace.Tracer

	QueueMax int
	// IdleTimeout: leave voice after this long with nothing to play, then
	// passivate.
	IdleTimeout time.Duration
	// CallTimeout bounds each store, Lavalink and Discord call.
	CallTimeout time.Duration
	// NowPlayingDelay coalesces now-playing edits: changes within it are
	// one edit.
	NowPlayingDelay time.Duration
	// AutoplayCooldown is the least time between two autoplay picks, so a
	// run of failing tracks cannot spin.
	AutoplayCooldown time.Duration
	// RecentLimit is how many played tracks autoplay will not repeat.
	RecentLimit int
	// VoiceTimeout bounds how long a join waits for Discord's voice events
	// (a bot without the Connect permission never gets them).
	VoiceTimeout time.Duration
	// TrackEndGrace is how long past a track's end the session waits for
	// Lavalink's TrackEnd before moving on by itself (a lost event must
	// not stop the music).
	TrackEndGrace time.Duration

	// origin is Now at NewKind, the origin of the grains' monotonic clock.
	origin time.Time
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.AfterFunc == nil {
		d.AfterFunc = time.AfterFunc
	}
	if d.QueueMax <= 0 {
		d.QueueMax = 500
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = 5 * time.Minute
	}
	if d.CallTimeout <= 0 {
		d.CallTimeout = 10 * time.Second
	}
	if d.NowPlayingDelay <= 0 {
		d.NowPlayingDelay = 500 * time.Millisecond
	}
	if d.AutoplayCooldown <= 0 {
		d.AutoplayCooldown = 3 * time.Second
	}
	if d.RecentLimit <= 0 {
		d.RecentLimit = 25
	}
	if d.VoiceTimeout <= 0 {
		d.VoiceTimeout = 15 * time.Second
	}
	if d.TrackEndGrace <= 0 {
		d.TrackEndGrace = 10 * time.Second
	}
	d.origin = d.Now()
}

func (d *Deps) tracer() trace.Tracer {
	if d.Tracer == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return d.Tracer
}
