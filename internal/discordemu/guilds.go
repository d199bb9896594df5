package discordemu

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ChannelType is Discord's channel type number.
type ChannelType int

// Channel types the emulator models.
const (
	ChannelText       ChannelType = 0
	ChannelVoice      ChannelType = 2
	ChannelCategory   ChannelType = 4
	ChannelStageVoice ChannelType = 13
)

func (t ChannelType) isVoice() bool { return t == ChannelVoice || t == ChannelStageVoice }

// Permission bits used by the bot's rules (Discord's values).
const (
	PermAdministrator          uint64 = 1 << 3
	PermManageChannels         uint64 = 1 << 4
	PermManageGuild            uint64 = 1 << 5
	PermViewChannel            uint64 = 1 << 10
	PermSendMessages           uint64 = 1 << 11
	PermEmbedLinks             uint64 = 1 << 14
	PermReadMessageHistory     uint64 = 1 << 16
	PermConnect                uint64 = 1 << 20
	PermSpeak                  uint64 = 1 << 21
	PermUseApplicationCommands uint64 = 1 << 31
	permAll                    uint64 = 1<<51 - 1

	// DefaultEveryonePermissions is what @everyone gets when a Guild does not define it.
	DefaultEveryonePermissions = PermViewChannel | PermSendMessages | PermEmbedLinks |
		PermReadMessageHistory | PermConnect | PermSpeak | PermUseApplicationCommands
)

// Guild describes a fake guild. ID must be a snowflake (use SnowflakeForShard to pick the
// shard it lands on).
type Guild struct {
	ID       Snowflake
	Name     string
	OwnerID  Snowflake // default: the first member, else a fresh ID
	Locale   string    // preferred_locale; default "en-US"
	Channels []Channel
	Roles    []Role // an @everyone role (ID = guild ID) is added if missing
	Members  []Member
	// VoiceStates present when the guild is created (users already in voice).
	VoiceStates []VoiceState
	// BotPermissions is what the bot's managed role grants (app_permissions).
	// Default: Administrator-free set a music bot is invited with.
	BotPermissions uint64
}

// Channel is a guild channel.
type Channel struct {
	ID       Snowflake
	Name     string
	Type     ChannelType
	Position int
	ParentID Snowflake
}

// Role is a guild role. Permissions are Discord permission bits.
type Role struct {
	ID          Snowflake
	Name        string
	Permissions uint64
	Position    int
}

// User is a Discord user.
type User struct {
	ID         Snowflake
	Username   string
	GlobalName string
	Bot        bool
}

// Member is a user's membership of a guild.
type Member struct {
	User     User
	Nick     string
	Roles    []Snowflake
	JoinedAt time.Time
}

// VoiceState says which voice channel a user is in. ChannelID 0 means none.
type VoiceState struct {
	UserID    Snowflake
	ChannelID Snowflake
	SessionID string
	SelfMute  bool
	SelfDeaf  bool
}

type guildState struct {
	g        Guild
	joinedAt time.Time
	channels map[Snowflake]*Channel
	roles    map[Snowflake]*Role
	members  map[Snowflake]*Member
	order    []Snowflake // member order, for stable GUILD_CREATE
	voice    map[Snowflake]*VoiceState
}

// Errors returned by the world API.
var (
	ErrNoGuild       = errors.New("discordemu: unknown guild")
	ErrNoMember      = errors.New("discordemu: user is not a member of the guild")
	ErrNoChannel     = errors.New("discordemu: unknown channel")
	ErrNotConnected  = errors.New("discordemu: no gateway session owns the guild's shard")
	ErrNoCommand     = errors.New("discordemu: command is not registered")
	ErrNoMessage     = errors.New("discordemu: unknown message")
	ErrNoComponent   = errors.New("discordemu: message has no component with that custom_id")
	ErrGuildExists   = errors.New("discordemu: guild already exists")
	ErrNotSnowflake  = errors.New("discordemu: guild ID is not a snowflake")
	ErrNotVoice      = errors.New("discordemu: channel is not a voice channel")
	ErrNotTextTarget = errors.New("discordemu: channel is not a text channel")
)

const botDefaultPermissions = PermViewChannel | PermSendMessages | PermEmbedLinks |
	PermReadMessageHistory | PermConnect | PermSpeak | PermUseApplicationCommands

