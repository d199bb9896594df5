package commands

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// ErrOption matches every *OptionError.
var ErrOption = errors.New("invalid option")

// OptionError is a refused command option. Its text names the option and is
// written for the member: the guild grain shows it as an ephemeral reply. It
// matches ErrOption and, when a music rule refused the value, that rule's
// error (music.ErrVolumeRange, music.ErrUnsupportedSource, ...).
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string {
	if e.Option == "" {
		return e.Err.Error()
	}
	return e.Option + ": " + e.Err.Error()
}

func (e *OptionError) Unwrap() []error { return []error{ErrOption, e.Err} }

func optErr(name string, format string, a ...any) error {
	return &OptionError{Option: name, Err: fmt.Errorf(format, a...)}
}

// args indexes a command's options by name after checking that each one is
// allowed and given once. Being strict about unknown names costs nothing and
// catches a grain handing one command's options to another's parser.
type args map[string]*clusterpb.Option

func newArgs(opts []*clusterpb.Option, allowed ...string) (args, error) {
	a := make(args, len(opts))
	for _, o := range opts {
		if o == nil {
			return nil, &OptionError{Err: errors.New("an option is missing")}
		}
		known := false
		for _, n := range allowed {
			if o.Name == n {
				known = true
				break
			}
		}
		if !known {
			return nil, &OptionError{Err: fmt.Errorf("unknown option %q", shorten(o.Name))}
		}
		if _, dup := a[o.Name]; dup {
			return nil, optErr(o.Name, "given more than once")
		}
		a[o.Name] = o
	}
	return a, nil
}

func (a args) required(name string) (string, error) {
	o, ok := a[name]
	if !ok {
		return "", optErr(name, "is required")
	}
	return o.Value, nil
}

// integer reads an option as Discord sends integers: plain decimal digits
// with an optional minus sign, within lo..hi. def is returned when the option
// is absent and optional.
func (a args) integer(name string, required bool, def, lo, hi int) (int, error) {
	o, ok := a[name]
	if !ok {
		if required {
			return 0, optErr(name, "is required")
		}
		return def, nil
	}
	v, err := strconv.Atoi(o.Value)
	if err != nil || len(o.Value) > 20 || o.Value[0] == '+' {
		return 0, optErr(name, "must be a whole number from %d to %d, not %q", lo, hi, shorten(o.Value))
	}
	if v < lo || v > hi {
		return 0, optErr(name, "must be from %d to %d, not %d", lo, hi, v)
	}
	return v, nil
}

