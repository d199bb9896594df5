package music

import (
	"errors"
	"fmt"
)

// ErrVolumeRange reports a volume outside MinVolume..MaxVolume.
var ErrVolumeRange = errors.New("volume out of range")

// Volume is a player volume in percent; Lavalink plays 100 unchanged.
type Volume int

const (
	MinVolume     Volume = 0
	MaxVolume     Volume = 200
	DefaultVolume Volume = 100
)

// ParseVolume checks v against MinVolume..MaxVolume.
func ParseVolume(v int) (Volume, error) {
	if v < int(MinVolume) || v > int(MaxVolume) {
		return 0, fmt.Errorf("%w: %d is not between %d and %d", ErrVolumeRange, v, MinVolume, MaxVolume)
	}
	return Volume(v), nil
}

// Validate reports whether v is in range; for values that did not come
// through ParseVolume (a restored snapshot).
func (v Volume) Validate() error {
	_, err := ParseVolume(int(v))
	return err
}

// Settings is a guild's persistent configuration (/settings).
//
// Loop and autoplay are not here: they belong to a playing session
// (PlaybackModes), not to the guild.
type Settings struct {
	// DJRoleID is the role whose members may use DJ actions; empty for none,
	// in which case only Manage Server/Administrator may (see Authorize).
	DJRoleID string
	// DefaultVolume is the volume a new session starts with.
	DefaultVolume Volume
	// AnnounceChannelID is where now-playing messages go; empty means the
	// channel of the command that started the session.
	AnnounceChannelID string
}

// DefaultSettings is what a guild that never ran /settings gets. Prefer it
// over the zero Settings, whose default volume is 0 (muted).
func DefaultSettings() Settings {
	return Settings{DefaultVolume: DefaultVolume}
}

// NewSettings builds validated settings; empty IDs mean "not set".
func NewSettings(djRoleID string, defaultVolume int, announceChannelID string) (Settings, error) {
	s := Settings{
		DJRoleID:          djRoleID,
		DefaultVolume:     Volume(defaultVolume),
		AnnounceChannelID: announceChannelID,
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// Validate checks every field and names the first bad one.
func (s Settings) Validate() error {
	if s.DJRoleID != "" {
		if err := ValidateSnowflake(s.DJRoleID); err != nil {
			return fmt.Errorf("DJ role: %w", err)
		}
	}
	if err := s.DefaultVolume.Validate(); err != nil {
		return fmt.Errorf("default volume: %w", err)
	}
	if s.AnnounceChannelID != "" {
		if err := ValidateSnowflake(s.AnnounceChannelID); err != nil {
			return fmt.Errorf("announce channel: %w", err)
		}
	}
	return nil
}
