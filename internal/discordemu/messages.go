package discordemu

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message flags the emulator interprets.
const (
	FlagSuppressEmbeds = 1 << 2
	FlagEphemeral      = 1 << 6
	FlagLoading        = 1 << 7
	FlagComponentsV2   = 1 << 15
)

// Embed is the part of a Discord embed tests usually assert on. The emulator echoes the
// embed exactly as the bot sent it; this is a decoded view.
type Embed struct {
	Title       string       `json:"title,omitempty"`
	Type        string       `json:"type,omitempty"`
	Description string       `json:"description,omitempty"`
	URL         string       `json:"url,omitempty"`
	Timestamp   string       `json:"timestamp,omitempty"`
	Color       int          `json:"color,omitempty"`
	Footer      *EmbedFooter `json:"footer,omitempty"`
	Image       *EmbedMedia  `json:"image,omitempty"`
	Thumbnail   *EmbedMedia  `json:"thumbnail,omitempty"`
	Author      *EmbedAuthor `json:"author,omitempty"`
	Fields      []EmbedField `json:"fields,omitempty"`
}

// EmbedFooter is an embed footer.
type EmbedFooter struct {
	Text    string `json:"text"`
	IconURL string `json:"icon_url,omitempty"`
}

// EmbedMedia is an embed image or thumbnail.
type EmbedMedia struct {
	URL string `json:"url"`
}

// EmbedAuthor is an embed author.
type EmbedAuthor struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// EmbedField is an embed field.
type EmbedField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// Message is a message the bot created (channel message, interaction response or
// follow-up), as it stands now.
type Message struct {
	ID              Snowflake
	ChannelID       Snowflake
	GuildID         Snowflake
	Content         string
	Flags           int
	Embeds          []Embed
	Components      []json.RawMessage
	Timestamp       time.Time
	EditedTimestamp time.Time // zero if never edited
	InteractionID   Snowflake // set for interaction responses and follow-ups
	Deleted         bool
}

// Ephemeral reports whether only the invoking user can see the message.
func (m Message) Ephemeral() bool { return m.Flags&FlagEphemeral != 0 }

// CustomIDs lists the custom_id of every component in the message, depth first.
func (m Message) CustomIDs() []string {
	var out []string
	for _, c := range m.Components {
		walkComponents(c, func(comp componentView) { out = append(out, comp.CustomID) })
	}
	return out
}

type componentView struct {
	Type       int               `json:"type"`
	CustomID   string            `json:"custom_id"`
	Style      int               `json:"style"`
	URL        string            `json:"url"`
	Components []json.RawMessage `json:"components"`
	Accessory  json.RawMessage   `json:"accessory"`
}

// walkComponents calls fn for every component carrying a custom_id.
func walkComponents(raw json.RawMessage, fn func(componentView)) {
	var c componentView
	if json.Unmarshal(raw, &c) != nil {
		return
	}
	if c.CustomID != "" {
		fn(c)
	}
	for _, child := range c.Components {
		walkComponents(child, fn)
	}
	if len(c.Accessory) > 0 {
		walkComponents(c.Accessory, fn)
	}
}

type storedMessage struct {
	Message
	rawEmbeds   []json.RawMessage
	interaction *Interaction
	messageType int
	nonce       string
}

func (m *storedMessage) view() Message {
	v := m.Message
	v.Embeds = decodeEmbeds(m.rawEmbeds)
	v.Components = append([]json.RawMessage(nil), m.Components...)
	return v
}

func decodeEmbeds(raw []json.RawMessage) []Embed {
	out := make([]Embed, 0, len(raw))
	for _, r := range raw {
		var em Embed
		_ = json.Unmarshal(r, &em)
		out = append(out, em)
	}
	return out
}

// messageBody is the subset of a message create/edit body the emulator interprets;
// presence of each field matters for edits, hence the raw map.
type messageBody struct {
	fields map[string]json.RawMessage
}

func parseMessageBody(data []byte) (messageBody, error) {
	var b messageBody
	if len(data) == 0 {
		b.fields = map[string]json.RawMessage{}
		return b, nil
	}
	err := json.Unmarshal(data, &b.fields)
	if b.fields == nil {
		b.fields = map[string]json.RawMessage{}
	}
	return b, err
}

func (b messageBody) has(k string) bool {
	v, ok := b.fields[k]
	return ok && string(v) != "null"
}

