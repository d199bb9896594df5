package discordemu

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Interaction types.
const (
	InteractionCommand      = 2
	InteractionComponent    = 3
	InteractionAutocomplete = 4
)

// Interaction callback (response) types.
const (
	ResponsePong               = 1
	ResponseMessage            = 4
	ResponseDeferredMessage    = 5
	ResponseDeferredUpdate     = 6
	ResponseUpdateMessage      = 7
	ResponseAutocompleteResult = 8
	ResponseModal              = 9
)

// Application command option types.
const (
	OptionSubCommand      = 1
	OptionSubCommandGroup = 2
	OptionString          = 3
	OptionInteger         = 4
	OptionBoolean         = 5
	OptionUser            = 6
	OptionChannel         = 7
	OptionRole            = 8
	OptionMentionable     = 9
	OptionNumber          = 10
	OptionAttachment      = 11
)

// Option is a command option as the user fills it in.
type Option struct {
	Name    string
	Type    int
	Value   any
	Focused bool // autocomplete: the option being typed
	Options []Option
}

// StringOption is a string option.
func StringOption(name, value string) Option {
	return Option{Name: name, Type: OptionString, Value: value}
}

// IntOption is an integer option.
func IntOption(name string, value int64) Option {
	return Option{Name: name, Type: OptionInteger, Value: value}
}

// NumberOption is a number option.
func NumberOption(name string, value float64) Option {
	return Option{Name: name, Type: OptionNumber, Value: value}
}

// BoolOption is a boolean option.
func BoolOption(name string, value bool) Option {
	return Option{Name: name, Type: OptionBoolean, Value: value}
}

// FocusedOption is the string option being typed during autocomplete.
func FocusedOption(name, partial string) Option {
	return Option{Name: name, Type: OptionString, Value: partial, Focused: true}
}

// SubCommand wraps options in a subcommand.
func SubCommand(name string, opts ...Option) Option {
	return Option{Name: name, Type: OptionSubCommand, Options: opts}
}

func optionsPayload(opts []Option) []any {
	out := make([]any, 0, len(opts))
	for _, o := range opts {
		p := map[string]any{"name": o.Name, "type": o.Type}
		if o.Type == OptionSubCommand || o.Type == OptionSubCommandGroup {
			p["options"] = optionsPayload(o.Options)
		} else {
			p["value"] = o.Value
		}
		if o.Focused {
			p["focused"] = true
		}
		out = append(out, p)
	}
	return out
}

// Choice is an autocomplete choice returned by the bot.
type Choice struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// Response is the bot's initial response to an interaction.
type Response struct {
	Type int
	// Message data for types 4 and 7 (and the flags of a type 5).
	Content    string
	Flags      int
	Embeds     []Embed
	Components []json.RawMessage
	// Choices for type 8.
	Choices []Choice
	// Raw is the callback body's data object as sent.
	Raw json.RawMessage
	// At is when the callback arrived; Latency is At minus the time the write of
	// INTERACTION_CREATE to the bot's socket began.
	At      time.Time
	Latency time.Duration
}

// Ephemeral reports whether the response (or deferred response) is ephemeral.
func (r Response) Ephemeral() bool { return r.Flags&FlagEphemeral != 0 }

// Interaction is a handle on one interaction the emulator dispatched.
type Interaction struct {
	e         *Emulator
	ID        Snowflake
	Token     string
	Type      int
	GuildID   Snowflake
	ChannelID Snowflake
	UserID    Snowflake
	Name      string // command name (types 2 and 4)
	CustomID  string // component custom_id (type 3)
	Created   time.Time

	// guarded by e.mu
	sentAt    time.Time
	response  *Response
	original  *storedMessage
	component *storedMessage // the message a component interaction came from
	edits     []Message
	followups []*storedMessage
	changed   chan struct{}
	shard     int
	late      bool // an initial response came after the deadline and was refused
}

func (ix *Interaction) notifyLocked() {
	close(ix.changed)
	ix.changed = make(chan struct{})
}

func (ix *Interaction) wait(ctx context.Context, cond func() bool) error {
	e := ix.e
	for {
		e.mu.Lock()
		if cond() {
			e.mu.Unlock()
			return nil
		}
		ch := ix.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("discordemu: interaction %s (%s%s): %w", ix.ID, ix.Name, ix.CustomID, ctx.Err())
		case <-ch:
		}
	}
}