func (a args) boolean(name string) (bool, error) {
	o, ok := a[name]
	if !ok {
		return false, nil
	}
	switch o.Value {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, optErr(name, "must be true or false, not %q", shorten(o.Value))
}

func (a args) snowflake(name string) (string, error) {
	o, ok := a[name]
	if !ok {
		return "", nil
	}
	if err := music.ValidateSnowflake(o.Value); err != nil {
		return "", &OptionError{Option: name, Err: err}
	}
	return o.Value, nil
}

// PlayArgs are /play's arguments.
type PlayArgs struct {
	Query music.Query
	// Next puts the tracks at the front of the queue.
	Next bool
}

// ParsePlay parses /play: query (required, music.ValidateQuery) and next.
func ParsePlay(opts []*clusterpb.Option) (PlayArgs, error) {
	a, err := newArgs(opts, optQuery, optNext)
	if err != nil {
		return PlayArgs{}, err
	}
	raw, err := a.required(optQuery)
	if err != nil {
		return PlayArgs{}, err
	}
	q, err := music.ValidateQuery(raw)
	if err != nil {
		return PlayArgs{}, &OptionError{Option: optQuery, Err: err}
	}
	next, err := a.boolean(optNext)
	if err != nil {
		return PlayArgs{}, err
	}
	return PlayArgs{Query: q, Next: next}, nil
}

// ParseSkip parses /skip's count: 1 when absent, at most 1000. Whether the
// queue holds that many tracks is the session's check (music.Queue.Skip).
func ParseSkip(opts []*clusterpb.Option) (int, error) {
	a, err := newArgs(opts, optCount)
	if err != nil {
		return 0, err
	}
	return a.integer(optCount, false, 1, 1, maxSkipCount)
}

// ParseQueuePage parses /queue's page: 1 when absent.
func ParseQueuePage(opts []*clusterpb.Option) (int, error) {
	a, err := newArgs(opts, optPage)
	if err != nil {
		return 0, err
	}
	return a.integer(optPage, false, 1, 1, maxIndex)
}

// ParseVolume parses /volume's level (required, music.ParseVolume).
func ParseVolume(opts []*clusterpb.Option) (music.Volume, error) {
	a, err := newArgs(opts, optLevel)
	if err != nil {
		return 0, err
	}
	return a.volume(optLevel, true)
}

func (a args) volume(name string, required bool) (music.Volume, error) {
	// The integer bounds are wider than the volume's so that an out-of-range
	// number gets music's own error, which the rest of the bot also uses.
	v, err := a.integer(name, required, 0, -maxIndex, maxIndex)
	if err != nil {
		return 0, err
	}
	vol, err := music.ParseVolume(v)
	if err != nil {
		return 0, &OptionError{Option: name, Err: err}
	}
	return vol, nil
}

// ParseLoop parses /loop's mode (required): off, track or queue.
func ParseLoop(opts []*clusterpb.Option) (music.LoopMode, error) {
	a, err := newArgs(opts, optMode)
	if err != nil {
		return 0, err
	}
	raw, err := a.required(optMode)
	if err != nil {
		return 0, err
	}
	m, err := music.ParseLoopMode(raw)
	if err != nil {
		return 0, &OptionError{Option: optMode, Err: err}
	}
	return m, nil
}

// ParseRemove parses /remove's position (required, 1-based). Whether the
// position exists is the session's check (music.Queue.Remove).
func ParseRemove(opts []*clusterpb.Option) (int, error) {
	a, err := newArgs(opts, optPosition)
	if err != nil {
		return 0, err
	}
	return a.integer(optPosition, true, 0, 1, maxIndex)
}

// ParseMove parses /move's from and to (both required, 1-based).
func ParseMove(opts []*clusterpb.Option) (from, to int, err error) {
	a, err := newArgs(opts, optFrom, optTo)
	if err != nil {
		return 0, 0, err
	}
	if from, err = a.integer(optFrom, true, 0, 1, maxIndex); err != nil {
		return 0, 0, err
	}
	if to, err = a.integer(optTo, true, 0, 1, maxIndex); err != nil {
		return 0, 0, err
	}
	return from, to, nil
}

// ParseSeek parses /seek's position (required, music.ParseTimestamp). Whether
// it lies within the track is the session's check (music.ValidateSeek).
func ParseSeek(opts []*clusterpb.Option) (time.Duration, error) {
	a, err := newArgs(opts, optPosition)
	if err != nil {
		return 0, err
	}
	raw, err := a.required(optPosition)
	if err != nil {
		return 0, err
	}
	d, err := music.ParseTimestamp(raw)
	if err != nil {
		return 0, &OptionError{Option: optPosition, Err: err}
	}
	return d, nil
}

// ParseAutoplay parses /autoplay's state (required): on or off.
func ParseAutoplay(opts []*clusterpb.Option) (bool, error) {
	a, err := newArgs(opts, optState)
	if err != nil {
		return false, err
	}
	raw, err := a.required(optState)
	if err != nil {
		return false, err
	}
	switch raw {
	case autoplayOn:
		return true, nil
	case autoplayOff:
		return false, nil
	}
	return false, optErr(optState, "must be on or off, not %q", shorten(raw))
}

// settingsArgs are /settings' options. The zero value changes nothing.
type settingsArgs struct {
	// djRoleID and announceChannelID are snowflakes to set; empty leaves the
	// setting as it is.
	djRoleID, announceChannelID string
	// defaultVolume is nil when not given.
	defaultVolume *music.Volume
	// resetAll also restores the default volume.
	resetDJRole, resetAnnounceChannel, resetAll bool
}

// apply returns s with the changes made: resets first, then the values given.
func (a settingsArgs) apply(s music.Settings) (music.Settings, error) {
	if a.resetAll {
		s = music.DefaultSettings()
	}
	if a.resetDJRole {
		s.DJRoleID = ""
	}
	if a.resetAnnounceChannel {
		s.AnnounceChannelID = ""
	}
	if a.djRoleID != "" {
		s.DJRoleID = a.djRoleID
	}
	if a.announceChannelID != "" {
		s.AnnounceChannelID = a.announceChannelID
	}
	if a.defaultVolume != nil {
		s.DefaultVolume = *a.defaultVolume
	}
	if err := s.Validate(); err != nil {
		return music.Settings{}, &OptionError{Err: err}
	}
	return s, nil
}

// ParseSettings parses /settings against the guild's current settings and
// returns the settings to store. changed is false when no option was given:
// /settings alone shows the current settings. The options are dj_role (a role
// ID), default_volume (music.ParseVolume), announce_channel (a channel ID) and
// reset (dj_role, announce_channel, or all, which also restores the default
// volume). Resetting while also setting a value is refused as contradictory.
// A current value that is invalid (a corrupt store) is refused too, rather
// than stored again.
func ParseSettings(opts []*clusterpb.Option, current music.Settings) (next music.Settings, changed bool, err error) {
	a, err := newArgs(opts, optDJRole, optDefaultVolume, optAnnounceChannel, optReset)
	if err != nil {
		return music.Settings{}, false, err
	}
	if len(a) == 0 {
		return current, false, nil
	}
	var s settingsArgs
	if s.djRoleID, err = a.snowflake(optDJRole); err != nil {
		return music.Settings{}, false, err
	}
	if s.announceChannelID, err = a.snowflake(optAnnounceChannel); err != nil {
		return music.Settings{}, false, err
	}
	if _, ok := a[optDefaultVolume]; ok {
		v, err := a.volume(optDefaultVolume, true)
		if err != nil {
			return music.Settings{}, false, err
		}
		s.defaultVolume = &v
	}
	if o, ok := a[optReset]; ok {
		switch o.Value {
		case resetDJRole:
			s.resetDJRole = true
		case resetAnnounceChannel:
			s.resetAnnounceChannel = true
		case resetAll:
			s.resetAll = true
		default:
			return music.Settings{}, false, optErr(optReset, "must be %s, %s or %s, not %q", resetDJRole, resetAnnounceChannel, resetAll, shorten(o.Value))
		}
		if s.djRoleID != "" || s.announceChannelID != "" || s.defaultVolume != nil {
			return music.Settings{}, false, optErr(optReset, "cannot be combined with setting a value; reset first, then set")
		}
	}
	next, err = s.apply(current)
	if err != nil {
		return music.Settings{}, false, err
	}
	return next, true, nil
}

// shorten bounds outside text quoted in messages, so a 3000-character value
// cannot produce a 3000-character reply.
func shorten(s string) string {
	const limit = 40
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // replaces invalid bytes, which Discord would refuse
	}
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "…"
}
