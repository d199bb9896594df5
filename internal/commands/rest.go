package commands

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// Errors callers branch on. The adapter wraps the disgo error with them, so
// errors.As still finds the *rest.Error.
var (
	// ErrUnknownInteraction (Discord 10062): the interaction is unknown,
	// usually because its 3 s deadline passed; it can no longer be answered.
	ErrUnknownInteraction = errors.New("unknown interaction")
	// ErrAlreadyAcknowledged (40060): the interaction was answered already;
	// edit the original response instead.
	ErrAlreadyAcknowledged = errors.New("interaction already acknowledged")
	// ErrUnknownMessage (10008): the message is gone, e.g. a deleted
	// now-playing message; send a new one.
	ErrUnknownMessage = errors.New("unknown message")
)

// Limits on autocomplete results.
const (
	maxChoices      = 25
	maxChoiceLength = 100
)

// Discord answers interactions, edits and messages through disgo's REST
// client. It is safe for concurrent use (as the client is).
type Discord struct {
	rest rest.Rest
}

// NewDiscord wraps a disgo REST client.
func NewDiscord(r rest.Rest) *Discord { return &Discord{rest: r} }

// BotUserID asks Discord who the bot is (GET /users/@me): a cluster
// member that holds no shard gets no READY, and needs the bot user ID for
// Lavalink all the same.
func (d *Discord) BotUserID(ctx context.Context) (string, error) {
	u, err := d.rest.GetCurrentUser("", rest.WithCtx(ctx))
	if err != nil {
		return "", fmt.Errorf("get current user: %w", err)
	}
	return u.ID.String(), nil
}

// Respond answers an interaction with a message (callback type 4).
func (d *Discord) Respond(ctx context.Context, interactionID, token string, r *clusterpb.Reply) error {
	return d.callback(ctx, "respond", interactionID, token, discord.InteractionResponse{
		Type: discord.InteractionResponseTypeCreateMessage,
		Data: MessageCreate(r),
	})
}

// Defer acknowledges an interaction whose answer will come later through
// EditOriginal (callback type 5); the member sees "thinking…" meanwhile.
func (d *Discord) Defer(ctx context.Context, interactionID, token string, ephemeral bool) error {
	m := discord.MessageCreate{AllowedMentions: noMentions()}
	if ephemeral {
		m.Flags = ephemeralFlag
	}
	return d.callback(ctx, "defer", interactionID, token, discord.InteractionResponse{
		Type: discord.InteractionResponseTypeDeferredCreateMessage,
		Data: m,
	})
}

// Autocomplete answers an autocomplete interaction (callback type 8). At
// most 25 choices are sent; names are cut to 100 characters, and a choice
// whose value is longer than 100 characters or empty is left out, because a
// cut value would play something else than the name promises.
func (d *Discord) Autocomplete(ctx context.Context, interactionID, token string, choices []*clusterpb.Choice) error {
	out := make([]discord.AutocompleteChoice, 0, min(len(choices), maxChoices))
	for _, c := range choices {
		if len(out) == maxChoices {
			break
		}
		if c == nil || c.Value == "" || !utf8.ValidString(c.Value) || utf8.RuneCountInString(c.Value) > maxChoiceLength {
			continue
		}
		name := strings.TrimSpace(strings.ToValidUTF8(c.Name, "\uFFFD"))
		if name == "" {
			name = c.Value
		}
		out = append(out, discord.AutocompleteChoiceString{Name: truncate(name, maxChoiceLength), Value: c.Value})
	}
	return d.callback(ctx, "autocomplete", interactionID, token, discord.InteractionResponse{
		Type: discord.InteractionResponseTypeAutocompleteResult,
		Data: discord.AutocompleteResult{Choices: out},
	})
}

// Refuse answers an interaction Ensemble cannot handle (see Refusal): an
// autocomplete with no choices, anything else with message as an ephemeral
// error reply. kind is KindOf the interaction.
func (d *Discord) Refuse(ctx context.Context, interactionID, token string, kind clusterpb.InteractionKind, message string) error {
	if kind == clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE {
		return d.Autocomplete(ctx, interactionID, token, nil)
	}
	return d.Respond(ctx, interactionID, token, Error(message))
}

func (d *Discord) callback(ctx context.Context, op, interactionID, token string, resp discord.InteractionResponse) error {
	id, err := parseID("interaction", interactionID)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = d.rest.CreateInteractionResponse(id, token, resp, rest.WithCtx(ctx))
	return wrap(err, token, "%s to interaction %s", op, interactionID)
}

// EditOriginal replaces the interaction's original response, after Defer or
// Respond. The token is valid for 15 minutes.
func (d *Discord) EditOriginal(ctx context.Context, appID, token string, r *clusterpb.Reply) error {
	app, err := parseID("application", appID)
	if err != nil {
		return fmt.Errorf("edit original response: %w", err)
	}
	_, err = d.rest.UpdateInteractionResponse(app, token, MessageUpdate(r), rest.WithCtx(ctx))
	return wrap(err, token, "edit original response")
}

