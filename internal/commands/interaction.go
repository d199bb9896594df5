package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/disgoorg/disgo/discord"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// ErrInteraction reports an interaction Ensemble does not handle: outside a
// guild, of an unknown type, for an unknown command or option, or malformed.
// The shard drops these (answering, where it can, with the error's text).
var ErrInteraction = errors.New("unsupported interaction")

// FromInteraction reduces an interaction to the grain message. Slash
// commands, their autocomplete and button presses are accepted; options are
// checked against Specs (name and type) and carried as text in the order the
// command declares them; a button's custom ID must pass ParseCustomID for the
// interaction's guild.
//
// The invoker's voice channel is left empty: the shard fills it from its
// voice-state cache, which is fresher than anything in the interaction.
func FromInteraction(i discord.Interaction, receivedAt time.Time, shardID int) (*clusterpb.Interaction, error) {
	i = deref(i)
	if i == nil {
		return nil, fmt.Errorf("%w: nil interaction", ErrInteraction)
	}
	switch i.(type) {
	case discord.ApplicationCommandInteraction, discord.AutocompleteInteraction, discord.ComponentInteraction:
	default:
		return nil, fmt.Errorf("%w: interaction type %d", ErrInteraction, i.Type())
	}
	gid := i.GuildID()
	m := i.Member()
	if gid == nil || m == nil || *gid == 0 {
		return nil, fmt.Errorf("%w: Ensemble works only in servers", ErrInteraction)
	}
	guildID := gid.String()
	// disgo leaves the channel nil when the payload has none, and calling
	// its methods then panics.
	ch := i.Channel()
	if ch.MessageChannel == nil || ch.ID() == 0 {
		return nil, fmt.Errorf("%w: no channel", ErrInteraction)
	}
	if m.User.ID == 0 {
		return nil, fmt.Errorf("%w: no member", ErrInteraction)
	}
	out := &clusterpb.Interaction{
		Id:               i.ID().String(),
		Token:            i.Token(),
		ApplicationId:    i.ApplicationID().String(),
		GuildId:          guildID,
		ChannelId:        ch.ID().String(),
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
		return fmt.Errorf("%w: not a slash command", ErrInteraction)
	}
	// No command has subcommands (see Specs); a payload with one was built
	// for a different registration.
	if d.SubCommandName != nil || d.SubCommandGroupName != nil {
		return fmt.Errorf("%w: /%s has no subcommands", ErrInteraction, shorten(d.CommandName()))
	}
	spec, ok := specIndex[d.CommandName()]
	if !ok {
		return fmt.Errorf("%w: unknown command /%s", ErrInteraction, shorten(d.CommandName()))
	}
	out.Name = d.CommandName()
	for name := range d.Options {
		if _, ok := spec.options[name]; !ok {
			return fmt.Errorf("%w: /%s has no option %q", ErrInteraction, out.Name, shorten(name))
		}
	}
	for _, name := range spec.names {
		o, ok := d.Options[name]
		if !ok {
			continue
		}
		if o.Type != spec.options[name].kind {
			return fmt.Errorf("%w: option %s has type %d", ErrInteraction, name, o.Type)
		}
		text, err := optionText(o.Type, o.Value)
		if err != nil {
			return fmt.Errorf("%w: option %s: %w", ErrInteraction, name, err)
		}
		out.Options = append(out.Options, &clusterpb.Option{Name: name, Value: text})
	}
	return nil
}

func fromAutocomplete(out *clusterpb.Interaction, i discord.AutocompleteInteraction) error {
	d := i.Data
	if d.SubCommandName != nil || d.SubCommandGroupName != nil {
		return fmt.Errorf("%w: /%s has no subcommands", ErrInteraction, shorten(d.CommandName))
	}
	spec, ok := specIndex[d.CommandName]
	if !ok {
		return fmt.Errorf("%w: unknown command /%s", ErrInteraction, shorten(d.CommandName))
	}
	out.Name = d.CommandName
	focused := 0
	for name, o := range d.Options {
		s, ok := spec.options[name]
		if !ok {
			return fmt.Errorf("%w: /%s has no option %q", ErrInteraction, out.Name, shorten(name))
		}
		if o.Type != s.kind {
			return fmt.Errorf("%w: option %s has type %d", ErrInteraction, name, o.Type)
		}
		if o.Focused {
			if !s.autocomplete {
				return fmt.Errorf("%w: option %s has no autocomplete", ErrInteraction, name)
			}
			focused++
		}
	}
	if focused != 1 {
		return fmt.Errorf("%w: autocomplete with %d focused options", ErrInteraction, focused)
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
				return fmt.Errorf("%w: option %s: %w", ErrInteraction, name, err)
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
		return fmt.Errorf("%w: only buttons are supported", ErrInteraction)
	}
	if _, err := ParseCustomID(b.CustomID(), out.GuildId); err != nil {
		return fmt.Errorf("%w: %w", ErrInteraction, err)
	}
	if i.Message.ID == 0 {
		return fmt.Errorf("%w: button without a message", ErrInteraction)
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