// AddGuild adds the bot to a guild. If a connected shard owns it, that shard receives
// GUILD_CREATE at once (as when the bot is invited); otherwise the guild appears in the next
// READY and GUILD_CREATE burst.
func (e *Emulator) AddGuild(g Guild) error {
	if g.ID == 0 || uint64(g.ID)>>22 == 0 {
		return ErrNotSnowflake
	}
	gs := &guildState{
		joinedAt: time.Now().UTC(),
		channels: map[Snowflake]*Channel{},
		roles:    map[Snowflake]*Role{},
		members:  map[Snowflake]*Member{},
		voice:    map[Snowflake]*VoiceState{},
	}
	if g.Name == "" {
		g.Name = "guild-" + g.ID.String()
	}
	if g.Locale == "" {
		g.Locale = "en-US"
	}
	if g.BotPermissions == 0 {
		g.BotPermissions = botDefaultPermissions
	}
	hasEveryone := false
	for _, r := range g.Roles {
		if r.ID == g.ID {
			hasEveryone = true
		}
	}
	if !hasEveryone {
		g.Roles = append([]Role{{ID: g.ID, Name: "@everyone", Permissions: DefaultEveryonePermissions}}, g.Roles...)
	}
	for i := range g.Channels {
		c := g.Channels[i]
		if c.ID == 0 {
			return fmt.Errorf("discordemu: channel %q has no ID", c.Name)
		}
		if c.Name == "" {
			c.Name = "channel-" + c.ID.String()
		}
		gs.channels[c.ID] = &c
	}
	for i := range g.Roles {
		r := g.Roles[i]
		gs.roles[r.ID] = &r
	}
	for i := range g.Members {
		m := g.Members[i]
		if m.JoinedAt.IsZero() {
			m.JoinedAt = gs.joinedAt
		}
		if m.User.Username == "" {
			m.User.Username = "user" + m.User.ID.String()
		}
		gs.members[m.User.ID] = &m
		gs.order = append(gs.order, m.User.ID)
	}
	if g.OwnerID == 0 {
		if len(g.Members) > 0 {
			g.OwnerID = g.Members[0].User.ID
		} else {
			g.OwnerID = NewSnowflake()
		}
	}
	gs.g = g
	for _, vs := range g.VoiceStates {
		v := vs
		if v.SessionID == "" {
			v.SessionID = randomString(32)
		}
		gs.voice[v.UserID] = &v
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.guilds[g.ID]; ok {
		return ErrGuildExists
	}
	// The bot is a member of every guild it is in.
	if _, ok := gs.members[e.cfg.BotUserID]; !ok {
		gs.members[e.cfg.BotUserID] = &Member{User: e.botUser(), JoinedAt: gs.joinedAt}
		gs.order = append(gs.order, e.cfg.BotUserID)
	}
	e.guilds[g.ID] = gs
	for id := range gs.channels {
		// The first guild to claim a channel ID keeps it, as a scan in ID order would not
		// promise anything better for IDs that a test reused.
		if _, taken := e.channelGuild[id]; !taken {
			e.channelGuild[id] = gs
		}
	}
	for _, s := range e.ownersLocked(g.ID) {
		if s.intents&intentGuilds != 0 {
			e.dispatchLocked(s, "GUILD_CREATE", e.guildCreatePayloadLocked(gs), nil)
		}
	}
	return nil
}

// JoinVoice moves a member into a voice channel and tells the bot (VOICE_STATE_UPDATE on
// the owning shard, if it asked for the GuildVoiceStates intent).
func (e *Emulator) JoinVoice(guildID, userID, channelID Snowflake) error {
	return e.setUserVoice(guildID, userID, channelID)
}

// LeaveVoice takes a member out of voice.
func (e *Emulator) LeaveVoice(guildID, userID Snowflake) error {
	return e.setUserVoice(guildID, userID, 0)
}

func (e *Emulator) setUserVoice(guildID, userID, channelID Snowflake) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, ok := e.guilds[guildID]
	if !ok {
		return ErrNoGuild
	}
	m, ok := gs.members[userID]
	if !ok {
		return ErrNoMember
	}
	vs := gs.voice[userID]
	if channelID != 0 {
		c, ok := gs.channels[channelID]
		if !ok {
			return ErrNoChannel
		}
		if !c.Type.isVoice() {
			return ErrNotVoice
		}
		if vs == nil {
			vs = &VoiceState{UserID: userID, SessionID: randomString(32)}
			gs.voice[userID] = vs
		}
		vs.ChannelID = channelID
	} else {
		if vs == nil {
			return nil
		}
		delete(gs.voice, userID)
		vs = &VoiceState{UserID: userID, SessionID: vs.SessionID}
	}
	payload := e.voiceStatePayloadLocked(gs, vs, m)
	for _, s := range e.ownersLocked(guildID) {
		if s.intents&intentGuildVoiceStates != 0 {
			e.dispatchLocked(s, "VOICE_STATE_UPDATE", payload, nil)
		}
	}
	return nil
}

