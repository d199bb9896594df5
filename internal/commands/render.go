package commands

import (
	"strings"
	"unicode/utf8"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// Discord's message limits. Going over any of them fails the whole request
// with a 400, so rendering clamps instead: a shortened title beats a reply
// that never arrives.
const (
	maxContent      = 2000
	maxEmbeds       = 10
	maxEmbedTitle   = 256
	maxEmbedDesc    = 4096
	maxEmbedFields  = 25
	maxFieldName    = 256
	maxFieldValue   = 1024
	maxFooter       = 2048
	maxEmbedsTotal  = 6000
	maxRows         = 5
	maxRowButtons   = 5
	maxButtonLabel  = 80
	emptyReplyText  = "Done."
	zeroWidthSpace  = "\u200b"
	ephemeralFlag   = discord.MessageFlagEphemeral
	defaultBtnLabel = "…"
)

// noMentions is set on every message: disgo's default allows @everyone,
// role and user pings, and a track title must never ping anyone.
func noMentions() *discord.AllowedMentions {
	return &discord.AllowedMentions{
		Parse: []discord.AllowedMentionType{},
		Roles: []snowflake.ID{},
		Users: []snowflake.ID{},
	}
}

// MessageCreate renders a reply for an interaction response, a follow-up or a
// channel message. A nil or empty reply becomes "Done.": Discord refuses an
// empty message, and the member should see that something happened.
func MessageCreate(r *clusterpb.Reply) discord.MessageCreate {
	content, embeds, rows := render(r)
	m := discord.MessageCreate{
		Content:         content,
		Embeds:          embeds,
		Components:      rows,
		AllowedMentions: noMentions(),
	}
	if r != nil && r.Ephemeral {
		m.Flags = ephemeralFlag
	}
	return m
}

// MessageUpdate renders a reply as an edit that replaces the whole message:
// content, embeds and buttons are always sent, empty ones included, so nothing
// of the previous state survives. Ephemerality cannot change on an edit and
// is not sent.
func MessageUpdate(r *clusterpb.Reply) discord.MessageUpdate {
	content, embeds, rows := render(r)
	if embeds == nil {
		embeds = []discord.Embed{}
	}
	if rows == nil {
		rows = []discord.LayoutComponent{}
	}
	return discord.MessageUpdate{
		Content:         &content,
		Embeds:          &embeds,
		Components:      &rows,
		AllowedMentions: noMentions(),
	}
}

func render(r *clusterpb.Reply) (string, []discord.Embed, []discord.LayoutComponent) {
	if r == nil {
		return emptyReplyText, nil, nil
	}
	content := truncate(neutralizeMentions(strings.ToValidUTF8(r.Content, "\uFFFD")), maxContent)
	embeds := renderEmbeds(r.Embeds)
	rows := renderRows(r.Rows)
	if strings.TrimSpace(content) == "" && len(embeds) == 0 && len(rows) == 0 {
		content = emptyReplyText
	}
	return content, embeds, rows
}

func renderEmbeds(in []*clusterpb.Embed) []discord.Embed {
	var out []discord.Embed
	budget := maxEmbedsTotal
	for _, e := range in {
		if e == nil || len(out) == maxEmbeds {
			continue
		}
		d := discord.NewEmbed().
			WithTitle(clean(e.Title, maxEmbedTitle)).
			WithURL(linkURL(e.Url)).
			WithColor(int(e.Color) & 0xFFFFFF)
		if u := linkURL(e.ThumbnailUrl); u != "" {
			d = d.WithThumbnail(u)
		}
		if f := clean(e.Footer, maxFooter); f != "" {
			d = d.WithFooterText(f)
		}
		if d.Title == "" {
			d.URL = "" // Discord links the title; without one the URL is refused
		}
		used := utf8.RuneCountInString(d.Title)
		if d.Footer != nil {
			used += utf8.RuneCountInString(d.Footer.Text)
		}
		for _, f := range e.Fields {
			if f == nil || len(d.Fields) == maxEmbedFields {
				continue
			}
			name, value := nonEmpty(clean(f.Name, maxFieldName)), nonEmpty(clean(f.Value, maxFieldValue))
			used += utf8.RuneCountInString(name) + utf8.RuneCountInString(value)
			d = d.AddField(name, value, f.Inline)
		}
		if used > budget {
			break // the embeds before it still fit; this one and later do not
		}
		budget -= used
		d.Description = clean(e.Description, min(maxEmbedDesc, budget))
		budget -= utf8.RuneCountInString(d.Description)
		if d.Title == "" && d.Description == "" && len(d.Fields) == 0 && d.Footer == nil && d.Thumbnail == nil {
			continue
		}
		out = append(out, d)
	}
	return out
}

func renderRows(in []*clusterpb.ButtonRow) []discord.LayoutComponent {
	var out []discord.LayoutComponent
	for _, r := range in {
		if r == nil || len(out) == maxRows {
			continue
		}
		var buttons []discord.InteractiveComponent
		for _, b := range r.Buttons {
			// A button without a usable custom ID fails the whole message.
			if b == nil || b.CustomId == "" || len(b.CustomId) > maxCustomIDLength || !utf8.ValidString(b.CustomId) || len(buttons) == maxRowButtons {
				continue
			}
			style := discord.ButtonStyle(b.Style)
			if style < discord.ButtonStylePrimary || style > discord.ButtonStyleDanger {
				style = discord.ButtonStyleSecondary
			}
			label := clean(b.Label, maxButtonLabel)
			if strings.TrimSpace(label) == "" {
				label = defaultBtnLabel
			}
			buttons = append(buttons, discord.ButtonComponent{Style: style, Label: label, CustomID: b.CustomId, Disabled: b.Disabled})
		}
		if len(buttons) > 0 {
			out = append(out, discord.NewActionRow(buttons...))
		}
	}
	return out
}

// clean makes text valid UTF-8 within limit characters and keeps
// @everyone/@here from rendering as a mention.
func clean(s string, limit int) string {
	return truncate(neutralizeMentions(strings.ToValidUTF8(s, "\uFFFD")), limit)
}

// neutralizeMentions breaks @everyone and @here. Builders escape user text
// already; this covers text that reached a Reply another way, and
// allowed_mentions covers the rest.
func neutralizeMentions(s string) string {
	if !strings.Contains(s, "@everyone") && !strings.Contains(s, "@here") {
		return s
	}
	return massMentions.Replace(s)
}

func truncate(s string, limit int) string {
	if limit <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit-1]) + "…"
}

func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return zeroWidthSpace
	}
	return s
}

// massMentions defuses @everyone and @here. Built once: a Replacer is
// costly to build, and replies are rendered on every command.
var massMentions = strings.NewReplacer("@everyone", "@"+zeroWidthSpace+"everyone", "@here", "@"+zeroWidthSpace+"here")
