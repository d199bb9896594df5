package music

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidTrack reports a track that cannot be queued or restored.
var ErrInvalidTrack = errors.New("invalid track")

// Track is one playable item as the bot keeps and persists it. It is a plain
// value: copying it is safe and cheap enough for queues of a few hundred.
type Track struct {
	// Encoded is Lavalink's opaque base64 track; it is what gets played, the
	// other fields are for display and autoplay.
	Encoded    string
	Identifier string
	Title      string
	Author     string
	URI        string
	ArtworkURL string
	SourceName string
	// Length is meaningless for streams; check IsStream first.
	Length   time.Duration
	IsStream bool
	// RequesterID is the snowflake of the user who queued the track (the
	// bot's own ID for autoplay); empty when unknown.
	RequesterID string
}

// Validate reports whether t can be played and persisted.
func (t Track) Validate() error {
	if t.Encoded == "" {
		return fmt.Errorf("%w: %q has no encoded data", ErrInvalidTrack, shorten(t.Title))
	}
	if t.Length < 0 {
		return fmt.Errorf("%w: %q has a negative length", ErrInvalidTrack, shorten(t.Title))
	}
	if t.RequesterID != "" {
		if _, err := ParseSnowflake(t.RequesterID); err != nil {
			return fmt.Errorf("%w: %q has requester: %w", ErrInvalidTrack, shorten(t.Title), err)
		}
	}
	return nil
}

// DisplayLength is the length as users see it: "3:07", or "LIVE" for streams.
func (t Track) DisplayLength() string {
	if t.IsStream {
		return "LIVE"
	}
	return FormatDuration(t.Length)
}

// AppendDisplayLength appends t.DisplayLength() to dst.
func (t Track) AppendDisplayLength(dst []byte) []byte {
	if t.IsStream {
		return append(dst, "LIVE"...)
	}
	return AppendDuration(dst, t.Length)
}

// shorten bounds user-controlled text quoted in error messages, so a 3000-char
// input cannot produce a 3000-char reply.
func shorten(s string) string {
	const limit = 40
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit]) + "…"
}

// Clamp keeps a playback position within t: never negative, never past
// its end (a stream has none).
func (t Track) Clamp(p time.Duration) time.Duration {
	if !t.IsStream && t.Length > 0 && p > t.Length {
		p = t.Length
	}
	return max(p, 0)
}
