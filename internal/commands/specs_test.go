package commands

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/disgoorg/disgo/discord"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// Discord's limits on application commands (docs: application-commands).
var commandName = regexp.MustCompile(`^[-_\p{L}\p{N}]{1,32}$`)

func checkName(t *testing.T, where, name string) {
	t.Helper()
	if !commandName.MatchString(name) {
		t.Errorf("%s: name %q does not match %s", where, name, commandName)
	}
	if name != toLower(name) {
		t.Errorf("%s: name %q is not lower case", where, name)
	}
}

func toLower(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r >= 'A' && r <= 'Z' {
			out[i] = r + 'a' - 'A'
		}
	}
	return string(out)
}

func checkDesc(t *testing.T, where, desc string) {
	t.Helper()
	if n := utf8.RuneCountInString(desc); n < 1 || n > 100 {
		t.Errorf("%s: description has %d characters, want 1..100", where, n)
	}
}

func TestSpecsWithinDiscordLimits(t *testing.T) {
	specs := Specs()
	if len(specs) > 100 {
		t.Fatalf("%d commands, Discord allows 100", len(specs))
	}
	seen := map[string]bool{}
	for _, c := range specs {
		s, ok := c.(discord.SlashCommandCreate)
		if !ok {
			t.Fatalf("%T is not a slash command", c)
		}
		where := "/" + s.Name
		checkName(t, where, s.Name)
		checkDesc(t, where, s.Description)
		if seen[s.Name] {
			t.Errorf("%s registered twice", where)
		}
		seen[s.Name] = true
		if !slices.Equal(s.Contexts, []discord.InteractionContextType{discord.InteractionContextTypeGuild}) {
			t.Errorf("%s: contexts %v, want guild only", where, s.Contexts)
		}
		if len(s.Options) > 25 {
			t.Errorf("%s: %d options, Discord allows 25", where, len(s.Options))
		}
		total := utf8.RuneCountInString(s.Name) + utf8.RuneCountInString(s.Description)
		optional := false
		optNames := map[string]bool{}
		for _, o := range s.Options {
			ow := where + " " + o.OptionName()
			checkName(t, ow, o.OptionName())
			checkDesc(t, ow, o.OptionDescription())
			if optNames[o.OptionName()] {
				t.Errorf("%s: duplicate option", ow)
			}
			optNames[o.OptionName()] = true
			total += utf8.RuneCountInString(o.OptionName()) + utf8.RuneCountInString(o.OptionDescription())
			var required bool
			var choices []string
			switch v := o.(type) {
			case discord.ApplicationCommandOptionString:
				required = v.Required
				for _, c := range v.Choices {
					choices = append(choices, c.Name)
					if n := utf8.RuneCountInString(c.Value); n < 1 || n > 100 {
						t.Errorf("%s: choice value %q has %d characters", ow, c.Value, n)
					}
					total += utf8.RuneCountInString(c.Value)
				}
				if v.Autocomplete && len(v.Choices) > 0 {
					t.Errorf("%s: autocomplete and choices are exclusive", ow)
				}
				if v.MinLength != nil && (*v.MinLength < 0 || *v.MinLength > 6000) ||
					v.MaxLength != nil && (*v.MaxLength < 1 || *v.MaxLength > 6000) ||
					v.MinLength != nil && v.MaxLength != nil && *v.MinLength > *v.MaxLength {
					t.Errorf("%s: bad length bounds", ow)
				}
			case discord.ApplicationCommandOptionInt:
				required = v.Required
				if v.MinValue != nil && v.MaxValue != nil && *v.MinValue > *v.MaxValue {
					t.Errorf("%s: min_value > max_value", ow)
				}
				if v.MinValue == nil || v.MaxValue == nil {
					t.Errorf("%s: integer options are bounded both ways", ow)
				}
			case discord.ApplicationCommandOptionBool:
				required = v.Required
			case discord.ApplicationCommandOptionRole:
				required = v.Required
			case discord.ApplicationCommandOptionChannel:
				required = v.Required
			default:
				t.Errorf("%s: unexpected option type %T", ow, o)
			}
			if len(choices) > 25 {
				t.Errorf("%s: %d choices, Discord allows 25", ow, len(choices))
			}
			for _, c := range choices {
				if n := utf8.RuneCountInString(c); n < 1 || n > 100 {
					t.Errorf("%s: choice name %q has %d characters", ow, c, n)
				}
				total += utf8.RuneCountInString(c)
			}
			if required && optional {
				t.Errorf("%s: required option after an optional one", ow)
			}
			optional = optional || !required
		}
		if total > 4000 {
			t.Errorf("%s: %d characters in total, Discord allows 4000", where, total)
		}
	}
	for _, want := range []string{"play", "pause", "resume", "skip", "stop", "queue", "nowplaying", "volume", "loop",
		"shuffle", "remove", "move", "seek", "clear", "autoplay", "leave", "settings"} {
		if !seen[want] {
			t.Errorf("/%s is missing", want)
		}
	}
}

// Every command has a DJ rule: a command without one would be refused by
// music.Authorize as unknown, which users would see as a bug.
func TestEveryCommandHasAnAction(t *testing.T) {
	for _, c := range Specs() {
		cmd, ok := Lookup(c.CommandName())
		if !ok || cmd.Action.String() != c.CommandName() {
			t.Errorf("Lookup(%q) = %v, %v", c.CommandName(), cmd.Action, ok)
		}
	}
}

func TestSpecBoundsMatchMusicRules(t *testing.T) {
	for _, c := range Specs() {
		s := c.(discord.SlashCommandCreate)
		for _, o := range s.Options {
			switch v := o.(type) {
			case discord.ApplicationCommandOptionString:
				if s.Name == "play" && (v.MaxLength == nil || *v.MaxLength != music.MaxQueryLength) {
					t.Errorf("/play query max_length %v, want %d", v.MaxLength, music.MaxQueryLength)
				}
			case discord.ApplicationCommandOptionInt:
				if v.Name == optLevel || v.Name == optDefaultVolume {
					if *v.MinValue != int(music.MinVolume) || *v.MaxValue != int(music.MaxVolume) {
						t.Errorf("/%s %s bounds %d..%d", s.Name, v.Name, *v.MinValue, *v.MaxValue)
					}
				}
			}
		}
	}
}

func TestSpecsGolden(t *testing.T) {
	b, err := json.Marshal(Specs())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "commands", json.RawMessage(b))
}
