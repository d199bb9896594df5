package commands

import (
	"github.com/disgoorg/disgo/discord"

	"github.com/ensemble-bot/ensemble/internal/music"
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

// Specs returns the slash commands Ensemble registers, in a stable order.
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
	cmd := func(name, desc string, opts ...discord.ApplicationCommandOption) discord.ApplicationCommandCreate {
		return discord.SlashCommandCreate{
			Name:             name,
			Description:      desc,
			Options:          opts,
			IntegrationTypes: []discord.ApplicationIntegrationType{discord.ApplicationIntegrationTypeGuildInstall},
			Contexts:         []discord.InteractionContextType{discord.InteractionContextTypeGuild},
		}
	}
	position := func(name, desc string, required bool) discord.ApplicationCommandOption {
		return discord.ApplicationCommandOptionInt{Name: name, Description: desc, Required: required, MinValue: ptr(1), MaxValue: ptr(maxIndex)}
	}
	stringChoices := func(values ...string) []discord.ApplicationCommandOptionChoiceString {
		cs := make([]discord.ApplicationCommandOptionChoiceString, len(values))
		for i, v := range values {
			cs[i] = discord.ApplicationCommandOptionChoiceString{Name: v, Value: v}
		}
		return cs
	}
	return []discord.ApplicationCommandCreate{
		cmd("play", "Play a song or playlist: search words or an http(s) link",
			discord.ApplicationCommandOptionString{Name: optQuery, Description: "Search words or an http(s) link",
				Required: true, Autocomplete: true, MinLength: ptr(1), MaxLength: ptr(music.MaxQueryLength)},
			discord.ApplicationCommandOptionBool{Name: optNext, Description: "Put it first in the queue instead of last"},
		),
		cmd("pause", "Pause playback"),
		cmd("resume", "Resume playback"),
		cmd("skip", "Skip the current track, or several",
			discord.ApplicationCommandOptionInt{Name: optCount, Description: "How many tracks to skip (default 1)", MinValue: ptr(1), MaxValue: ptr(maxSkipCount)},
		),
		cmd("stop", "Stop playback and clear the queue"),
		cmd("queue", "Show the queue", position(optPage, "Page to show (default 1)", false)),
		cmd("nowplaying", "Show the current track"),
		cmd("volume", "Set the volume",
			discord.ApplicationCommandOptionInt{Name: optLevel, Description: "Volume in percent, 0 to 200",
				Required: true, MinValue: ptr(int(music.MinVolume)), MaxValue: ptr(int(music.MaxVolume))},
		),
		cmd("loop", "Repeat the track or the queue, or stop repeating",
			discord.ApplicationCommandOptionString{Name: optMode, Description: "What to repeat", Required: true,
				Choices: stringChoices(music.LoopOff.String(), music.LoopTrack.String(), music.LoopQueue.String())},
		),
		cmd("shuffle", "Shuffle the queue"),
		cmd("remove", "Remove a track from the queue", position(optPosition, "Queue position of the track", true)),
		cmd("move", "Move a track to another queue position",
			position(optFrom, "Queue position of the track", true),
			position(optTo, "Queue position to move it to", true),
		),
		cmd("seek", "Jump to a time in the current track",
			discord.ApplicationCommandOptionString{Name: optPosition, Description: "Time to jump to, as mm:ss, h:mm:ss or seconds",
				Required: true, MinLength: ptr(1), MaxLength: ptr(16)},
		),
		cmd("clear", "Remove every track from the queue"),
		cmd("autoplay", "Play related tracks when the queue runs out",
			discord.ApplicationCommandOptionString{Name: optState, Description: "Turn autoplay on or off", Required: true,
				Choices: stringChoices(autoplayOn, autoplayOff)},
		),
		cmd("leave", "Stop and leave the voice channel"),
		cmd("settings", "Show or change this server's settings",
			discord.ApplicationCommandOptionRole{Name: optDJRole, Description: "Role whose members may control playback"},
			discord.ApplicationCommandOptionInt{Name: optDefaultVolume, Description: "Volume new sessions start at, 0 to 200",
				MinValue: ptr(int(music.MinVolume)), MaxValue: ptr(int(music.MaxVolume))},
			discord.ApplicationCommandOptionChannel{Name: optAnnounceChannel, Description: "Channel for now-playing messages",
				ChannelTypes: []discord.ChannelType{discord.ChannelTypeGuildText, discord.ChannelTypeGuildNews}},
			discord.ApplicationCommandOptionString{Name: optReset, Description: "Put a setting back to its default",
				Choices: stringChoices(resetDJRole, resetAnnounceChannel, resetAll)},
		),
	}
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