// UserVoiceState returns a user's voice state in a guild (the bot included).
func (e *Emulator) UserVoiceState(guildID, userID Snowflake) (VoiceState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, ok := e.guilds[guildID]
	if !ok {
		return VoiceState{}, false
	}
	vs, ok := gs.voice[userID]
	if !ok {
		return VoiceState{}, false
	}
	return *vs, true
}

// BotVoiceState returns the bot's own voice state in a guild, as set by its op 4.
func (e *Emulator) BotVoiceState(guildID Snowflake) (VoiceState, bool) {
	return e.UserVoiceState(guildID, e.cfg.BotUserID)
}

func (e *Emulator) botUser() User {
	return User{ID: e.cfg.BotUserID, Username: e.cfg.BotName, Bot: true}
}

// memberPermissionsLocked folds @everyone and the member's roles, as Discord computes the
// base (guild-level) permissions; channel overwrites are not modelled.
func (gs *guildState) memberPermissions(userID Snowflake) uint64 {
	if userID == gs.g.OwnerID {
		return permAll
	}
	var p uint64
	if r, ok := gs.roles[gs.g.ID]; ok {
		p = r.Permissions
	}
	if m, ok := gs.members[userID]; ok {
		for _, rid := range m.Roles {
			if r, ok := gs.roles[rid]; ok {
				p |= r.Permissions
			}
		}
	}
	if p&PermAdministrator != 0 {
		return permAll
	}
	return p
}

func (gs *guildState) appPermissions() uint64 {
	p := gs.g.BotPermissions
	if r, ok := gs.roles[gs.g.ID]; ok {
		p |= r.Permissions
	}
	if p&PermAdministrator != 0 {
		return permAll
	}
	return p
}

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000+00:00") }

func userPayload(u User) map[string]any {
	var global any
	if u.GlobalName != "" {
		global = u.GlobalName
	}
	return map[string]any{
		"id": u.ID, "username": u.Username, "discriminator": "0", "global_name": global,
		"avatar": nil, "bot": u.Bot, "public_flags": 0, "flags": 0,
	}
}

func memberPayload(m *Member) map[string]any {
	roles := make([]Snowflake, 0, len(m.Roles))
	roles = append(roles, m.Roles...)
	var nick any
	if m.Nick != "" {
		nick = m.Nick
	}
	return map[string]any{
		"user": userPayload(m.User), "nick": nick, "avatar": nil, "roles": roles,
		"joined_at": timestamp(m.JoinedAt), "premium_since": nil, "deaf": false, "mute": false,
		"flags": 0, "pending": false, "communication_disabled_until": nil,
	}
}

func channelPayload(c *Channel, guildID Snowflake) map[string]any {
	var parent any
	if c.ParentID != 0 {
		parent = c.ParentID
	}
	p := map[string]any{
		"id": c.ID, "type": int(c.Type), "guild_id": guildID, "name": c.Name, "position": c.Position,
		"permission_overwrites": []any{}, "nsfw": false, "parent_id": parent, "flags": 0,
	}
	switch {
	case c.Type.isVoice():
		p["bitrate"] = 64000
		p["user_limit"] = 0
		p["rtc_region"] = nil
		p["last_message_id"] = nil
		p["rate_limit_per_user"] = 0
	case c.Type == ChannelText:
		p["topic"] = nil
		p["last_message_id"] = nil
		p["rate_limit_per_user"] = 0
		p["last_pin_timestamp"] = nil
	}
	return p
}

func rolePayload(r *Role) map[string]any {
	return map[string]any{
		"id": r.ID, "name": r.Name, "color": 0, "colors": map[string]any{"primary_color": 0, "secondary_color": nil, "tertiary_color": nil},
		"hoist": false, "icon": nil, "unicode_emoji": nil,
		"position": r.Position, "permissions": strconv.FormatUint(r.Permissions, 10),
		"managed": false, "mentionable": false, "flags": 0,
	}
}

