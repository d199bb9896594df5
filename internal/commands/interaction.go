package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// ErrInteraction matches every error of FromInteraction: an interaction
// Ensemble does not handle (outside a server, of an unknown type, for an
// unknown command or option, malformed, ...). Each is an *InteractionError,
// whose Refusal says what to tell the member.
var ErrInteraction = errors.New("unsupported interaction")

// Refusal is a class of interaction Ensemble cannot handle. The shard
// answers each with its class's text (Text), never silence: Discord shows
// "The application did not respond" otherwise, which tells the member
// nothing.
type Refusal int

// Refusal classes.
const (
	// RefuseMalformed: the payload lacks what Discord always sends (a
	// channel, the member's user, a button's message).
	RefuseMalformed Refusal = iota
	// RefuseNotInServer: a direct message or a user-installed context.
	RefuseNotInServer
	// RefuseUnknownCommand: a command Ensemble does not register (an old
	// one the member's Discord still lists, a user or message command).
	RefuseUnknownCommand
	// RefuseBadOptions: options the command does not declare, of another
	// type or shape, subcommands: the member's Discord knows an older
	// version of the command.
	RefuseBadOptions
	// RefuseUnsupported: a kind of interaction Ensemble never offers
	// (select menus, modals, ...).
	RefuseUnsupported
	// RefuseStaleButton: a button of an old message or of another server.
	RefuseStaleButton
	// RefuseOtherShard: the server belongs to another gateway shard (the
	// shards are being moved or disagree on their count).
	RefuseOtherShard
)

// Text is what the member reads, as an ephemeral reply.
func (r Refusal) Text() string {
	switch r {
	case RefuseNotInServer:
		return "Ensemble works only in servers. Use its commands in a server's text channel."
	case RefuseUnknownCommand:
		return "This command isn't available here: Ensemble doesn't have it (any more). " +
			"Your Discord app may be showing an outdated command list; restart it and try again."
	case RefuseBadOptions:
		return "Ensemble couldn't read this command's options: your Discord app may be showing an outdated version of the command. " +
			"Restart it and try again."
	case RefuseUnsupported:
		return "Ensemble doesn't handle this kind of interaction. Use its slash commands or the buttons on the now-playing message."
	case RefuseStaleButton:
		return "This button doesn't work any more. Use the buttons on the latest now-playing message, or the slash commands."
	case RefuseOtherShard:
		return "Ensemble can't answer in this server right now: its connection to the server is being moved. Please try again in a moment."
	}
	return "Discord sent this interaction incomplete, so Ensemble couldn't act on it. Please try again."
}

// InteractionError is why FromInteraction refused an interaction. It
// matches ErrInteraction and the cause, if any. Its text is for logs; the
// member reads Refusal.Text.
type InteractionError struct {
	Refusal Refusal
	// Detail says what was wrong, for the log.
	Detail string
	Err    error
}

func (e *InteractionError) Error() string {
	msg := ErrInteraction.Error() + ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *InteractionError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInteraction}
	}
	return []error{ErrInteraction, e.Err}
}

func refuse(r Refusal, format string, a ...any) *InteractionError {
	return &InteractionError{Refusal: r, Detail: fmt.Sprintf(format, a...)}
}

func refuseErr(r Refusal, err error, format string, a ...any) *InteractionError {
	return &InteractionError{Refusal: r, Detail: fmt.Sprintf(format, a...), Err: err}
}

// RefusalText is the member's text for an error of FromInteraction (the
// malformed-interaction text for any other error).
func RefusalText(err error) string {
	var ie *InteractionError
	if errors.As(err, &ie) {
		return ie.Refusal.Text()
	}
	return RefuseMalformed.Text()
}

// KindOf is the grain message kind of an interaction, and so how it is
// answered: an autocomplete with choices, anything else with a message.
// Interactions FromInteraction never accepts (modals, pings) are
// INTERACTION_KIND_UNSPECIFIED.
func KindOf(i discord.Interaction) clusterpb.InteractionKind {
	if i == nil {
		return clusterpb.InteractionKind_INTERACTION_KIND_UNSPECIFIED
	}
	switch i.Type() {
	case discord.InteractionTypeApplicationCommand:
		return clusterpb.InteractionKind_INTERACTION_KIND_COMMAND
	case discord.InteractionTypeAutocomplete:
		return clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE
	case discord.InteractionTypeComponent:
		return clusterpb.InteractionKind_INTERACTION_KIND_BUTTON
	}
	return clusterpb.InteractionKind_INTERACTION_KIND_UNSPECIFIED
}