// Followup sends another message for an interaction already answered.
func (d *Discord) Followup(ctx context.Context, appID, token string, r *clusterpb.Reply) error {
	app, err := parseID("application", appID)
	if err != nil {
		return fmt.Errorf("follow-up: %w", err)
	}
	_, err = d.rest.CreateFollowupMessage(app, token, MessageCreate(r), rest.WithCtx(ctx))
	return wrap(err, token, "follow-up")
}

// DeleteOriginal deletes the interaction's first answer (a deferred
// public "thinking" message that turned out to end in an error, which is
// then sent as an ephemeral follow-up instead).
func (d *Discord) DeleteOriginal(ctx context.Context, appID, token string) error {
	app, err := parseID("application", appID)
	if err != nil {
		return fmt.Errorf("delete original: %w", err)
	}
	return wrap(d.rest.DeleteInteractionResponse(app, token, rest.WithCtx(ctx)), token, "delete original")
}

// CreateMessage posts a reply in a channel (the now-playing message) and
// returns the new message's ID. Ephemeral has no meaning there and is
// dropped.
func (d *Discord) CreateMessage(ctx context.Context, channelID string, r *clusterpb.Reply) (messageID string, err error) {
	ch, err := parseID("channel", channelID)
	if err != nil {
		return "", fmt.Errorf("create message: %w", err)
	}
	m := MessageCreate(r)
	m.Flags = m.Flags.Remove(ephemeralFlag)
	// An enforced nonce makes Discord return the message a lost answer
	// created instead of creating another, so a 5xx can be retried.
	m.Nonce, m.EnforceNonce = strconv.FormatUint(rand.Uint64(), 36), true
	msg, err := d.rest.CreateMessage(ch, m, rest.WithCtx(ctx))
	if err != nil {
		return "", wrap(err, "", "create message in channel %s", channelID)
	}
	return msg.ID.String(), nil
}

// EditMessage replaces a channel message the bot posted. ErrUnknownMessage
// means it was deleted: post a new one.
func (d *Discord) EditMessage(ctx context.Context, channelID, messageID string, r *clusterpb.Reply) error {
	ch, err := parseID("channel", channelID)
	if err != nil {
		return fmt.Errorf("edit message: %w", err)
	}
	msg, err := parseID("message", messageID)
	if err != nil {
		return fmt.Errorf("edit message: %w", err)
	}
	_, err = d.rest.UpdateMessage(ch, msg, MessageUpdate(r), rest.WithCtx(ctx))
	return wrap(err, "", "edit message %s in channel %s", messageID, channelID)
}

// RegisterCommands replaces the application's commands with Specs: globally
// when guildID is "", else in that guild only (instant, for development and
// tests).
func (d *Discord) RegisterCommands(ctx context.Context, appID, guildID string) error {
	app, err := parseID("application", appID)
	if err != nil {
		return fmt.Errorf("register commands: %w", err)
	}
	if guildID == "" {
		_, err = d.rest.SetGlobalCommands(app, Specs(), rest.WithCtx(ctx))
		return wrap(err, "", "register global commands")
	}
	g, err := parseID("guild", guildID)
	if err != nil {
		return fmt.Errorf("register commands: %w", err)
	}
	_, err = d.rest.SetGuildCommands(app, g, Specs(), rest.WithCtx(ctx))
	return wrap(err, "", "register commands in guild %s", guildID)
}

func parseID(what, s string) (snowflake.ID, error) {
	id, err := snowflake.Parse(s)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("invalid %s ID %q", what, shorten(s))
	}
	return id, nil
}

// wrap adds context and the sentinel for Discord's error code. Interaction
// tokens are in the URL of interaction requests, and transport errors quote
// the URL: the token is cut out so it cannot reach a log.
func wrap(err error, token, format string, a ...any) error {
	if err == nil {
		return nil
	}
	var sentinel error
	var re *rest.Error
	if errors.As(err, &re) {
		switch re.Code {
		case rest.JSONErrorCodeUnknownInteraction:
			sentinel = ErrUnknownInteraction
		case rest.JSONErrorCodeInteractionAlreadyAcknowledged:
			sentinel = ErrAlreadyAcknowledged
		case rest.JSONErrorCodeUnknownMessage:
			sentinel = ErrUnknownMessage
		}
	}
	msg := fmt.Sprintf(format, a...)
	if sentinel != nil {
		err = fmt.Errorf("%s: %w: %w", msg, sentinel, err)
	} else {
		err = fmt.Errorf("%s: %w", msg, err)
	}
	if token != "" && strings.Contains(err.Error(), token) {
		return &redactedError{err: err, token: token}
	}
	return err
}

// redactedError hides a token in an error's text while keeping the chain for
// errors.Is and errors.As.
type redactedError struct {
	err   error
	token string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.token, "<token>")
}

func (e *redactedError) Unwrap() error { return e.err }
