package commands

import (
	"slices"

	"github.com/disgoorg/disgo/discord"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// Name is a command's name on the wire: the slash command's name, and the
// command the guild grain sends its session (clusterpb.SessionRequest's
// command). Members of another version read it in a mixed cluster, so a
// name never changes.
type Name string

// The commands. The last three are run only by now-playing buttons.
const (
	CmdPlay       Name = "play"
	CmdPause      Name = "pause"
	CmdResume     Name = "resume"
	CmdSkip       Name = "skip"
	CmdStop       Name = "stop"
	CmdQueue      Name = "queue"
	CmdNowPlaying Name = "nowplaying"
	CmdVolume     Name = "volume"
	CmdLoop       Name = "loop"
	CmdShuffle    Name = "shuffle"
	CmdRemove     Name = "remove"
	CmdMove       Name = "move"
	CmdSeek       Name = "seek"
	CmdClear      Name = "clear"
	CmdAutoplay   Name = "autoplay"
	CmdLeave      Name = "leave"
	CmdSettings   Name = "settings"
	// CmdPauseResume pauses or resumes: which one the press means is the
	// session's state, not the button's.
	CmdPauseResume Name = "pause_resume"
	// CmdLoopCycle moves to the next loop mode (music.LoopMode.Cycle).
	CmdLoopCycle Name = "loop_cycle"
	// CmdAutoplayToggle turns autoplay on when off and off when on.
	CmdAutoplayToggle Name = "autoplay_toggle"
)

// Where is the grain that runs a command.
type Where uint8

const (
	// InSession: the guild grain applies the DJ rule and the cooldown and
	// hands the command to the guild's session grain.
	InSession Where = iota + 1 // zero is nowhere, so a forgotten field fails the table test
	// InGuild: the guild grain runs it itself.
	InGuild
)

// Command is an entry of the command table: everything about a command but
// its handler, which the grain that runs it declares (each checks its
// handlers against the table in a test).
type Command struct {
	Name Name
	// Action is what music.Authorize decides on.
	Action music.Action
	Where  Where
	// Button is the custom-ID action (CustomID) of the now-playing button
	// that runs the command, "" for none.
	Button string
	// IdleAnswer: while the guild grain knows its session has nothing, it
	// answers the command itself, with the session's words, so a guild
	// that plays nothing activates no session.
	IdleAnswer bool
	// Public: the command's answer is for the whole channel; other
	// answers (deferrals included) are for the member only.
	Public bool
	// DeferAtOnce: the command's work waits on Lavalink (a track search,
	// which takes up to seconds on a real node), so once the guild hands
	// it to the session its answer is deferred at once: the member sees
	// the bot thinking right away, not after the guild's answer budget,
	// and the edit brings the result.
	DeferAtOnce bool

	// description and options are the registered slash command; a command
	// without a description is not one (buttons run it).
	description string
	options     []discord.ApplicationCommandOption
}

// Slash reports whether the command is registered as a slash command.
func (c Command) Slash() bool { return c.description != "" }

// table is every command, slash commands in registration order first.
var table = []Command{
	{Name: CmdPlay, Action: music.ActionPlay, Where: InSession, Public: true, DeferAtOnce: true,
		description: "Play a song or playlist: search words or an http(s) link",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionString{Name: optQuery, Description: "Search words or an http(s) link",
				Required: true, Autocomplete: true, MinLength: ptr(1), MaxLength: ptr(music.MaxQueryLength)},
			discord.ApplicationCommandOptionBool{Name: optNext, Description: "Put it first in the queue instead of last"},
		}},
	{Name: CmdPause, Action: music.ActionPause, Where: InSession, description: "Pause playback"},
	{Name: CmdResume, Action: music.ActionResume, Where: InSession, description: "Resume playback"},
	{Name: CmdSkip, Action: music.ActionSkip, Where: InSession, Button: ButtonSkip,
		description: "Skip the current track, or several",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionInt{Name: optCount, Description: "How many tracks to skip (default 1)", MinValue: ptr(1), MaxValue: ptr(maxSkipCount)},
		}},
	{Name: CmdStop, Action: music.ActionStop, Where: InSession, Button: ButtonStop,
		description: "Stop playback and clear the queue"},
	{Name: CmdQueue, Action: music.ActionQueue, Where: InSession, IdleAnswer: true,
		description: "Show the queue",
		options:     []discord.ApplicationCommandOption{position(optPage, "Page to show (default 1)", false)}},
	{Name: CmdNowPlaying, Action: music.ActionNowPlaying, Where: InSession, IdleAnswer: true,
		description: "Show the current track"},
	{Name: CmdVolume, Action: music.ActionVolume, Where: InSession,
		description: "Set the volume",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionInt{Name: optLevel, Description: "Volume in percent, 0 to 200",
				Required: true, MinValue: ptr(int(music.MinVolume)), MaxValue: ptr(int(music.MaxVolume))},
		}},
	{Name: CmdLoop, Action: music.ActionLoop, Where: InSession,
		description: "Repeat the track or the queue, or stop repeating",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionString{Name: optMode, Description: "What to repeat", Required: true,
				Choices: stringChoices(music.LoopOff.String(), music.LoopTrack.String(), music.LoopQueue.String())},
		}},
	{Name: CmdShuffle, Action: music.ActionShuffle, Where: InSession, Button: ButtonShuffle,
		description: "Shuffle the queue"},
	{Name: CmdRemove, Action: music.ActionRemove, Where: InSession,
		description: "Remove a track from the queue",
		options:     []discord.ApplicationCommandOption{position(optPosition, "Queue position of the track", true)}},
	{Name: CmdMove, Action: music.ActionMove, Where: InSession,
		description: "Move a track to another queue position",
		options: []discord.ApplicationCommandOption{
			position(optFrom, "Queue position of the track", true),
			position(optTo, "Queue position to move it to", true),
		}},
	{Name: CmdSeek, Action: music.ActionSeek, Where: InSession,
		description: "Jump to a time in the current track",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionString{Name: optPosition, Description: "Time to jump to, as mm:ss, h:mm:ss or seconds",
				Required: true, MinLength: ptr(1), MaxLength: ptr(16)},
		}},
	{Name: CmdClear, Action: music.ActionClear, Where: InSession,
		description: "Remove every track from the queue"},
	{Name: CmdAutoplay, Action: music.ActionAutoplay, Where: InSession,
		description: "Play related tracks when the queue runs out",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionString{Name: optState, Description: "Turn autoplay on or off", Required: true,
				Choices: stringChoices(autoplayOn, autoplayOff)},
		}},
	{Name: CmdLeave, Action: music.ActionLeave, Where: InSession,
		description: "Stop and leave the voice channel"},
	{Name: CmdSettings, Action: music.ActionSettings, Where: InGuild,
		description: "Show or change this server's settings",
		options: []discord.ApplicationCommandOption{
			discord.ApplicationCommandOptionRole{Name: optDJRole, Description: "Role whose members may control playback"},
			discord.ApplicationCommandOptionInt{Name: optDefaultVolume, Description: "Volume new sessions start at, 0 to 200",
				MinValue: ptr(int(music.MinVolume)), MaxValue: ptr(int(music.MaxVolume))},
			discord.ApplicationCommandOptionChannel{Name: optAnnounceChannel, Description: "Channel for now-playing messages",
				ChannelTypes: []discord.ChannelType{discord.ChannelTypeGuildText, discord.ChannelTypeGuildNews}},
			discord.ApplicationCommandOptionString{Name: optReset, Description: "Put a setting back to its default",
				Choices: stringChoices(resetDJRole, resetAnnounceChannel, resetAll)},
		}},
	// pause and resume share a DJ rule, so the toggle has it too.
	{Name: CmdPauseResume, Action: music.ActionPause, Where: InSession, Button: ButtonPauseResume},
	{Name: CmdLoopCycle, Action: music.ActionLoop, Where: InSession, Button: ButtonLoop},
	{Name: CmdAutoplayToggle, Action: music.ActionAutoplay, Where: InSession, Button: ButtonAutoplay},
}