// HasChannel reports whether disgo filled the interaction's channel, which
// it does only from the optional `channel` object: without one, the caller
// must pass the payload's `channel_id` to FromInteraction.
func HasChannel(i discord.Interaction) bool {
	i = deref(i)
	if i == nil {
		return false
	}
	// Calling the channel's methods panics when disgo left it nil.
	ch := i.Channel()
	return ch.MessageChannel != nil && ch.ID() != 0
}

// FromInteraction reduces an interaction to the grain message. Slash
// commands, their autocomplete and button presses are accepted; options are
// checked against Specs (name and type) and carried as text in the order the
// command declares them; a button's custom ID must pass ParseCustomID for the
// interaction's guild.
//
// channelID is the payload's `channel_id`, used when the interaction has no
// `channel` object (both are optional in Discord's documentation, and disgo
// reads only the object); 0 when unknown. An interaction with neither is
// refused.
//
// The invoker's voice channel is left empty: the shard fills it from its
// voice-state cache, which is fresher than anything in the interaction.
func FromInteraction(i discord.Interaction, channelID snowflake.ID, receivedAt time.Time, shardID int) (*clusterpb.Interaction, error) {
	i = deref(i)
	if i == nil {
		return nil, refuse(RefuseMalformed, "nil interaction")
	}
	switch i.(type) {
	case discord.ApplicationCommandInteraction, discord.AutocompleteInteraction, discord.ComponentInteraction:
	default:
		return nil, refuse(RefuseUnsupported, "interaction type %d", i.Type())
	}
	gid := i.GuildID()
	m := i.Member()
	if gid == nil || m == nil || *gid == 0 {
		return nil, refuse(RefuseNotInServer, "Ensemble works only in servers")
	}
	guildID := gid.String()
	if HasChannel(i) {
		channelID = i.Channel().ID()
	}
	if channelID == 0 {
		return nil, refuse(RefuseMalformed, "no channel")
	}
	if m.User.ID == 0 {
		return nil, refuse(RefuseMalformed, "no member")
	}
	out := &clusterpb.Interaction{
		Id:               i.ID().String(),
		Token:            i.Token(),
		ApplicationId:    i.ApplicationID().String(),
		GuildId:          guildID,
		ChannelId:        channelID.String(),
		Invoker:          invoker(m),
		ReceivedUnixNano: receivedAt.UnixNano(),
		ShardId:          int32(shardID),
	}
	var err error
	switch v := i.(type) {
	case discord.ApplicationCommandInteraction:
		out.Kind = clusterpb.InteractionKind_INTERACTION_KIND_COMMAND
		err = fromCommand(out, v)
	case discord.AutocompleteInteraction:
		out.Kind = clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE
		err = fromAutocomplete(out, v)
	case discord.ComponentInteraction:
		out.Kind = clusterpb.InteractionKind_INTERACTION_KIND_BUTTON
		err = fromComponent(out, v)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deref turns the pointer forms of the interactions handled here into
// values (disgo hands out values, but both satisfy discord.Interaction), and
// nil pointers into nil.
func deref(i discord.Interaction) discord.Interaction {
	switch v := i.(type) {
	case *discord.ApplicationCommandInteraction:
		if v != nil {
			return *v
		}
		return nil
	case *discord.AutocompleteInteraction:
		if v != nil {
			return *v
		}
		return nil
	case *discord.ComponentInteraction:
		if v != nil {
			return *v
		}
		return nil
	}
	return i
}

func invoker(m *discord.ResolvedMember) *clusterpb.Invoker {
	inv := &clusterpb.Invoker{
		UserId:      m.User.ID.String(),
		Permissions: uint64(m.Permissions),
		DisplayName: m.EffectiveName(),
	}
	for _, r := range m.RoleIDs {
		inv.RoleIds = append(inv.RoleIds, r.String())
	}
	return inv
}

func fromCommand(out *clusterpb.Interaction, i discord.ApplicationCommandInteraction) error {
	d, ok := i.Data.(discord.SlashCommandInteractionData)
	if !ok {
		return refuse(RefuseUnknownCommand, "not a slash command")
	}
	// No command has subcommands (see Specs); a payload with one was built
	// for a different registration.
	if d.SubCommandName != nil || d.SubCommandGroupName != nil {
		return refuse(RefuseBadOptions, "/%s has no subcommands", shorten(d.CommandName()))
	}
	spec, ok := specIndex[d.CommandName()]
	if !ok {
		return refuse(RefuseUnknownCommand, "unknown command /%s", shorten(d.CommandName()))
	}
	out.Name = d.CommandName()
	for name := range d.Options {
		if _, ok := spec.options[name]; !ok {
			return refuse(RefuseBadOptions, "/%s has no option %q", out.Name, shorten(name))
		}
	}
	for _, name := range spec.names {
		o, ok := d.Options[name]
		if !ok {
			continue
		}
		if o.Type != spec.options[name].kind {
			return refuse(RefuseBadOptions, "option %s has type %d", name, o.Type)
		}
		text, err := optionText(o.Type, o.Value)
		if err != nil {
			return refuseErr(RefuseBadOptions, err, "option %s", name)
		}
		out.Options = append(out.Options, &clusterpb.Option{Name: name, Value: text})
	}
	return nil
}

func fromAutocomplete(out *clusterpb.Interaction, i discord.AutocompleteInteraction) error {
	d := i.Data
	if d.SubCommandName != nil || d.SubCommandGroupName != nil {
		return refuse(RefuseBadOptions, "/%s has no subcommands", shorten(d.CommandName))
	}
	spec, ok := specIndex[d.CommandName]
	if !ok {
		return refuse(RefuseUnknownCommand, "unknown command /%s", shorten(d.CommandName))
	}
	out.Name = d.CommandName
	focused := 0
	for name, o := range d.Options {
		s, ok := spec.options[name]
		if !ok {
			return refuse(RefuseBadOptions, "/%s has no option %q", out.Name, shorten(name))
		}
		if o.Type != s.kind {
			return refuse(RefuseBadOptions, "option %s has type %d", name, o.Type)
		}
		if o.Focused {
			if !s.autocomplete {
				return refuse(RefuseBadOptions, "option %s has no autocomplete", name)
			}
			focused++
		}
	}
	if focused != 1 {
		return refuse(RefuseBadOptions, "autocomplete with %d focused options", focused)
	}
	for _, name := range spec.names {
		o, ok := d.Options[name]
		if !ok {
			continue
		}
		if o.Focused {
			// What the member is typing arrives as a string even for
			// number options, and may be anything.
			text, err := focusedText(o.Value)
			if err != nil {
				return refuseErr(RefuseBadOptions, err, "option %s", name)
			}
			out.Options = append(out.Options, &clusterpb.Option{Name: name, Value: text, Focused: true})
			continue
		}
		// The other options are only context for the suggestions, and
		// may be half-typed: one that does not convert is left out rather
		// than failing the suggestions.
		if text, err := optionText(o.Type, o.Value); err == nil {
			out.Options = append(out.Options, &clusterpb.Option{Name: name, Value: text})
		}
	}
	return nil
}

func fromComponent(out *clusterpb.Interaction, i discord.ComponentInteraction) error {
	b, ok := i.Data.(discord.ButtonInteractionData)
	if !ok {
		return refuse(RefuseUnsupported, "only buttons are supported")
	}
	if _, err := ParseCustomID(b.CustomID(), out.GuildId); err != nil {
		return refuseErr(RefuseStaleButton, err, "button %q", shorten(b.CustomID()))
	}
	if i.Message.ID == 0 {
		return refuse(RefuseMalformed, "button without a message")
	}
	out.Name = b.CustomID()
	out.MessageId = i.Message.ID.String()
	return nil
}

// optionText renders a value as the text the parsers read: strings as they
// are, integers in canonical decimal, booleans as true/false, and IDs as
// snowflake text. A value of the wrong JSON shape for its type is refused.
func optionText(t discord.ApplicationCommandOptionType, raw json.RawMessage) (string, error) {
	switch t {
	case discord.ApplicationCommandOptionTypeString:
		var s string
		if err := strictUnmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("not a string")
		}
		return s, nil
	case discord.ApplicationCommandOptionTypeInt:
		var n json.Number
		if err := strictUnmarshal(raw, &n); err != nil {
			return "", fmt.Errorf("not an integer")
		}
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return "", fmt.Errorf("not an integer")
		}
		return strconv.FormatInt(v, 10), nil
	case discord.ApplicationCommandOptionTypeBool:
		var b bool
		if err := strictUnmarshal(raw, &b); err != nil {
			return "", fmt.Errorf("not a boolean")
		}
		return strconv.FormatBool(b), nil
	case discord.ApplicationCommandOptionTypeRole, discord.ApplicationCommandOptionTypeChannel,
		discord.ApplicationCommandOptionTypeUser, discord.ApplicationCommandOptionTypeMentionable:
		var s string
		if err := strictUnmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("not an ID")
		}
		if err := music.ValidateSnowflake(s); err != nil {
			return "", err
		}
		return s, nil
	}
	return "", fmt.Errorf("unsupported option type %d", t)
}

func focusedText(raw json.RawMessage) (string, error) {
	var s string
	if err := strictUnmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := strictUnmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", fmt.Errorf("not text")
}

// strictUnmarshal refuses null, which encoding/json silently accepts as
// "leave the zero value".
func strictUnmarshal(raw json.RawMessage, v any) error {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return errors.New("no value")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