func (e *Emulator) voiceStatePayloadLocked(gs *guildState, vs *VoiceState, m *Member) map[string]any {
	var ch any
	if vs.ChannelID != 0 {
		ch = vs.ChannelID
	}
	p := map[string]any{
		"guild_id": gs.g.ID, "channel_id": ch, "user_id": vs.UserID, "session_id": vs.SessionID,
		"deaf": false, "mute": false, "self_deaf": vs.SelfDeaf, "self_mute": vs.SelfMute,
		"self_stream": false, "self_video": false, "suppress": false, "request_to_speak_timestamp": nil,
	}
	if m != nil {
		p["member"] = memberPayload(m)
	}
	return p
}

func (e *Emulator) guildCreatePayloadLocked(gs *guildState) map[string]any {
	channels := make([]any, 0, len(gs.g.Channels))
	for _, c := range gs.g.Channels {
		channels = append(channels, channelPayload(gs.channels[c.ID], gs.g.ID))
	}
	roles := make([]any, 0, len(gs.roles))
	for _, r := range gs.g.Roles {
		roles = append(roles, rolePayload(gs.roles[r.ID]))
	}
	members := make([]any, 0, len(gs.order))
	for _, id := range gs.order {
		members = append(members, memberPayload(gs.members[id]))
	}
	voice := make([]any, 0, len(gs.voice))
	for _, vs := range gs.voice {
		p := e.voiceStatePayloadLocked(gs, vs, nil)
		delete(p, "guild_id") // GUILD_CREATE voice states omit it
		voice = append(voice, p)
	}
	return map[string]any{
		"id": gs.g.ID, "name": gs.g.Name, "icon": nil, "splash": nil, "discovery_splash": nil,
		"owner_id": gs.g.OwnerID, "afk_channel_id": nil, "afk_timeout": 300,
		"verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
		"roles": roles, "emojis": []any{}, "stickers": []any{}, "features": []any{}, "mfa_level": 0,
		"application_id": nil, "system_channel_id": nil, "system_channel_flags": 0,
		"rules_channel_id": nil, "vanity_url_code": nil, "description": nil, "banner": nil,
		"premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": gs.g.Locale,
		"public_updates_channel_id": nil, "nsfw_level": 0, "premium_progress_bar_enabled": false,
		"safety_alerts_channel_id": nil, "max_members": 500000, "max_video_channel_users": 25,
		"joined_at": timestamp(gs.joinedAt), "large": false, "unavailable": false,
		"member_count": len(gs.members), "voice_states": voice, "members": members,
		"channels": channels, "threads": []any{}, "presences": []any{}, "stage_instances": []any{},
		"guild_scheduled_events": []any{}, "soundboard_sounds": []any{}, "lazy": true,
	}
}

const intentGuildMembers = 1 << 1

// AddMember adds a user to a guild. The bot hears of it (GUILD_MEMBER_ADD) only if it
// asked for the privileged GuildMembers intent, as on Discord.
func (e *Emulator) AddMember(guildID Snowflake, m Member) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, ok := e.guilds[guildID]
	if !ok {
		return ErrNoGuild
	}
	if m.JoinedAt.IsZero() {
		m.JoinedAt = time.Now().UTC()
	}
	if m.User.Username == "" {
		m.User.Username = "user" + m.User.ID.String()
	}
	if _, exists := gs.members[m.User.ID]; !exists {
		gs.order = append(gs.order, m.User.ID)
	}
	gs.members[m.User.ID] = &m
	p := memberPayload(&m)
	p["guild_id"] = guildID
	for _, s := range e.ownersLocked(guildID) {
		if s.intents&intentGuildMembers != 0 {
			e.dispatchLocked(s, "GUILD_MEMBER_ADD", p, nil)
		}
	}
	return nil
}

// RemoveGuild removes the bot from a guild (kicked): the owning shard gets GUILD_DELETE
// without "unavailable", which is how Discord tells a removal from an outage.
func (e *Emulator) RemoveGuild(guildID Snowflake) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, ok := e.guilds[guildID]
	if !ok {
		return ErrNoGuild
	}
	delete(e.guilds, guildID)
	for id := range gs.channels {
		if e.channelGuild[id] == gs {
			delete(e.channelGuild, id)
		}
	}
	delete(e.guildCmds, guildID)
	for _, s := range e.ownersLocked(guildID) {
		if s.intents&intentGuilds != 0 {
			e.dispatchLocked(s, "GUILD_DELETE", map[string]any{"id": guildID}, nil)
		}
	}
	return nil
}