// byName and buttonCommands index the table by name and by button.
var byName, buttonCommands = indexTable()

func indexTable() (map[Name]int, map[string]Name) {
	names := make(map[Name]int, len(table))
	buttons := make(map[string]Name)
	for i, c := range table {
		names[c.Name] = i
		if c.Button != "" {
			buttons[c.Button] = c.Name
		}
	}
	return names, buttons
}

// Table returns every command: the slash commands in registration order,
// then those only buttons run.
func Table() []Command { return slices.Clone(table) }

// Lookup returns the command named name: a slash command's name, or a
// SessionRequest's command.
func Lookup(name string) (Command, bool) {
	i, ok := byName[Name(name)]
	if !ok {
		return Command{}, false
	}
	return table[i], true
}

// ButtonCommand returns the command a now-playing button runs, given the
// button's action as ParseCustomID returns it.
func ButtonCommand(action string) (Command, bool) {
	name, ok := buttonCommands[action]
	if !ok {
		return Command{}, false
	}
	return Lookup(string(name))
}

func position(name, desc string, required bool) discord.ApplicationCommandOption {
	return discord.ApplicationCommandOptionInt{Name: name, Description: desc, Required: required, MinValue: ptr(1), MaxValue: ptr(maxIndex)}
}

func stringChoices(values ...string) []discord.ApplicationCommandOptionChoiceString {
	cs := make([]discord.ApplicationCommandOptionChoiceString, len(values))
	for i, v := range values {
		cs[i] = discord.ApplicationCommandOptionChoiceString{Name: v, Value: v}
	}
	return cs
}