// Wait returns the initial response.
func (ix *Interaction) Wait(ctx context.Context) (Response, error) {
	var r Response
	err := ix.wait(ctx, func() bool {
		if ix.response != nil {
			r = *ix.response
			return true
		}
		return false
	})
	return r, err
}

// Response returns the initial response if there is one yet.
func (ix *Interaction) Response() (Response, bool) {
	ix.e.mu.Lock()
	defer ix.e.mu.Unlock()
	if ix.response == nil {
		return Response{}, false
	}
	return *ix.response, true
}

// WaitEdit returns the first edit of the original response (@original).
func (ix *Interaction) WaitEdit(ctx context.Context) (Message, error) {
	edits, err := ix.WaitEdits(ctx, 1)
	if err != nil {
		return Message{}, err
	}
	return edits[0], nil
}

// WaitAnswer returns a deferred interaction's answer: the first edit of the
// original response or, when the bot replaced the "thinking" message with a
// follow-up (a public deferral cannot turn ephemeral, so a private answer
// comes as a follow-up after the original's deletion), the first follow-up.
func (ix *Interaction) WaitAnswer(ctx context.Context) (Message, error) {
	var out Message
	err := ix.wait(ctx, func() bool {
		switch {
		case len(ix.edits) > 0:
			out = ix.edits[0]
		case len(ix.followups) > 0:
			out = ix.followups[0].view()
		default:
			return false
		}
		return true
	})
	return out, err
}

// WaitEdits waits until the original response has been edited n times and returns the
// edits in order.
func (ix *Interaction) WaitEdits(ctx context.Context, n int) ([]Message, error) {
	var out []Message
	err := ix.wait(ctx, func() bool {
		if len(ix.edits) >= n {
			out = append([]Message(nil), ix.edits...)
			return true
		}
		return false
	})
	return out, err
}

// Original returns the current state of the original response message, if any.
func (ix *Interaction) Original() (Message, bool) {
	ix.e.mu.Lock()
	defer ix.e.mu.Unlock()
	if ix.original == nil {
		return Message{}, false
	}
	return ix.original.view(), true
}

// WaitFollowups waits for n follow-up messages and returns them (current state).
func (ix *Interaction) WaitFollowups(ctx context.Context, n int) ([]Message, error) {
	var out []Message
	err := ix.wait(ctx, func() bool {
		if len(ix.followups) >= n {
			out = ix.followupsLocked()
			return true
		}
		return false
	})
	return out, err
}

// Followups returns the follow-up messages so far.
func (ix *Interaction) Followups() []Message {
	ix.e.mu.Lock()
	defer ix.e.mu.Unlock()
	return ix.followupsLocked()
}

func (ix *Interaction) followupsLocked() []Message {
	out := make([]Message, 0, len(ix.followups))
	for _, m := range ix.followups {
		out = append(out, m.view())
	}
	return out
}

// SentAt is when the write of INTERACTION_CREATE to the bot's socket began (zero if not yet).
func (ix *Interaction) SentAt() time.Time {
	ix.e.mu.Lock()
	defer ix.e.mu.Unlock()
	return ix.sentAt
}

// Shard is the shard the interaction was dispatched on.
func (ix *Interaction) Shard() int { return ix.shard }

// InvokeCommand makes a member run a registered slash command in a channel.
func (e *Emulator) InvokeCommand(guildID, userID, channelID Snowflake, name string, opts ...Option) (*Interaction, error) {
	return e.invoke(InteractionCommand, guildID, userID, channelID, name, opts)
}

// Autocomplete makes a member type into an option of a registered command; one option
// should be Focused.
func (e *Emulator) Autocomplete(guildID, userID, channelID Snowflake, name string, opts ...Option) (*Interaction, error) {
	return e.invoke(InteractionAutocomplete, guildID, userID, channelID, name, opts)
}

// InvokeUnregistered makes a member run a slash command the bot has not registered, with
// any options, as a Discord client whose command list is out of date does (a command the
// bot removed or renamed, or changed the options of). The command ID is new.
func (e *Emulator) InvokeUnregistered(guildID, userID, channelID Snowflake, name string, opts ...Option) (*Interaction, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, m, ch, err := e.actorLocked(guildID, userID, channelID)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"id": NewSnowflake(), "name": name, "type": 1, "options": optionsPayload(opts)}
	ix := e.newInteractionLocked(InteractionCommand, gs, m, ch)
	ix.Name = name
	return ix, e.dispatchInteractionLocked(ix, gs, m, ch, data, nil)
}

