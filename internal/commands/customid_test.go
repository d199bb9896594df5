package commands

import (
	"errors"
	"strings"
	"testing"
)

const guild = "81384788765712384"

func TestCustomIDRoundTrip(t *testing.T) {
	for action := range buttonCommands {
		id := CustomID(action, guild)
		if len(id) > maxCustomIDLength {
			t.Errorf("%s: %d bytes", id, len(id))
		}
		got, err := ParseCustomID(id, guild)
		if err != nil || got != action {
			t.Errorf("ParseCustomID(%q) = %q, %v", id, got, err)
		}
	}
	// The largest snowflake still fits Discord's 100-byte limit with the
	// longest action.
	if id := CustomID(ButtonPauseResume, "18446744073709551615"); len(id) > maxCustomIDLength {
		t.Errorf("%q is %d bytes", id, len(id))
	}
	if got := CustomID(ButtonSkip, guild); got != "ens1:skip:"+guild {
		t.Errorf("format changed: %q (buttons on existing messages would break)", got)
	}
}

func TestParseCustomIDRefusals(t *testing.T) {
	for _, tc := range []struct{ name, id, guild string }{
		{"other guild", CustomID(ButtonSkip, "81384788765712385"), guild},
		{"older version", "ens0:skip:" + guild, guild},
		{"no prefix", "skip:" + guild, guild},
		{"prefix case", "ENS1:skip:" + guild, guild},
		{"unknown action", CustomID("play", guild), guild},
		{"action case", CustomID("Skip", guild), guild},
		{"empty action", CustomID("", guild), guild},
		{"extra part", CustomID(ButtonSkip, guild) + ":x", guild},
		{"missing guild", "ens1:skip", guild},
		{"empty guild", CustomID(ButtonSkip, ""), ""},
		{"leading zero", CustomID(ButtonSkip, "0"+guild), "0" + guild},
		{"non-numeric guild", CustomID(ButtonSkip, "abc"), "abc"},
		{"space", CustomID(ButtonSkip, guild+" "), guild},
		{"interaction guild invalid", CustomID(ButtonSkip, guild), ""},
		{"overflowing snowflake", CustomID(ButtonSkip, "18446744073709551616"), "18446744073709551616"},
		{"too long", "ens1:skip:" + guild + strings.Repeat("1", 100), guild},
		{"empty", "", guild},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseCustomID(tc.id, tc.guild)
			if !errors.Is(err, ErrCustomID) || a != "" {
				t.Fatalf("ParseCustomID(%q, %q) = %q, %v; want ErrCustomID", tc.id, tc.guild, a, err)
			}
		})
	}
}

func FuzzParseCustomID(f *testing.F) {
	for action := range buttonCommands {
		f.Add(CustomID(action, guild), guild)
	}
	f.Add("ens1:skip:1", "1")
	f.Add("ens1:skip:"+guild, "81384788765712385")
	f.Add("ens1::", "")
	f.Add("ens1:stop:\x00", "\x00")
	f.Fuzz(func(t *testing.T, s, g string) {
		action, err := ParseCustomID(s, g)
		if err != nil {
			if !errors.Is(err, ErrCustomID) {
				t.Fatalf("error %v does not match ErrCustomID", err)
			}
			return
		}
		if got := CustomID(action, g); got != s {
			t.Fatalf("accepted %q (guild %q) but CustomID gives %q", s, g, got)
		}
		if c, ok := ButtonCommand(action); !ok || c.Action == 0 {
			t.Fatalf("accepted action %q has no DJ rule", action)
		}
	})
}
