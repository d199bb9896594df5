package music

import (
	"errors"
	"slices"
	"strconv"
)

// Discord permission bits that Authorize reads.
const (
	PermissionAdministrator uint64 = 1 << 3
	PermissionManageGuild   uint64 = 1 << 5
)

var (
	// ErrDenied matches every *DeniedError, for callers that only need to
	// know that a command was refused.
	ErrDenied = errors.New("not allowed")
	// ErrNotDJ: the action needs the DJ role or Manage Server.
	ErrNotDJ = errors.New("DJ only")
	// ErrNotInVoice: the member must be in a voice channel.
	ErrNotInVoice = errors.New("not in a voice channel")
	// ErrNotInBotChannel: the member must be in the bot's voice channel.
	ErrNotInBotChannel = errors.New("not in the bot's voice channel")
	// ErrBotNotInVoice: the action controls playback, and there is none.
	ErrBotNotInVoice = errors.New("the bot is not in a voice channel")
	// ErrUnknownAction: Authorize was asked about an action it does not
	// know; it refuses rather than guess.
	ErrUnknownAction = errors.New("unknown action")
)

// Action is a command, or a now-playing button, that Authorize decides on.
type Action uint8

const (
	ActionPlay Action = iota + 1 // zero is no action, so a forgotten field is refused
	ActionPause
	ActionResume
	ActionSkip
	ActionStop
	ActionQueue
	ActionNowPlaying
	ActionVolume
	ActionLoop
	ActionShuffle
	ActionRemove
	ActionMove
	ActionSeek
	ActionClear
	ActionAutoplay
	ActionLeave
	ActionSettings
)

type actionRule struct {
	name string
	dj   bool
	// voice: the member must share the bot's voice channel.
	voice bool
	// modAnywhere: Manage Server/Administrator skip the voice requirement.
	modAnywhere bool
}

// rules is the table in the package comment; keep them in step.
var rules = map[Action]actionRule{
	ActionPlay:       {name: "play", voice: true},
	ActionPause:      {name: "pause", voice: true},
	ActionResume:     {name: "resume", voice: true},
	ActionQueue:      {name: "queue"},
	ActionNowPlaying: {name: "nowplaying"},
	ActionSkip:       {name: "skip", dj: true, voice: true},
	ActionStop:       {name: "stop", dj: true, voice: true, modAnywhere: true},
	ActionClear:      {name: "clear", dj: true, voice: true},
	ActionSeek:       {name: "seek", dj: true, voice: true},
	ActionVolume:     {name: "volume", dj: true, voice: true},
	ActionLoop:       {name: "loop", dj: true, voice: true},
	ActionShuffle:    {name: "shuffle", dj: true, voice: true},
	ActionRemove:     {name: "remove", dj: true, voice: true},
	ActionMove:       {name: "move", dj: true, voice: true},
	ActionAutoplay:   {name: "autoplay", dj: true, voice: true},
	ActionLeave:      {name: "leave", dj: true, voice: true, modAnywhere: true},
	ActionSettings:   {name: "settings", dj: true},
}

// String is the slash command's name.
func (a Action) String() string {
	if r, ok := rules[a]; ok {
		return r.name
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Member is what Authorize needs to know about the person asking and where
// they are relative to the bot.
type Member struct {
	RoleIDs []string
	// Permissions is the member's computed permission bitset as Discord
	// sends it with the interaction; it already reflects ownership and
	// Administrator.
	Permissions uint64
	// VoiceChannelID is the member's voice channel, empty when not in one.
	VoiceChannelID string
	// BotVoiceChannelID is the bot's voice channel in this guild, empty when
	// the bot is not connected.
	BotVoiceChannelID string
}

func (m Member) moderator() bool {
	return m.Permissions&(PermissionAdministrator|PermissionManageGuild) != 0
}

func (m Member) dj(s Settings) bool {
	return m.moderator() || (s.DJRoleID != "" && slices.Contains(m.RoleIDs, s.DJRoleID))
}

// DeniedError is a refusal. Its message is written for the member, and it
// matches both ErrDenied and its specific reason with errors.Is.
type DeniedError struct {
	Action Action
	Reason error // ErrNotDJ, ErrNotInVoice, ErrNotInBotChannel, ErrBotNotInVoice or ErrUnknownAction
	msg    string
}

func (e *DeniedError) Error() string { return e.msg }

func (e *DeniedError) Unwrap() []error { return []error{ErrDenied, e.Reason} }

// Authorize decides whether m may perform a in a guild with settings s: nil,
// or a *DeniedError saying why. The DJ check comes before the voice check so
// that a member who could never do something is not first told to join a
// channel.
func Authorize(m Member, s Settings, a Action) error {
	r, ok := rules[a]
	if !ok {
		return &DeniedError{Action: a, Reason: ErrUnknownAction, msg: "that action is not available"}
	}
	command := "/" + r.name
	if r.dj && !m.dj(s) {
		msg := "you need the DJ role <@&" + s.DJRoleID + "> or the Manage Server permission to use " + command
		if s.DJRoleID == "" {
			msg = "you need the Manage Server permission to use " + command + " (no DJ role is set)"
		}
		return &DeniedError{Action: a, Reason: ErrNotDJ, msg: msg}
	}
	if !r.voice || (r.modAnywhere && m.moderator()) {
		return nil
	}
	switch {
	case m.BotVoiceChannelID == "" && a == ActionPlay:
		if m.VoiceChannelID == "" {
			return &DeniedError{Action: a, Reason: ErrNotInVoice, msg: "join a voice channel first, then use " + command}
		}
	case m.BotVoiceChannelID == "":
		return &DeniedError{Action: a, Reason: ErrBotNotInVoice, msg: "I'm not in a voice channel; use /play to start"}
	case m.VoiceChannelID != m.BotVoiceChannelID:
		return &DeniedError{Action: a, Reason: ErrNotInBotChannel, msg: "join my voice channel <#" + m.BotVoiceChannelID + "> to use " + command}
	}
	return nil
}
