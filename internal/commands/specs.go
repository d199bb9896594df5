package commands

import (
	"slices"

	"github.com/disgoorg/disgo/discord"
)

// Option names. They are part of the registered commands, so renaming one is a
// breaking change for every guild until the commands are registered again.
const (
	optQuery           = "query"
	optNext            = "next"
	optCount           = "count"
	optPage            = "page"
	optLevel           = "level"
	optMode            = "mode"
	optPosition        = "position"
	optFrom            = "from"
	optTo              = "to"
	optState           = "state"
	optDJRole          = "dj_role"
	optDefaultVolume   = "default_volume"
	optAnnounceChannel = "announce_channel"
	optReset           = "reset"
)

// Bounds Discord enforces in its client before the bot sees a value. The
// parsers check them again: a modified client or a stale command registration
// can send anything.
const (
	maxSkipCount = 1000
	// maxIndex bounds pages and queue positions far above any configured
	// queue limit, so their text never reaches integer overflow.
	maxIndex = 1_000_000
)

// Values of /settings reset.
const (
	resetDJRole          = "dj_role"
	resetAnnounceChannel = "announce_channel"
	resetAll             = "all"
)

// Values of /autoplay state.
const (
	autoplayOn  = "on"
	autoplayOff = "off"
)

func ptr[T any](v T) *T { return &v }

// Specs returns the slash commands Ensemble registers, in a stable order:
// the slash commands of the command table (Table).
//
// Every command is guild-only (contexts [GUILD], guild install): music needs a
// voice channel, and FromInteraction refuses anything else anyway. No
// default_member_permissions are set: who may do what is decided by the DJ
// rule (music.Authorize), which depends on the guild's DJ role, not on
// permissions Discord could check.
//
// /settings takes only optional options, so that /settings alone shows the
// current settings and one invocation can change several at once; "reset"
// puts a setting back to its default (no DJ role, the command's channel for
// announcements, or everything including the default volume).
func Specs() []discord.ApplicationCommandCreate {
	var out []discord.ApplicationCommandCreate
	for _, c := range table {
		if !c.Slash() {
			continue
		}
		out = append(out, discord.SlashCommandCreate{
			Name:             string(c.Name),
			Description:      c.description,
			Options:          slices.Clone(c.options),
			IntegrationTypes: []discord.ApplicationIntegrationType{discord.ApplicationIntegrationTypeGuildInstall},
			Contexts:         []discord.InteractionContextType{discord.InteractionContextTypeGuild},
		})
	}
	return out
}

// optionSpec is what FromInteraction checks an incoming option against.
type optionSpec struct {
	kind         discord.ApplicationCommandOptionType
	autocomplete bool
}

// commandSpec lists a command's options in registration order, which is the
// order FromInteraction emits them in.
type commandSpec struct {
	names   []string
	options map[string]optionSpec
}

// specIndex is derived from Specs so the registered commands and the
// conversion can never disagree.
var specIndex = buildSpecIndex()

func buildSpecIndex() map[string]commandSpec {
	idx := make(map[string]commandSpec)
	for _, c := range Specs() {
		s := c.(discord.SlashCommandCreate)
		cs := commandSpec{options: make(map[string]optionSpec)}
		for _, o := range s.Options {
			os := optionSpec{kind: o.Type()}
			switch v := o.(type) {
			case discord.ApplicationCommandOptionString:
				os.autocomplete = v.Autocomplete
			case discord.ApplicationCommandOptionInt:
				os.autocomplete = v.Autocomplete
			}
			cs.names = append(cs.names, o.OptionName())
			cs.options[o.OptionName()] = os
		}
		idx[s.Name] = cs
	}
	return idx
}
