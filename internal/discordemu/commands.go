package discordemu

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Command is a registered application command.
type Command struct {
	ID            Snowflake       `json:"id"`
	ApplicationID Snowflake       `json:"application_id"`
	GuildID       Snowflake       `json:"-"`
	Version       Snowflake       `json:"version"`
	Type          int             `json:"type"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Options       []CommandOption `json:"options"`
	raw           map[string]json.RawMessage
}

// CommandOption is an option of a registered command.
type CommandOption struct {
	Type         int               `json:"type"`
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Required     bool              `json:"required"`
	Autocomplete bool              `json:"autocomplete"`
	Choices      []json.RawMessage `json:"choices"`
	Options      []CommandOption   `json:"options"`
}

var commandName = regexp.MustCompile(`^[-_'\p{L}\p{N}\p{Devanagari}\p{Thai}]{1,32}$`)

func nameError(path, name string, chatInput bool) *formError {
	if !commandName.MatchString(name) || (chatInput && strings.ToLower(name) != name) {
		return invalidForm(path+".name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
	}
	return nil
}

func descError(path, desc string) *formError {
	if n := utf8.RuneCountInString(desc); n < 1 || n > 100 {
		return invalidForm(path+".description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
	}
	return nil
}

// parseCommand validates one command object the way Discord does for the parts a bot
// commonly gets wrong (names, descriptions, option counts and order, choices).
func parseCommand(raw json.RawMessage, path string) (*Command, *formError) {
	var c Command
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, invalidForm(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
	}
	_ = json.Unmarshal(raw, &c.raw)
	if c.Type == 0 {
		c.Type = 1
	}
	if c.Type < 1 || c.Type > 4 {
		return nil, invalidForm(path+".type", "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4).")
	}
	chat := c.Type == 1
	if fe := nameError(path, c.Name, chat); fe != nil {
		return nil, fe
	}
	if chat {
		if fe := descError(path, c.Description); fe != nil {
			return nil, fe
		}
	} else if c.Description != "" || len(c.Options) > 0 {
		return nil, invalidForm(path+".description", "APPLICATION_COMMAND_CONTEXT_MENU_INVALID", "Context menu commands cannot have description or options")
	}
	if fe := checkOptionSpecs(c.Options, path+".options", 0); fe != nil {
		return nil, fe
	}
	return &c, nil
}

func checkOptionSpecs(opts []CommandOption, path string, depth int) *formError {
	if len(opts) > 25 {
		return invalidForm(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
	}
	seenOptional := false
	names := map[string]bool{}
	for i, o := range opts {
		p := path + "." + strconv.Itoa(i)
		if o.Type < OptionSubCommand || o.Type > OptionAttachment {
			return invalidForm(p+".type", "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11).")
		}
		if fe := nameError(p, o.Name, true); fe != nil {
			return fe
		}
		if names[o.Name] {
			return invalidForm(p+".name", "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique")
		}
		names[o.Name] = true
		if fe := descError(p, o.Description); fe != nil {
			return fe
		}
		if o.Required && seenOptional {
			return invalidForm(p+".required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options")
		}
		if !o.Required {
			seenOptional = true
		}
		if len(o.Choices) > 25 {
			return invalidForm(p+".choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
		}
		if o.Autocomplete && len(o.Choices) > 0 {
			return invalidForm(p+".autocomplete", "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_AND_CHOICES", "Autocomplete cannot be set with choices")
		}
		if o.Type == OptionSubCommand || o.Type == OptionSubCommandGroup {
			if depth >= 2 {
				return invalidForm(p, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Subcommands nested too deep")
			}
			if fe := checkOptionSpecs(o.Options, p+".options", depth+1); fe != nil {
				return fe
			}
		}
	}
	return nil
}

// setCommandsLocked is a bulk overwrite: IDs are kept for commands whose name and type
// survive, as Discord does, so a bot that re-registers at every start keeps its IDs.
func (e *Emulator) setCommandsLocked(guildID Snowflake, body []byte) ([]any, *formError) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."}
	}
	if len(raws) > 100 {
		return nil, invalidForm("_", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
	}
	old := e.globalCmds
	if guildID != 0 {
		old = e.guildCmds[guildID]
	}
	seen := map[string]bool{}
	cmds := make([]*Command, 0, len(raws))
	for i, raw := range raws {
		c, fe := parseCommand(raw, strconv.Itoa(i))
		if fe != nil {
			return nil, fe
		}
		key := strconv.Itoa(c.Type) + "/" + c.Name
		if seen[key] {
			return nil, invalidForm(strconv.Itoa(i)+".name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
		}
		seen[key] = true
		c.ID = NewSnowflake()
		for _, o := range old {
			if o.Type == c.Type && o.Name == c.Name {
				c.ID = o.ID
			}
		}
		c.ApplicationID, c.GuildID, c.Version = e.cfg.AppID, guildID, NewSnowflake()
		cmds = append(cmds, c)
	}
	if guildID == 0 {
		e.globalCmds = cmds
	} else {
		e.guildCmds[guildID] = cmds
	}
	e.notifyLocked()
	return e.commandsPayload(cmds), nil
}

func (e *Emulator) upsertCommandLocked(guildID Snowflake, body []byte) (any, bool, *formError) {
	c, fe := parseCommand(body, "")
	if fe != nil {
		return nil, false, fe
	}
	list := e.globalCmds
	if guildID != 0 {
		list = e.guildCmds[guildID]
	}
	c.ApplicationID, c.GuildID, c.Version = e.cfg.AppID, guildID, NewSnowflake()
	created := true
	for i, o := range list {
		if o.Type == c.Type && o.Name == c.Name {
			c.ID = o.ID
			list[i] = c
			created = false
		}
	}
	if created {
		c.ID = NewSnowflake()
		list = append(list, c)
	}
	if guildID == 0 {
		e.globalCmds = list
	} else {
		e.guildCmds[guildID] = list
	}
	e.notifyLocked()
	return e.commandPayload(c), created, nil
}

func (e *Emulator) commandsPayload(cmds []*Command) []any {
	out := make([]any, 0, len(cmds))
	for _, c := range cmds {
		out = append(out, e.commandPayload(c))
	}
	return out
}

// commandPayload echoes what the bot sent, plus the fields Discord fills in.
func (e *Emulator) commandPayload(c *Command) map[string]any {
	p := map[string]any{}
	for k, v := range c.raw {
		p[k] = v
	}
	p["id"], p["application_id"], p["version"], p["type"] = c.ID, c.ApplicationID, c.Version, c.Type
	if c.GuildID != 0 {
		p["guild_id"] = c.GuildID
	}
	if _, ok := p["default_member_permissions"]; !ok {
		p["default_member_permissions"] = nil
	}
	if _, ok := p["nsfw"]; !ok {
		p["nsfw"] = false
	}
	if _, ok := p["description"]; !ok {
		p["description"] = ""
	}
	if _, ok := p["integration_types"]; !ok {
		p["integration_types"] = []int{0}
	}
	if _, ok := p["contexts"]; !ok {
		p["contexts"] = nil
	}
	return p
}

func (e *Emulator) findCommandLocked(guildID Snowflake, name string) *Command {
	for _, c := range e.guildCmds[guildID] {
		if c.Name == name && c.Type == 1 {
			return c
		}
	}
	for _, c := range e.globalCmds {
		if c.Name == name && c.Type == 1 {
			return c
		}
	}
	return nil
}

// Commands returns the registered commands: global ones for guildID 0, else that guild's.
func (e *Emulator) Commands(guildID Snowflake) []Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	list := e.globalCmds
	if guildID != 0 {
		list = e.guildCmds[guildID]
	}
	out := make([]Command, 0, len(list))
	for _, c := range list {
		out = append(out, *c)
	}
	return out
}