func (e *Emulator) invoke(typ int, guildID, userID, channelID Snowflake, name string, opts []Option) (*Interaction, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, m, ch, err := e.actorLocked(guildID, userID, channelID)
	if err != nil {
		return nil, err
	}
	cmd := e.findCommandLocked(guildID, name)
	if cmd == nil {
		return nil, fmt.Errorf("%w: /%s in guild %s", ErrNoCommand, name, guildID)
	}
	if err := checkOptions(cmd.Options, opts); err != nil {
		return nil, fmt.Errorf("discordemu: /%s: %w", name, err)
	}
	data := map[string]any{"id": cmd.ID, "name": cmd.Name, "type": 1, "options": optionsPayload(opts)}
	if cmd.GuildID != 0 {
		data["guild_id"] = cmd.GuildID
	}
	ix := e.newInteractionLocked(typ, gs, m, ch)
	ix.Name = name
	return ix, e.dispatchInteractionLocked(ix, gs, m, ch, data, nil)
}

// PressButton makes a member click a component (button or select) with customID on a
// message the bot sent.
func (e *Emulator) PressButton(guildID, userID, messageID Snowflake, customID string) (*Interaction, error) {
	return e.component(guildID, userID, messageID, customID, nil)
}

// SelectMenu makes a member pick values in a select menu on a message the bot sent.
func (e *Emulator) SelectMenu(guildID, userID, messageID Snowflake, customID string, values ...string) (*Interaction, error) {
	if values == nil {
		values = []string{}
	}
	return e.component(guildID, userID, messageID, customID, values)
}

func (e *Emulator) component(guildID, userID, messageID Snowflake, customID string, values []string) (*Interaction, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg, ok := e.messages[messageID]
	if !ok || msg.Deleted || msg.GuildID != guildID {
		return nil, ErrNoMessage
	}
	ctype, ok := findComponent(msg.Components, customID)
	if !ok {
		return nil, fmt.Errorf("%w: %q on message %s", ErrNoComponent, customID, messageID)
	}
	gs, m, ch, err := e.actorLocked(guildID, userID, msg.ChannelID)
	if err != nil {
		return nil, err
	}
	ix := e.newInteractionLocked(InteractionComponent, gs, m, ch)
	ix.CustomID = customID
	ix.component = msg
	if (ctype == 2) != (values == nil) {
		return nil, fmt.Errorf("%w: %q is component type %d", ErrNoComponent, customID, ctype)
	}
	data := map[string]any{"custom_id": customID, "component_type": ctype}
	if values != nil {
		data["values"] = values
	}
	return ix, e.dispatchInteractionLocked(ix, gs, m, ch, data, e.messagePayloadLocked(msg))
}

func (e *Emulator) actorLocked(guildID, userID, channelID Snowflake) (*guildState, *Member, *Channel, error) {
	gs, ok := e.guilds[guildID]
	if !ok {
		return nil, nil, nil, ErrNoGuild
	}
	m, ok := gs.members[userID]
	if !ok {
		return nil, nil, nil, ErrNoMember
	}
	ch, ok := gs.channels[channelID]
	if !ok {
		return nil, nil, nil, ErrNoChannel
	}
	if ch.Type == ChannelCategory {
		return nil, nil, nil, ErrNotTextTarget
	}
	return gs, m, ch, nil
}

func (e *Emulator) newInteractionLocked(typ int, gs *guildState, m *Member, ch *Channel) *Interaction {
	ix := &Interaction{e: e, ID: NewSnowflake(), Type: typ, GuildID: gs.g.ID, ChannelID: ch.ID,
		UserID: m.User.ID, Created: time.Now(), changed: make(chan struct{})}
	ix.Token = "aW50ZXJhY3Rpb246" + ix.ID.String() + ":" + randomString(40)
	return ix
}

