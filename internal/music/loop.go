package music

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	// ErrLoopMode reports text that is not a loop mode.
	ErrLoopMode = errors.New("unknown loop mode")
	// ErrAutoplayWhileLooping refuses turning autoplay on while a loop is on:
	// with a loop the queue never runs dry, so autoplay would silently never
	// happen.
	ErrAutoplayWhileLooping = errors.New("autoplay cannot be turned on while loop is on; use /loop off first")
	// ErrLoopWhileAutoplay is the mirror rule. Refusing (rather than quietly
	// switching autoplay off) is symmetric with ErrAutoplayWhileLooping and
	// never changes a setting the user did not touch.
	ErrLoopWhileAutoplay = errors.New("loop cannot be turned on while autoplay is on; use /autoplay off first")
)

// LoopMode says what plays when the current track ends; see Queue.Next.
type LoopMode uint8

const (
	LoopOff LoopMode = iota
	LoopTrack
	LoopQueue
)

var loopNames = [...]string{LoopOff: "off", LoopTrack: "track", LoopQueue: "queue"}

// ParseLoopMode parses "off", "track" or "queue", ignoring case and
// surrounding space.
func ParseLoopMode(s string) (LoopMode, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for m, name := range loopNames {
		if t == name {
			return LoopMode(m), nil
		}
	}
	return LoopOff, fmt.Errorf("%w %q: choose off, track or queue", ErrLoopMode, shorten(s))
}

// Valid reports whether m is one of the defined modes.
func (m LoopMode) Valid() bool { return int(m) < len(loopNames) }

func (m LoopMode) String() string {
	if !m.Valid() {
		return "LoopMode(" + strconv.Itoa(int(m)) + ")"
	}
	return loopNames[m]
}

// Cycle is the mode after m for the now-playing loop button:
// off → track → queue → off.
func (m LoopMode) Cycle() LoopMode {
	if !m.Valid() {
		return LoopOff
	}
	return (m + 1) % LoopMode(len(loopNames))
}

// MarshalText encodes m by name, so snapshots stay readable and survive a
// reordering of the constants.
func (m LoopMode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("%w: %d", ErrLoopMode, m)
	}
	return []byte(loopNames[m]), nil
}

// UnmarshalText decodes a name written by MarshalText.
func (m *LoopMode) UnmarshalText(b []byte) error {
	v, err := ParseLoopMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// PlaybackModes is a session's loop and autoplay state, which exclude each
// other. Change it only through SetLoop and SetAutoplay so the rule holds.
type PlaybackModes struct {
	Loop     LoopMode
	Autoplay bool
}

// SetLoop sets the loop mode. Turning a loop on while autoplay is on is
// refused with ErrLoopWhileAutoplay; turning it off is always allowed.
func (p *PlaybackModes) SetLoop(m LoopMode) error {
	if !m.Valid() {
		return fmt.Errorf("%w: %d", ErrLoopMode, m)
	}
	if m != LoopOff && p.Autoplay {
		return ErrLoopWhileAutoplay
	}
	p.Loop = m
	return nil
}

// SetAutoplay turns autoplay on or off. Turning it on while a loop is on is
// refused with ErrAutoplayWhileLooping; turning it off is always allowed.
func (p *PlaybackModes) SetAutoplay(on bool) error {
	if on && p.Loop != LoopOff {
		return ErrAutoplayWhileLooping
	}
	p.Autoplay = on
	return nil
}

// Validate checks a restored value, which did not pass through the setters.
func (p PlaybackModes) Validate() error {
	if !p.Loop.Valid() {
		return fmt.Errorf("%w: %d", ErrLoopMode, p.Loop)
	}
	if p.Autoplay && p.Loop != LoopOff {
		return ErrAutoplayWhileLooping
	}
	return nil
}
