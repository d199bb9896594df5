package session

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// Audio plays a guild's music on Lavalink. Every call carries a deadline.
type Audio interface {
	// Load resolves a query or URL to tracks.
	Load(ctx context.Context, identifier string) (Loaded, error)
	// Play creates or replaces the guild's player with one update: voice,
	// track, position, volume and pause state together, which is what
	// migration and restore need. It returns the node that plays it.
	Play(ctx context.Context, guildID string, p PlayRequest) (node string, err error)
	Pause(ctx context.Context, guildID string, paused bool) error
	Seek(ctx context.Context, guildID string, pos time.Duration) error
	Volume(ctx context.Context, guildID string, volume int) error
	// Stop stops the track and keeps the player (and its voice connection).
	Stop(ctx context.Context, guildID string) error
	// Destroy removes the player.
	Destroy(ctx context.Context, guildID string) error
}

// Loaded is the result of Audio.Load.
type Loaded struct {
	Tracks []music.Track
	// Playlist is the playlist's name when the URL was a playlist.
	Playlist string
	// Search is set when Tracks are search results (only the first is
	// queued).
	Search bool
}

// Voice is the bot's voice connection in a guild, as Lavalink needs it.
type Voice struct {
	ChannelID string
	SessionID string
	Token     string
	Endpoint  string
}

// Complete reports whether Lavalink can connect with these facts.
func (v Voice) Complete() bool {
	return v.ChannelID != "" && v.SessionID != "" && v.Token != "" && v.Endpoint != ""
}

// PlayRequest is everything a player needs to play.
type PlayRequest struct {
	Track    music.Track
	Position time.Duration
	Volume   int
	Paused   bool
	Voice    Voice
	// PlayID names this play of the track. The Audio sends it with the
	// track (Lavalink echoes it in every event about the track) and puts
	// it in the PlayerEvents it forwards, so the session can tell its
	// current play from a replaced one, an old node's or an old player's.
	PlayID string
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

// ErrNoAudioNode is what an Audio returns (wrapped) when no Lavalink node
// can take the call; users get a clear reply instead of a timeout.
var ErrNoAudioNode = errors.New("no audio node available")

// ErrAudioRefused is what an Audio returns (wrapped) when the server
// answered the call with an error status: it did answer, so users are not
// told it did not.
var ErrAudioRefused = errors.New("the audio server refused the request")

// LoadFailedError is a load the audio server answered with a failure
// (Lavalink's loadType "error"): Message is its reason, which users see.
type LoadFailedError struct {
	Message string
}

func (e *LoadFailedError) Error() string { return "load failed: " + e.Message }

// Deps is what every session of a member shares.
type Deps struct {
	Store    Store
	Audio    Audio
	Gateway  Gateway
	Messages Messages
	Log      *slog.Logger
	// Now is time.Now outside tests.
	Now func() time.Time
	// AfterFunc is time.AfterFunc outside tests: the grain's timers
	// (coalesced edits, deadlines, cooldowns) start through it.
	AfterFunc func(time.Duration, func()) *time.Timer
	// Rand picks shuffle positions: rand.IntN outside tests.
	Rand func(n int) int

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
}