func (e *Emulator) dispatchInteractionLocked(ix *Interaction, gs *guildState, m *Member, ch *Channel, data map[string]any, message map[string]any) error {
	owners := e.ownersLocked(gs.g.ID)
	if len(owners) == 0 {
		return ErrNotConnected
	}
	s := owners[0]
	for _, o := range owners {
		if o.conn != nil {
			s = o
			break
		}
	}
	ix.shard = s.shard
	perms := strconv.FormatUint(gs.memberPermissions(m.User.ID), 10)
	member := memberPayload(m)
	member["permissions"] = perms
	channel := channelPayload(ch, gs.g.ID)
	channel["permissions"] = perms
	p := map[string]any{
		"id": ix.ID, "application_id": e.cfg.AppID, "type": ix.Type, "token": ix.Token, "version": 1,
		"guild_id": gs.g.ID, "guild": map[string]any{"id": gs.g.ID, "locale": gs.g.Locale, "features": []any{}},
		"channel_id": ch.ID, "member": member,
		"app_permissions": strconv.FormatUint(gs.appPermissions(), 10),
		"locale":          "en-US", "guild_locale": gs.g.Locale, "entitlements": []any{},
		"authorizing_integration_owners": map[string]any{"0": gs.g.ID}, "context": 0,
		"attachment_size_limit": 10 << 20, "data": data,
	}
	if !e.cfg.OmitInteractionChannel {
		p["channel"] = channel
	}
	if message != nil {
		p["message"] = message
	}
	e.pruneInteractionsLocked()
	e.interactions[ix.ID] = ix
	e.byToken[ix.Token] = ix
	e.dispatchLocked(s, "INTERACTION_CREATE", p, func(t time.Time) {
		e.mu.Lock()
		if ix.sentAt.IsZero() {
			ix.sentAt = t
		}
		e.mu.Unlock()
	})
	return nil
}

// checkOptions rejects invocations a Discord client could not produce for the registered
// command: unknown names or wrong types.
func checkOptions(spec []CommandOption, given []Option) error {
	for _, g := range given {
		var found *CommandOption
		for i := range spec {
			if spec[i].Name == g.Name {
				found = &spec[i]
			}
		}
		if found == nil {
			return fmt.Errorf("no option %q registered", g.Name)
		}
		if found.Type != g.Type {
			return fmt.Errorf("option %q is type %d, registered as %d", g.Name, g.Type, found.Type)
		}
		if g.Type == OptionSubCommand || g.Type == OptionSubCommandGroup {
			if err := checkOptions(found.Options, g.Options); err != nil {
				return err
			}
		}
	}
	for _, s := range spec {
		if !s.Required {
			continue
		}
		ok := false
		for _, g := range given {
			ok = ok || g.Name == s.Name
		}
		if !ok && !anyFocused(given) {
			return fmt.Errorf("required option %q missing", s.Name)
		}
	}
	return nil
}

func anyFocused(opts []Option) bool {
	for _, o := range opts {
		if o.Focused || anyFocused(o.Options) {
			return true
		}
	}
	return false
}

