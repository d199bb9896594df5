package commands

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// opts builds options from name, value pairs.
func opts(kv ...string) []*clusterpb.Option {
	var out []*clusterpb.Option
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &clusterpb.Option{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// refused checks that err is an *OptionError (so the grain shows it to the
// member), that it matches want when given, and that its text names what is
// wrong and stays short.
func refused(t *testing.T, err error, want error, mention string) {
	t.Helper()
	var oe *OptionError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOption) {
		t.Fatalf("error %v (%T) is not an *OptionError", err, err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("error %v does not match %v", err, want)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
	if len(err.Error()) > 300 {
		t.Fatalf("error is %d bytes long: %.80q…", len(err.Error()), err)
	}
}

func TestParsePlay(t *testing.T) {
	got, err := ParsePlay(opts(optQuery, "  never gonna give you up ", optNext, "true"))
	if err != nil || got.Query.Identifier != "ytsearch:never gonna give you up" || !got.Query.Search || !got.Next {
		t.Fatalf("search: %+v, %v", got, err)
	}
	got, err = ParsePlay(opts(optQuery, "https://youtu.be/dQw4w9WgXcQ"))
	if err != nil || got.Query.Identifier != "https://youtu.be/dQw4w9WgXcQ" || got.Query.Search || got.Next {
		t.Fatalf("url: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name    string
		opts    []*clusterpb.Option
		want    error
		mention string
	}{
		{"file scheme", opts(optQuery, "file:///etc/passwd"), music.ErrUnsupportedSource, "query"},
		{"local source", opts(optQuery, "local:/etc/passwd"), music.ErrUnsupportedSource, "query"},
		{"loopback URL", opts(optQuery, "http://127.0.0.1:2333/v4/info"), music.ErrInvalidURL, "query"},
		{"3000 characters", opts(optQuery, strings.Repeat("a", 3000)), music.ErrQueryTooLong, "3000"},
		{"empty", opts(optQuery, "   "), music.ErrEmptyQuery, "query"},
		{"missing", nil, nil, "query: is required"},
		{"next not bool", opts(optQuery, "x", optNext, "yes"), nil, "next"},
		{"unknown option", opts(optQuery, "x", "count", "2"), nil, `unknown option "count"`},
		{"duplicate", opts(optQuery, "x", optQuery, "y"), nil, "more than once"},
		{"nil option", []*clusterpb.Option{nil}, nil, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePlay(tc.opts)
			refused(t, err, tc.want, tc.mention)
		})
	}
}

func TestParseIntegers(t *testing.T) {
	type parser func([]*clusterpb.Option) (int, error)
	for _, tc := range []struct {
		name    string
		parse   parser
		opts    []*clusterpb.Option
		want    int
		mention string // "" when accepted
	}{
		{"skip default", ParseSkip, nil, 1, ""},
		{"skip 3", ParseSkip, opts(optCount, "3"), 3, ""},
		{"skip max", ParseSkip, opts(optCount, "1000"), 1000, ""},
		{"skip 0", ParseSkip, opts(optCount, "0"), 0, "count: must be from 1 to 1000"},
		{"skip 1001", ParseSkip, opts(optCount, "1001"), 0, "1001"},
		{"skip negative", ParseSkip, opts(optCount, "-1"), 0, "count"},
		{"skip float", ParseSkip, opts(optCount, "1.5"), 0, "whole number"},
		{"skip plus", ParseSkip, opts(optCount, "+2"), 0, "whole number"},
		{"skip empty", ParseSkip, opts(optCount, ""), 0, "whole number"},
		{"skip overflow", ParseSkip, opts(optCount, "99999999999999999999999"), 0, "whole number"},
		{"skip wrong option", ParseSkip, opts(optPage, "2"), 0, "unknown option"},
		{"page default", ParseQueuePage, nil, 1, ""},
		{"page 7", ParseQueuePage, opts(optPage, "7"), 7, ""},
		{"page 0", ParseQueuePage, opts(optPage, "0"), 0, "page"},
		{"remove 2", ParseRemove, opts(optPosition, "2"), 2, ""},
		{"remove position 0", ParseRemove, opts(optPosition, "0"), 0, "position: must be from 1"},
		{"remove missing", ParseRemove, nil, 0, "position: is required"},
		{"remove text", ParseRemove, opts(optPosition, "two"), 0, `"two"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.opts)
			if tc.mention == "" {
				if err != nil || got != tc.want {
					t.Fatalf("= %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			refused(t, err, nil, tc.mention)
		})
	}
}

func TestParseVolume(t *testing.T) {
	for _, v := range []string{"0", "100", "200"} {
		if _, err := ParseVolume(opts(optLevel, v)); err != nil {
			t.Errorf("volume %s: %v", v, err)
		}
	}
	got, _ := ParseVolume(opts(optLevel, "80"))
	if got != 80 {
		t.Errorf("volume 80 = %d", got)
	}
	_, err := ParseVolume(opts(optLevel, "201"))
	refused(t, err, music.ErrVolumeRange, "201")
	_, err = ParseVolume(opts(optLevel, "-1"))
	refused(t, err, music.ErrVolumeRange, "level")
	_, err = ParseVolume(nil)
	refused(t, err, nil, "level: is required")
	_, err = ParseVolume(opts(optLevel, "loud"))
	refused(t, err, nil, "whole number")
}

func TestParseLoopAndAutoplay(t *testing.T) {
	for in, want := range map[string]music.LoopMode{"off": music.LoopOff, "track": music.LoopTrack, "queue": music.LoopQueue} {
		if got, err := ParseLoop(opts(optMode, in)); err != nil || got != want {
			t.Errorf("loop %s = %v, %v", in, got, err)
		}
	}
	_, err := ParseLoop(opts(optMode, "forever"))
	refused(t, err, music.ErrLoopMode, "mode")
	_, err = ParseLoop(nil)
	refused(t, err, nil, "mode: is required")

	if on, err := ParseAutoplay(opts(optState, "on")); err != nil || !on {
		t.Errorf("autoplay on = %v, %v", on, err)
	}
	if on, err := ParseAutoplay(opts(optState, "off")); err != nil || on {
		t.Errorf("autoplay off = %v, %v", on, err)
	}
	_, err = ParseAutoplay(opts(optState, "true"))
	refused(t, err, nil, "on or off")
	_, err = ParseAutoplay(nil)
	refused(t, err, nil, "state: is required")
}

func TestParseMove(t *testing.T) {
	from, to, err := ParseMove(opts(optTo, "1", optFrom, "5"))
	if err != nil || from != 5 || to != 1 {
		t.Fatalf("= %d, %d, %v", from, to, err)
	}
	_, _, err = ParseMove(opts(optFrom, "5"))
	refused(t, err, nil, "to: is required")
	_, _, err = ParseMove(opts(optFrom, "0", optTo, "1"))
	refused(t, err, nil, "from")
}

func TestParseSeek(t *testing.T) {
	for in, want := range map[string]time.Duration{"90": 90 * time.Second, "1:30": 90 * time.Second, "1:02:03": time.Hour + 2*time.Minute + 3*time.Second} {
		if got, err := ParseSeek(opts(optPosition, in)); err != nil || got != want {
			t.Errorf("seek %s = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"abc", "1:75", "100:00:00", "-5", "1::2", "", strings.Repeat("9", 3000)} {
		_, err := ParseSeek(opts(optPosition, bad))
		refused(t, err, music.ErrTimestamp, "position")
	}
	_, err := ParseSeek(nil)
	refused(t, err, nil, "position: is required")
}

func TestParseSettings(t *testing.T) {
	const role, channel = "81384788765712390", "81384788765712391"
	def := music.DefaultSettings()
	if s, changed, err := ParseSettings(nil, def); err != nil || changed || s != def {
		t.Fatalf("no options: %+v, %v, %v; want the current settings, unchanged", s, changed, err)
	}
	set, changed, err := ParseSettings(opts(optDJRole, role, optDefaultVolume, "150", optAnnounceChannel, channel), def)
	if err != nil || !changed || set != (music.Settings{DJRoleID: role, DefaultVolume: 150, AnnounceChannelID: channel}) {
		t.Fatalf("set all: %+v, %v, %v", set, changed, err)
	}
	// Options not given keep their current value.
	if s, _, err := ParseSettings(opts(optDefaultVolume, "0"), set); err != nil || s != (music.Settings{DJRoleID: role, AnnounceChannelID: channel}) {
		t.Fatalf("volume only: %+v, %v", s, err)
	}
	for reset, want := range map[string]music.Settings{
		resetDJRole:          {DefaultVolume: 150, AnnounceChannelID: channel},
		resetAnnounceChannel: {DJRoleID: role, DefaultVolume: 150},
		resetAll:             def,
	} {
		if s, changed, err := ParseSettings(opts(optReset, reset), set); err != nil || !changed || s != want {
			t.Errorf("reset %s: %+v, %v, %v; want %+v", reset, s, changed, err, want)
		}
	}
	for _, tc := range []struct {
		name    string
		opts    []*clusterpb.Option
		current music.Settings
		want    error
		mention string
	}{
		{"volume 201", opts(optDefaultVolume, "201"), def, music.ErrVolumeRange, "default_volume"},
		{"role not a snowflake", opts(optDJRole, "everyone"), def, music.ErrInvalidSnowflake, "dj_role"},
		{"role leading zero", opts(optDJRole, "0123"), def, music.ErrInvalidSnowflake, "dj_role"},
		{"channel not a snowflake", opts(optAnnounceChannel, "<#1>"), def, music.ErrInvalidSnowflake, "announce_channel"},
		{"unknown reset", opts(optReset, "volume"), def, nil, "reset"},
		{"reset and set", opts(optReset, resetAll, optDJRole, role), def, nil, "cannot be combined"},
		{"unknown option", opts("prefix", "!"), def, nil, "unknown option"},
		{"corrupt current", opts(optDJRole, role), music.Settings{DefaultVolume: 999}, music.ErrVolumeRange, "default volume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, changed, err := ParseSettings(tc.opts, tc.current)
			refused(t, err, tc.want, tc.mention)
			if changed {
				t.Fatal("a refused change reports changed")
			}
		})
	}
}

func TestCommandActions(t *testing.T) {
	for name, want := range map[string]music.Action{
		"play": music.ActionPlay, "settings": music.ActionSettings, "nowplaying": music.ActionNowPlaying,
	} {
		if got, ok := Lookup(name); !ok || got.Action != want {
			t.Errorf("Lookup(%q) = %v, %v; want %v", name, got.Action, ok, want)
		}
	}
	for name, want := range map[string]music.Action{
		ButtonPauseResume: music.ActionPause, ButtonSkip: music.ActionSkip, ButtonStop: music.ActionStop,
		ButtonLoop: music.ActionLoop, ButtonShuffle: music.ActionShuffle, ButtonAutoplay: music.ActionAutoplay,
	} {
		if got, ok := ButtonCommand(name); !ok || got.Action != want {
			t.Errorf("ButtonCommand(%q) = %v, %v; want %v", name, got.Action, ok, want)
		}
	}
	for _, name := range []string{"", "Play", "ens1:skip:1", "dj"} {
		if got, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) = %v, want none", name, got.Action)
		}
		if got, ok := ButtonCommand(name); ok {
			t.Errorf("ButtonCommand(%q) = %v, want none", name, got.Action)
		}
	}
	// Every button's rule must be one music.Authorize knows.
	for b := range buttonCommands {
		c, _ := ButtonCommand(b)
		if err := music.Authorize(music.Member{}, music.DefaultSettings(), c.Action); errors.Is(err, music.ErrUnknownAction) {
			t.Errorf("button %s maps to an action Authorize does not know", b)
		}
	}
}

// FuzzParseOptions feeds arbitrary options to every parser: none may panic,
// and every refusal must be an *OptionError the grain can show.
func FuzzParseOptions(f *testing.F) {
	f.Add("query", "file:///etc/passwd", "next", "true")
	f.Add("count", "1001", "", "")
	f.Add("level", "201", "level", "0")
	f.Add("position", "99:99", "from", "-9223372036854775808")
	f.Add("dj_role", "18446744073709551616", "reset", "all")
	f.Add("default_volume", "200", "announce_channel", "1")
	f.Add("mode", "queue", "state", "on")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		in := []*clusterpb.Option{{Name: n1, Value: v1}, {Name: n2, Value: v2}}
		for _, o := range [][]*clusterpb.Option{in, in[:1], in[1:]} {
			check := func(err error) {
				if err == nil {
					return
				}
				var oe *OptionError
				if !errors.As(err, &oe) {
					t.Fatalf("%v (%T) is not an *OptionError", err, err)
				}
				if len(err.Error()) > 400 {
					t.Fatalf("unbounded error text: %d bytes", len(err.Error()))
				}
			}
			if p, err := ParsePlay(o); err == nil {
				if !p.Query.Search && !strings.HasPrefix(p.Query.Identifier, "http") {
					t.Fatalf("accepted identifier %q", p.Query.Identifier)
				}
			} else {
				check(err)
			}
			if n, err := ParseSkip(o); err == nil && (n < 1 || n > maxSkipCount) {
				t.Fatalf("skip %d accepted", n)
			} else {
				check(err)
			}
			if n, err := ParseQueuePage(o); err == nil && n < 1 {
				t.Fatalf("page %d accepted", n)
			} else {
				check(err)
			}
			if v, err := ParseVolume(o); err == nil && v.Validate() != nil {
				t.Fatalf("volume %d accepted", v)
			} else {
				check(err)
			}
			if m, err := ParseLoop(o); err == nil && !m.Valid() {
				t.Fatalf("loop %d accepted", m)
			} else {
				check(err)
			}
			if n, err := ParseRemove(o); err == nil && n < 1 {
				t.Fatalf("position %d accepted", n)
			} else {
				check(err)
			}
			if a, b, err := ParseMove(o); err == nil && (a < 1 || b < 1) {
				t.Fatalf("move %d %d accepted", a, b)
			} else {
				check(err)
			}
			if d, err := ParseSeek(o); err == nil && (d < 0 || d > music.MaxTimestamp) {
				t.Fatalf("seek %v accepted", d)
			} else {
				check(err)
			}
			_, err := ParseAutoplay(o)
			check(err)
			if s, _, err := ParseSettings(o, music.DefaultSettings()); err == nil {
				if err := s.Validate(); err != nil {
					t.Fatalf("accepted settings %+v are invalid: %v", s, err)
				}
			} else {
				check(err)
			}
		}
	})
}