func (b messageBody) present(k string) bool { _, ok := b.fields[k]; return ok }

func (b messageBody) content() string {
	var s string
	_ = json.Unmarshal(b.fields["content"], &s)
	return s
}

// nonce is the body's nonce, a string or an integer on Discord.
func (b messageBody) nonce() string {
	raw := b.fields["nonce"]
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func (b messageBody) enforceNonce() bool {
	var v bool
	_ = json.Unmarshal(b.fields["enforce_nonce"], &v)
	return v
}

func (b messageBody) flags() int {
	var f int
	_ = json.Unmarshal(b.fields["flags"], &f)
	return f
}

func (b messageBody) list(k string) []json.RawMessage {
	var l []json.RawMessage
	_ = json.Unmarshal(b.fields[k], &l)
	return l
}

// formError is a Discord JSON error: HTTP status, code, message and optional errors tree.
type formError struct {
	status  int
	code    int
	message string
	errors  map[string]any
}

func invalidForm(field, code, msg string) *formError {
	return &formError{status: 400, code: 50035, message: "Invalid Form Body",
		errors: map[string]any{field: map[string]any{"_errors": []any{map[string]any{"code": code, "message": msg}}}}}
}

var errEmptyMessage = &formError{status: 400, code: 50006, message: "Cannot send an empty message"}

// validateMessage applies the limits Discord enforces on message content, so a bot that
// would be refused in production is refused here.
func validateMessage(content string, embeds, components []json.RawMessage, flags int, hasAttachments bool) *formError {
	if content == "" && len(embeds) == 0 && len(components) == 0 && !hasAttachments {
		return errEmptyMessage
	}
	if utf8.RuneCountInString(content) > 2000 {
		return invalidForm("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
	}
	if len(embeds) > 10 {
		return invalidForm("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
	}
	total := 0
	for i, raw := range embeds {
		var em Embed
		if json.Unmarshal(raw, &em) != nil {
			return invalidForm("embeds."+strconv.Itoa(i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
		}
		if utf8.RuneCountInString(em.Title) > 256 {
			return invalidForm("embeds."+strconv.Itoa(i)+".title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
		}
		if utf8.RuneCountInString(em.Description) > 4096 {
			return invalidForm("embeds."+strconv.Itoa(i)+".description", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length.")
		}
		if len(em.Fields) > 25 {
			return invalidForm("embeds."+strconv.Itoa(i)+".fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
		}
		total += utf8.RuneCountInString(em.Title) + utf8.RuneCountInString(em.Description)
		for _, f := range em.Fields {
			total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
		if em.Footer != nil {
			total += utf8.RuneCountInString(em.Footer.Text)
		}
		if em.Author != nil {
			total += utf8.RuneCountInString(em.Author.Name)
		}
	}
	if total > 6000 {
		return invalidForm("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
	}
	if flags&FlagComponentsV2 == 0 && len(components) > 5 {
		return invalidForm("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
	}
	seen := map[string]bool{}
	for i, raw := range components {
		var row componentView
		if json.Unmarshal(raw, &row) != nil {
			return invalidForm("components."+strconv.Itoa(i), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
		}
		if row.Type == 1 && len(row.Components) > 5 {
			return invalidForm("components."+strconv.Itoa(i)+".components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
		}
		var bad *formError
		walkAll(raw, func(c componentView) {
			if bad != nil {
				return
			}
			if c.Type == 2 { // button
				if c.Style == 5 && (c.URL == "" || c.CustomID != "") {
					bad = invalidForm("components."+strconv.Itoa(i), "BUTTON_LINK_INVALID", "A link button needs a url and no custom_id")
				}
				if c.Style != 5 && c.Style != 6 && c.CustomID == "" {
					bad = invalidForm("components."+strconv.Itoa(i), "BASE_TYPE_REQUIRED", "A custom id required")
				}
			}
			if c.CustomID == "" {
				return
			}
			if utf8.RuneCountInString(c.CustomID) > 100 {
				bad = invalidForm("components."+strconv.Itoa(i), "BASE_TYPE_MAX_LENGTH", "custom_id must be 100 or fewer in length.")
			}
			if seen[c.CustomID] {
				bad = invalidForm("components."+strconv.Itoa(i), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")
			}
			seen[c.CustomID] = true
		})
		if bad != nil {
			return bad
		}
	}
	return nil
}

// walkAll visits every component, with or without a custom_id.
func walkAll(raw json.RawMessage, fn func(componentView)) {
	var c componentView
	if json.Unmarshal(raw, &c) != nil {
		return
	}
	fn(c)
	for _, child := range c.Components {
		walkAll(child, fn)
	}
	if len(c.Accessory) > 0 {
		walkAll(c.Accessory, fn)
	}
}

// findComponent returns the component type of the component with customID.
func findComponent(components []json.RawMessage, customID string) (int, bool) {
	typ, ok := 0, false
	for _, c := range components {
		walkComponents(c, func(v componentView) {
			if v.CustomID == customID && !ok {
				typ, ok = v.Type, true
			}
		})
	}
	return typ, ok
}

// applyMessageBody creates or edits m from a request body. For edits only present fields
// change; null clears, as in Discord's PATCH semantics.
func applyMessageBody(m *storedMessage, b messageBody, create bool) {
	if create || b.present("content") {
		m.Content = b.content()
	}
	if create || b.present("embeds") {
		m.rawEmbeds = b.list("embeds")
	}
	if create || b.present("components") {
		m.Components = b.list("components")
	}
	if create || b.present("flags") {
		keep := m.Flags & (FlagEphemeral | FlagLoading)
		m.Flags = b.flags()&^(FlagLoading) | keep
		if !create {
			// Ephemerality is fixed at creation.
			m.Flags = m.Flags&^FlagEphemeral | keep&FlagEphemeral
		}
	}
}

func (e *Emulator) messagePayloadLocked(m *storedMessage) map[string]any {
	embeds := make([]json.RawMessage, 0, len(m.rawEmbeds))
	embeds = append(embeds, m.rawEmbeds...)
	components := make([]json.RawMessage, 0, len(m.Components))
	components = append(components, m.Components...)
	var edited any
	if !m.EditedTimestamp.IsZero() {
		edited = timestamp(m.EditedTimestamp)
	}
	p := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "author": userPayload(e.botUser()),
		"content": m.Content, "timestamp": timestamp(m.Timestamp), "edited_timestamp": edited,
		"tts": false, "mention_everyone": false, "mentions": []any{}, "mention_roles": []any{},
		"attachments": []any{}, "embeds": embeds, "components": components, "pinned": false,
		"type": m.messageType, "flags": m.Flags,
	}
	if ix := m.interaction; ix != nil {
		p["application_id"] = e.cfg.AppID
		p["webhook_id"] = e.cfg.AppID
		user := User{ID: ix.UserID}
		if gs, ok := e.guilds[ix.GuildID]; ok {
			if mem, ok := gs.members[ix.UserID]; ok {
				user = mem.User
			}
		}
		p["interaction_metadata"] = map[string]any{
			"id": ix.ID, "type": ix.Type, "user": userPayload(user),
			"authorizing_integration_owners": map[string]any{"0": ix.GuildID},
		}
	}
	return p
}

func (e *Emulator) newMessageLocked(channelID, guildID Snowflake, ix *Interaction, msgType int) *storedMessage {
	m := &storedMessage{Message: Message{ID: NewSnowflake(), ChannelID: channelID, GuildID: guildID, Timestamp: time.Now().UTC()},
		interaction: ix, messageType: msgType}
	if ix != nil {
		m.InteractionID = ix.ID
	}
	e.messages[m.ID] = m
	return m
}

// publishLocked makes a non-ephemeral message visible in its channel.
func (e *Emulator) publishLocked(m *storedMessage) {
	if m.Flags&FlagEphemeral == 0 {
		e.channelMsgs[m.ChannelID] = append(e.channelMsgs[m.ChannelID], m.ID)
	}
	e.notifyLocked()
}

// Messages returns the visible (non-ephemeral, not deleted) messages of a channel, oldest
// first.
func (e *Emulator) Messages(channelID Snowflake) []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Message
	for _, id := range e.channelMsgs[channelID] {
		if m := e.messages[id]; m != nil && !m.Deleted {
			out = append(out, m.view())
		}
	}
	return out
}

// Message returns any message the bot created, ephemeral or deleted ones included.
func (e *Emulator) Message(id Snowflake) (Message, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.messages[id]
	if !ok {
		return Message{}, false
	}
	return m.view(), true
}
