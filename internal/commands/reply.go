package commands

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// Embed colours.
const (
	colorPlaying = 0x5865F2
	colorPaused  = 0x95A5A6
	colorInfo    = 0x57F287
	colorError   = 0xED4245
)

// Button styles (Discord's numbers, as clusterpb.Button documents).
const (
	stylePrimary   = 1
	styleSecondary = 2
	styleSuccess   = 3
	styleDanger    = 4
)

// Bounds on text a list line may take, so a page of long titles stays well
// inside an embed's 4096-character description.
const (
	maxListTitle = 90
	maxURL       = 512
	progressBar  = 18
)

// Error is an ephemeral reply for a refusal or failure; msg is shown as is
// (our own text, possibly quoting bounded user input).
func Error(msg string) *clusterpb.Reply {
	return &clusterpb.Reply{Content: errorPrefix + msg, Ephemeral: true}
}

// IsError reports whether r was made by Error.
func IsError(r *clusterpb.Reply) bool { return strings.HasPrefix(r.GetContent(), errorPrefix) }

const errorPrefix = "⚠️ "

// Info is a short visible confirmation ("Skipped.", "Volume set to 80%.").
// A grain that wants it private sets Ephemeral itself.
func Info(msg string) *clusterpb.Reply {
	return &clusterpb.Reply{Content: msg}
}

// NowPlayingView is what the now-playing message shows.
type NowPlayingView struct {
	// Guild is the guild ID the buttons are bound to.
	Guild    string
	Track    music.Track
	Position time.Duration
	Paused   bool
	Volume   music.Volume
	Loop     music.LoopMode
	Autoplay bool
	// QueueLen is the number of upcoming tracks.
	QueueLen int
	// Next is the track at queue position 1, nil when the queue is empty.
	Next *music.Track
}

// NowPlaying renders the guild's now-playing message: one embed and two rows
// of buttons whose labels show the current state, so the message only needs
// editing when the state changes.
func NowPlaying(v NowPlayingView) *clusterpb.Reply {
	t := v.Track
	var desc strings.Builder
	if t.Author != "" {
		fmt.Fprintf(&desc, "by **%s**\n", escapeLine(t.Author, 200))
	}
	if t.IsStream {
		desc.WriteString("🔴 LIVE")
	} else {
		fmt.Fprintf(&desc, "`%s` %s `%s`", music.FormatDuration(v.Position),
			music.ProgressBar(v.Position, t.Length, progressBar), music.FormatDuration(t.Length))
	}
	if v.Paused {
		desc.WriteString("\n⏸️ Paused")
	}
	if music.ValidateSnowflake(t.RequesterID) == nil {
		fmt.Fprintf(&desc, "\nRequested by <@%s>", t.RequesterID)
	}
	color := colorPlaying
	if v.Paused {
		color = colorPaused
	}
	next := "Nothing queued"
	if v.Next != nil {
		next = trackLine(*v.Next)
	}
	e := &clusterpb.Embed{
		Title:        escapeLine(titleOf(t), 250),
		Url:          linkURL(t.URI),
		Description:  desc.String(),
		ThumbnailUrl: linkURL(t.ArtworkURL),
		Color:        int32(color),
		Fields: []*clusterpb.Embed_Field{
			{Name: "Volume", Value: strconv.Itoa(int(v.Volume)) + "%", Inline: true},
			{Name: "Loop", Value: v.Loop.String(), Inline: true},
			{Name: "Autoplay", Value: onOff(v.Autoplay), Inline: true},
			{Name: "Queue", Value: plural(v.QueueLen, "track"), Inline: true},
			{Name: "Up next", Value: next},
		},
	}
	if t.SourceName != "" {
		e.Footer = "Source: " + escapeLine(t.SourceName, 50)
	}
	pause := &clusterpb.Button{CustomId: CustomID(ButtonPauseResume, v.Guild), Label: "Pause", Style: styleSecondary}
	if v.Paused {
		pause.Label, pause.Style = "Resume", stylePrimary
	}
	autoplay := &clusterpb.Button{CustomId: CustomID(ButtonAutoplay, v.Guild), Label: "Autoplay: " + onOff(v.Autoplay), Style: styleSecondary}
	if v.Autoplay {
		autoplay.Style = styleSuccess
	}
	loop := &clusterpb.Button{CustomId: CustomID(ButtonLoop, v.Guild), Label: "Loop: " + v.Loop.String(), Style: styleSecondary}
	if v.Loop != music.LoopOff {
		loop.Style = styleSuccess
	}
	return &clusterpb.Reply{
		Embeds: []*clusterpb.Embed{e},
		Rows: []*clusterpb.ButtonRow{
			{Buttons: []*clusterpb.Button{
				pause,
				{CustomId: CustomID(ButtonSkip, v.Guild), Label: "Skip", Style: stylePrimary},
				{CustomId: CustomID(ButtonStop, v.Guild), Label: "Stop", Style: styleDanger},
			}},
			{Buttons: []*clusterpb.Button{
				loop,
				{CustomId: CustomID(ButtonShuffle, v.Guild), Label: "Shuffle", Style: styleSecondary},
				autoplay,
			}},
		},
	}
}

