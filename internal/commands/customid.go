package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// Now-playing button actions, as they appear in custom IDs; the command
// table says which command each runs (ButtonCommand). Buttons on messages
// already posted carry them, so they never change.
const (
	ButtonPauseResume = "pause_resume"
	ButtonSkip        = "skip"
	ButtonStop        = "stop"
	ButtonLoop        = "loop"
	ButtonShuffle     = "shuffle"
	ButtonAutoplay    = "autoplay"
)

// customIDPrefix versions the format: a later format gets a new prefix, so
// buttons on old now-playing messages are refused cleanly instead of being
// misread.
const customIDPrefix = "ens1"

// maxCustomIDLength is Discord's limit on a component's custom_id.
const maxCustomIDLength = 100

// ErrCustomID reports a button custom ID that is malformed, unknown, from an
// older format, or rendered for another guild. Its text is fit for the member.
var ErrCustomID = errors.New("this button is not valid here")

// CustomID is the custom_id of a now-playing button: "ens1:<action>:<guildID>",
// for example "ens1:skip:81384788765712384". The guild is part of the ID so a
// button can only act on the guild it was rendered for, whatever message it
// ends up on. An action that is not one of the Button constants yields an ID
// that ParseCustomID refuses.
func CustomID(action, guildID string) string {
	return customIDPrefix + ":" + action + ":" + guildID
}

// ParseCustomID returns the action of a button custom ID pressed in guildID.
// It accepts exactly what CustomID produces for a known action and that guild:
// any other prefix, an unknown action, extra or missing parts, a guild ID that
// is not a canonical snowflake, or one that differs from the interaction's
// guild is refused with ErrCustomID.
func ParseCustomID(s, guildID string) (action string, err error) {
	if len(s) > maxCustomIDLength {
		return "", fmt.Errorf("%w: custom ID longer than %d bytes", ErrCustomID, maxCustomIDLength)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] != customIDPrefix {
		return "", fmt.Errorf("%w: unknown custom ID format", ErrCustomID)
	}
	action, id := parts[1], parts[2]
	if _, ok := buttonCommands[action]; !ok {
		return "", fmt.Errorf("%w: unknown button action", ErrCustomID)
	}
	if err := music.ValidateSnowflake(id); err != nil {
		return "", fmt.Errorf("%w: %w", ErrCustomID, err)
	}
	if err := music.ValidateGuildID(guildID); err != nil {
		return "", fmt.Errorf("%w: %w", ErrCustomID, err)
	}
	if id != guildID {
		return "", fmt.Errorf("%w: the button belongs to another server", ErrCustomID)
	}
	return action, nil
}