// callback handles POST /interactions/{id}/{token}/callback with Discord's rules: one
// initial response, within the deadline, of a type that fits the interaction.
func (e *Emulator) callback(id Snowflake, token string, body []byte, withResponse bool) (int, any, *formError) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, ok := e.interactions[id]
	if !ok || ix.Token != token {
		return 0, nil, &formError{status: 404, code: 10062, message: "Unknown interaction"}
	}
	if ix.response != nil {
		e.recordErrorLocked(ProtocolError{At: now, Kind: ErrDoubleAck, Shard: ix.shard, GuildID: ix.GuildID, Detail: "interaction " + ix.ID.String()})
		return 0, nil, &formError{status: 400, code: 40060, message: "Interaction has already been acknowledged."}
	}
	start := ix.sentAt
	if start.IsZero() {
		start = ix.Created
	}
	if now.Sub(start) > e.cfg.InteractionDeadline {
		ix.late = true
		e.recordErrorLocked(ProtocolError{At: now, Kind: ErrLateInteraction, Shard: ix.shard, GuildID: ix.GuildID,
			Detail: "interaction " + ix.ID.String() + " answered after " + now.Sub(start).String()})
		return 0, nil, &formError{status: 404, code: 10062, message: "Unknown interaction"}
	}
	var cb struct {
		Type int             `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &cb); err != nil {
		return 0, nil, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."}
	}
	if !responseAllowed(ix.Type, cb.Type) {
		return 0, nil, invalidForm("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction response type "+strconv.Itoa(cb.Type)+" is not valid for interaction type "+strconv.Itoa(ix.Type))
	}
	mb, err := parseMessageBody(cb.Data)
	if err != nil {
		return 0, nil, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."}
	}
	r := &Response{Type: cb.Type, Raw: cb.Data, At: now, Latency: now.Sub(start)}
	switch cb.Type {
	case ResponseMessage, ResponseUpdateMessage:
		content, embeds, comps, flags := mb.content(), mb.list("embeds"), mb.list("components"), mb.flags()
		if cb.Type == ResponseMessage || mb.present("content") || mb.present("embeds") || mb.present("components") {
			if cb.Type == ResponseUpdateMessage {
				m := ix.component
				if !mb.present("content") {
					content = m.Content
				}
				if !mb.present("embeds") {
					embeds = m.rawEmbeds
				}
				if !mb.present("components") {
					comps = m.Components
				}
			}
			if fe := validateMessage(content, embeds, comps, flags, mb.has("attachments")); fe != nil {
				return 0, nil, fe
			}
		}
		r.Content, r.Flags, r.Components = content, flags, comps
		r.Embeds = decodeEmbeds(embeds)
	case ResponseDeferredMessage, ResponseDeferredUpdate:
		r.Flags = mb.flags()
	case ResponseAutocompleteResult:
		var d struct {
			Choices []Choice `json:"choices"`
		}
		_ = json.Unmarshal(cb.Data, &d)
		if len(d.Choices) > 25 {
			return 0, nil, invalidForm("data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
		}
		r.Choices = d.Choices
	}

	switch cb.Type {
	case ResponseMessage:
		m := e.newMessageLocked(ix.ChannelID, ix.GuildID, ix, 20)
		applyMessageBody(m, mb, true)
		m.Flags = r.Flags & (FlagEphemeral | FlagSuppressEmbeds | FlagComponentsV2)
		ix.original = m
		e.publishLocked(m)
	case ResponseDeferredMessage:
		m := e.newMessageLocked(ix.ChannelID, ix.GuildID, ix, 20)
		m.Flags = r.Flags&FlagEphemeral | FlagLoading
		ix.original = m
		e.publishLocked(m)
	case ResponseDeferredUpdate:
		ix.original = ix.component
	case ResponseUpdateMessage:
		m := ix.component
		applyMessageBody(m, mb, false)
		m.EditedTimestamp = now.UTC()
		ix.original = m
		e.notifyLocked()
	}
	ix.response = r
	ix.notifyLocked()
	if !withResponse {
		return 204, nil, nil
	}
	cbResp := map[string]any{"id": ix.ID, "type": ix.Type, "response_message_loading": cb.Type == ResponseDeferredMessage,
		"response_message_ephemeral": r.Flags&FlagEphemeral != 0}
	res := map[string]any{"type": cb.Type}
	if ix.original != nil {
		cbResp["response_message_id"] = ix.original.ID
		res["message"] = e.messagePayloadLocked(ix.original)
	}
	return 200, map[string]any{"interaction": cbResp, "resource": res}, nil
}

func responseAllowed(ixType, respType int) bool {
	switch ixType {
	case InteractionAutocomplete:
		return respType == ResponseAutocompleteResult
	case InteractionCommand:
		return respType == ResponseMessage || respType == ResponseDeferredMessage || respType == ResponseModal
	case InteractionComponent:
		return respType == ResponseMessage || respType == ResponseDeferredMessage ||
			respType == ResponseDeferredUpdate || respType == ResponseUpdateMessage || respType == ResponseModal
	}
	return false
}

// webhookInteractionLocked resolves /webhooks/{app}/{token}: a wrong application is an
// unknown webhook; an unknown or expired token is Discord's 401 50027.
func (e *Emulator) webhookInteractionLocked(app Snowflake, token string) (*Interaction, *formError) {
	if app != e.cfg.AppID {
		return nil, &formError{status: 404, code: 10015, message: "Unknown Webhook"}
	}
	ix, ok := e.byToken[token]
	if !ok {
		return nil, &formError{status: 401, code: 50027, message: "Invalid Webhook Token"}
	}
	if time.Since(ix.Created) > e.cfg.TokenLifetime {
		e.recordErrorLocked(ProtocolError{Kind: ErrExpiredInteractionToken, Shard: ix.shard, GuildID: ix.GuildID, Detail: "interaction " + ix.ID.String()})
		return nil, &formError{status: 401, code: 50027, message: "Invalid Webhook Token"}
	}
	return ix, nil
}

var errUnknownMessage = &formError{status: 404, code: 10008, message: "Unknown Message"}

// interactionMessageLocked finds @original or a follow-up of the interaction.
func (ix *Interaction) messageLocked(msgID string) (*storedMessage, *formError) {
	if msgID == "@original" {
		if ix.original == nil || ix.original.Deleted {
			return nil, errUnknownMessage
		}
		return ix.original, nil
	}
	id, err := ParseSnowflake(msgID)
	if err != nil {
		return nil, errUnknownMessage
	}
	if ix.original != nil && ix.original.ID == id && !ix.original.Deleted {
		return ix.original, nil
	}
	for _, m := range ix.followups {
		if m.ID == id && !m.Deleted {
			return m, nil
		}
	}
	return nil, errUnknownMessage
}

func (e *Emulator) webhookGet(app Snowflake, token, msgID string) (any, *formError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, fe := e.webhookInteractionLocked(app, token)
	if fe != nil {
		return nil, fe
	}
	m, fe := ix.messageLocked(msgID)
	if fe != nil {
		return nil, fe
	}
	return e.messagePayloadLocked(m), nil
}

func (e *Emulator) webhookEdit(app Snowflake, token, msgID string, body []byte) (any, *formError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, fe := e.webhookInteractionLocked(app, token)
	if fe != nil {
		return nil, fe
	}
	m, fe := ix.messageLocked(msgID)
	if fe != nil {
		return nil, fe
	}
	mb, err := parseMessageBody(body)
	if err != nil {
		return nil, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."}
	}
	next := *m
	applyMessageBody(&next, mb, false)
	if fe := validateMessage(next.Content, next.rawEmbeds, next.Components, next.Flags, false); fe != nil {
		return nil, fe
	}
	*m = next
	m.Flags &^= FlagLoading
	m.EditedTimestamp = time.Now().UTC()
	if m == ix.original {
		ix.edits = append(ix.edits, m.view())
	}
	ix.notifyLocked()
	e.notifyLocked()
	return e.messagePayloadLocked(m), nil
}

func (e *Emulator) webhookDelete(app Snowflake, token, msgID string) *formError {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, fe := e.webhookInteractionLocked(app, token)
	if fe != nil {
		return fe
	}
	m, fe := ix.messageLocked(msgID)
	if fe != nil {
		return fe
	}
	m.Deleted = true
	ix.notifyLocked()
	e.notifyLocked()
	return nil
}

// webhookFollowup creates a follow-up. The first follow-up after a deferred response
// replaces the "thinking" message instead of creating a new one, as on Discord.
func (e *Emulator) webhookFollowup(app Snowflake, token string, body []byte) (any, *formError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, fe := e.webhookInteractionLocked(app, token)
	if fe != nil {
		return nil, fe
	}
	if ix.response == nil || ix.Type == InteractionAutocomplete {
		return nil, &formError{status: 404, code: 10015, message: "Unknown Webhook"}
	}
	mb, err := parseMessageBody(body)
	if err != nil {
		return nil, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."}
	}
	if fe := validateMessage(mb.content(), mb.list("embeds"), mb.list("components"), mb.flags(), mb.has("attachments")); fe != nil {
		return nil, fe
	}
	if o := ix.original; o != nil && ix.response.Type == ResponseDeferredMessage && o.Flags&FlagLoading != 0 && !o.Deleted {
		applyMessageBody(o, mb, false)
		o.Flags &^= FlagLoading
		o.EditedTimestamp = time.Now().UTC()
		ix.followups = append(ix.followups, o)
		ix.edits = append(ix.edits, o.view())
		ix.notifyLocked()
		e.notifyLocked()
		return e.messagePayloadLocked(o), nil
	}
	m := e.newMessageLocked(ix.ChannelID, ix.GuildID, ix, 19)
	applyMessageBody(m, mb, true)
	m.Flags = mb.flags() & (FlagEphemeral | FlagSuppressEmbeds | FlagComponentsV2)
	ix.followups = append(ix.followups, m)
	e.publishLocked(m)
	ix.notifyLocked()
	return e.messagePayloadLocked(m), nil
}

// Interaction returns the handle of a dispatched interaction.
func (e *Emulator) Interaction(id Snowflake) (*Interaction, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ix, ok := e.interactions[id]
	return ix, ok
}

// minPruneAt is the interaction count below which no sweep runs.
const minPruneAt = 20000

// pruneInteractionsLocked forgets interactions whose token expired, so a long load test
// does not grow the maps without bound. It sweeps only when the map is large, and the next
// sweep waits until the map has doubled: with every token still valid (a load of more than
// 20000 interactions within the token lifetime) a sweep per dispatch would make each
// dispatch O(n).
func (e *Emulator) pruneInteractionsLocked() {
	if len(e.interactions) < e.pruneAt {
		return
	}
	horizon := time.Now().Add(-e.cfg.TokenLifetime - e.cfg.InteractionDeadline)
	for id, ix := range e.interactions {
		if ix.Created.Before(horizon) {
			delete(e.interactions, id)
			delete(e.byToken, ix.Token)
		}
	}
	e.pruneAt = max(minPruneAt, 2*len(e.interactions))
}