// QueuePage renders one page of /queue, with the playing track on top when
// there is one. It is ephemeral: a queue listing is for the one who asked and
// should not push the now-playing message up the channel.
func QueuePage(page music.QueuePage, current *music.Track) *clusterpb.Reply {
	// One buffer for the whole page: /queue is the reply a busy guild
	// sends most, and a line per track built from pieces cost ~9
	// allocations each (BenchmarkQueuePage).
	b := make([]byte, 0, 128*(len(page.Tracks)+1))
	if current != nil {
		b = append(b, "**Now playing:** "...)
		b = appendTrackLine(b, *current)
		b = append(b, "\n\n"...)
	}
	if len(page.Tracks) == 0 {
		b = append(b, "The queue is empty. Add tracks with /play."...)
	}
	runes := utf8.RuneCount(b)
	for i, t := range page.Tracks {
		start := len(b)
		b = append(b, '`')
		b = strconv.AppendInt(b, int64(page.First+i), 10)
		b = append(b, ".` "...)
		b = appendTrackLine(b, t)
		b = append(b, '\n')
		// Long links could overflow the description; cutting it mid-link
		// would garble the rest, so whole lines are left off instead.
		n := utf8.RuneCount(b[start:])
		if runes+n > maxEmbedDesc-100 {
			b = append(b[:start], "…and "+plural(len(page.Tracks)-i, "track")+" more on this page"...)
			break
		}
		runes += n
	}
	return &clusterpb.Reply{
		Ephemeral: true,
		Embeds: []*clusterpb.Embed{{
			Title:       "Queue",
			Description: strings.TrimRight(string(b), "\n"),
			Color:       colorPlaying,
			Footer:      "Page " + strconv.Itoa(page.Number) + " of " + strconv.Itoa(max(page.Pages, 1)) + " · " + plural(page.Total, "track"),
		}},
	}
}

// Added confirms a queued track. position is its 1-based queue position, or
// 0 when it started playing at once.
func Added(track music.Track, position int) *clusterpb.Reply {
	where := "Playing now"
	if position > 0 {
		where = "Added at position " + strconv.Itoa(position)
	}
	return &clusterpb.Reply{Embeds: []*clusterpb.Embed{{
		Title:        where,
		Description:  trackLine(track),
		ThumbnailUrl: linkURL(track.ArtworkURL),
		Color:        colorInfo,
	}}}
}

// AddedPlaylist confirms a playlist: how many tracks were queued and how many
// did not fit under the queue limit.
func AddedPlaylist(name string, added, dropped int) *clusterpb.Reply {
	desc := "Added " + plural(added, "track")
	if name = escapeLine(name, 200); name != "" {
		desc += " from **" + name + "**"
	}
	desc += "."
	if dropped > 0 {
		desc += fmt.Sprintf("\n%s did not fit: the queue is full.", plural(dropped, "track"))
	}
	return &clusterpb.Reply{Embeds: []*clusterpb.Embed{{Title: "Playlist queued", Description: desc, Color: colorInfo}}}
}

// SettingsView shows a guild's settings, privately.
func SettingsView(s music.Settings) *clusterpb.Reply {
	dj := "Not set: only members with Manage Server may control playback"
	if music.ValidateSnowflake(s.DJRoleID) == nil {
		dj = "<@&" + s.DJRoleID + ">"
	}
	announce := "The channel where /play was used"
	if music.ValidateSnowflake(s.AnnounceChannelID) == nil {
		announce = "<#" + s.AnnounceChannelID + ">"
	}
	return &clusterpb.Reply{
		Ephemeral: true,
		Embeds: []*clusterpb.Embed{{
			Title: "Settings",
			Color: colorInfo,
			Fields: []*clusterpb.Embed_Field{
				{Name: "DJ role", Value: dj},
				{Name: "Default volume", Value: strconv.Itoa(int(s.DefaultVolume)) + "%"},
				{Name: "Announce channel", Value: announce},
			},
			Footer: "Change with /settings dj_role, default_volume, announce_channel or reset",
		}},
	}
}

// trackLine is a one-line, escaped "[Title](link) — Author `3:07`".
func trackLine(t music.Track) string {
	return string(appendTrackLine(make([]byte, 0, 128), t))
}

// appendTrackLine appends trackLine(t) to dst.
func appendTrackLine(dst []byte, t music.Track) []byte {
	u := linkURL(t.URI)
	if u != "" {
		dst = append(dst, '[')
	}
	dst = appendEscapedLine(dst, titleOf(t), maxListTitle)
	if u != "" {
		dst = append(dst, "]("...)
		dst = append(dst, u...)
		dst = append(dst, ')')
	}
	if t.Author != "" {
		dst = append(dst, " — "...)
		dst = appendEscapedLine(dst, t.Author, 60)
	}
	dst = append(dst, " `"...)
	return append(t.AppendDisplayLength(dst), '`')
}

func titleOf(t music.Track) string {
	if strings.TrimSpace(t.Title) == "" {
		return "Unknown title"
	}
	return t.Title
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// linkURL returns u when it is a plain http(s) URL fit for a Markdown link or
// an embed field, else "". Discord refuses a whole message over one bad
// embed URL, and a ")" would end a Markdown link early.
func linkURL(u string) string {
	if u == "" || len(u) > maxURL || !utf8.ValidString(u) {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
		return ""
	}
	if strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e }) {
		return ""
	}
	return linkEscapes.Replace(u)
}

// appendEscaped appends how r is shown in escaped text and returns how many
// characters that took: Markdown characters get a backslash; "@" and "<"
// get a zero-width space after them so @everyone, @here and
// <@id>/<@&id>/<#id> cannot render as mentions (allowed_mentions already
// stops pings; this also stops a title from looking like one); bidi
// overrides that could make text read backwards are dropped.
func appendEscaped(dst []byte, r rune) ([]byte, int) {
	switch r {
	case '\\', '*', '_', '~', '`', '|', '>', '#', '[', ']', '(', ')', '-':
		return append(dst, '\\', byte(r)), 2
	case '@', '<':
		return append(dst, string(r)+"\u200b"...), 2
	case '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069':
		return dst, 0
	}
	return utf8.AppendRune(dst, r), 1
}

// lineBreak reports the characters that end a line, which escaped text
// shows as one space.
func lineBreak(r rune) bool {
	return r == '\n' || r == '\r' || r == '\t' || r == 0x85 || r == 0x2028 || r == 0x2029
}

// escapeLine makes outside text safe to show inline: one line, no control
// characters, Markdown and mentions escaped, and at most limit characters
// once escaped, cut between escapes so a cut never leaves a dangling
// backslash. It runs for every line of every /queue page, so the common
// case (valid UTF-8 on one line) makes one pass and appends in place.
func escapeLine(s string, limit int) string {
	return string(appendEscapedLine(make([]byte, 0, len(s)+8), s, limit))
}

// appendEscapedLine appends escapeLine(s, limit) to dst.
func appendEscapedLine(dst []byte, s string, limit int) []byte {
	if !utf8.ValidString(s) || strings.IndexFunc(s, lineBreak) >= 0 {
		s = strings.ToValidUTF8(s, "\uFFFD")
		s = strings.Join(strings.FieldsFunc(s, lineBreak), " ")
	}
	s = strings.TrimSpace(s)
	// cut is the length of the longest prefix of whole escapes within
	// limit-1 characters, where an over-long line ends with "…".
	n, cut := 0, -1
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			continue
		}
		before := len(dst)
		var w int
		if dst, w = appendEscaped(dst, r); n+w > limit-1 && cut < 0 {
			cut = before
		}
		n += w
	}
	if n <= limit {
		return dst
	}
	return append(dst[:cut], "…"...)
}

// Escape makes outside text (a track title, a query) safe to show inline in
// any reply: one line, Markdown, links and mentions escaped, at most 200
// characters.
func Escape(s string) string { return escapeLine(s, 200) }

// linkEscapes keeps a URL from ending a Markdown link early; built once.
var linkEscapes = strings.NewReplacer("(", "%28", ")", "%29", "<", "%3C", ">", "%3E")
