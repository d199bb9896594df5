package commands

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/disgoorg/disgo/discord"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

func track(title string) music.Track {
	return music.Track{
		Encoded: "QAAA", Identifier: "dQw4w9WgXcQ", Title: title, Author: "Rick Astley",
		URI: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", ArtworkURL: "https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg",
		SourceName: "youtube", Length: 3*time.Minute + 33*time.Second, RequesterID: testUser,
	}
}

func nowPlayingView() NowPlayingView {
	next := track("Together Forever")
	next.URI = "https://www.youtube.com/watch?v=yPYZpwSpKmA"
	return NowPlayingView{Guild: guild, Track: track("Never Gonna Give You Up"), Position: 42 * time.Second,
		Volume: 80, Loop: music.LoopQueue, QueueLen: 3, Next: &next}
}

// The rendered messages, as Discord receives them, are golden files: a
// change in what users see shows up in review as a diff.
func TestRepliesGolden(t *testing.T) {
	paused := nowPlayingView()
	paused.Paused, paused.Loop, paused.Autoplay, paused.Next, paused.QueueLen = true, music.LoopOff, true, nil, 0
	stream := nowPlayingView()
	stream.Track.IsStream, stream.Track.Title, stream.Track.RequesterID = true, "lofi hip hop radio 📚", ""
	q, _ := music.RestoreQueue(100, []music.Track{track("One"), track("Two *bold*"), track("Three")})
	page, _ := q.Page(1, 10)
	empty, _ := music.NewQueue(10)
	emptyPage, _ := empty.Page(1, 10)
	cur := track("Now")
	for name, r := range map[string]*clusterpb.Reply{
		"nowplaying":        NowPlaying(nowPlayingView()),
		"nowplaying_paused": NowPlaying(paused),
		"nowplaying_stream": NowPlaying(stream),
		"queue":             QueuePage(page, &cur),
		"queue_empty":       QueuePage(emptyPage, nil),
		"added":             Added(track("Never Gonna Give You Up"), 4),
		"added_playing":     Added(track("Never Gonna Give You Up"), 0),
		"added_playlist":    AddedPlaylist("80s hits", 75, 25),
		"settings":          SettingsView(music.Settings{DJRoleID: testRole, DefaultVolume: 120, AnnounceChannelID: testChannel}),
		"settings_default":  SettingsView(music.DefaultSettings()),
		"error":             Error("you need the DJ role <@&" + testRole + "> to use /skip"),
		"info":              Info("Skipped."),
	} {
		t.Run(name, func(t *testing.T) {
			golden(t, "replies/"+name, MessageCreate(r))
		})
	}
}

func TestNowPlayingButtons(t *testing.T) {
	for _, paused := range []bool{false, true} {
		for _, loop := range []music.LoopMode{music.LoopOff, music.LoopTrack, music.LoopQueue} {
			v := nowPlayingView()
			v.Paused, v.Loop = paused, loop
			r := NowPlaying(v)
			labels := map[string]string{}
			for _, row := range r.Rows {
				for _, b := range row.Buttons {
					action, err := ParseCustomID(b.CustomId, guild)
					if err != nil {
						t.Fatalf("button %q: %v", b.CustomId, err)
					}
					labels[action] = b.Label
				}
			}
			if len(labels) != len(buttonCommands) {
				t.Fatalf("buttons %v, want one per action", labels)
			}
			wantPause := map[bool]string{false: "Pause", true: "Resume"}[paused]
			if labels[ButtonPauseResume] != wantPause || labels[ButtonLoop] != "Loop: "+loop.String() {
				t.Errorf("paused=%v loop=%v: labels %v", paused, loop, labels)
			}
		}
	}
	// The progress bar and times follow the position.
	v := nowPlayingView()
	d := NowPlaying(v).Embeds[0].Description
	if !strings.Contains(d, "`0:42`") || !strings.Contains(d, "`3:33`") || !strings.Contains(d, music.ProgressBar(42*time.Second, v.Track.Length, progressBar)) {
		t.Errorf("description %q", d)
	}
}

// hostile is a track title written to ping, forge links and break layout.
const hostile = "@everyone @here <@&" + testRole + "> <@" + testUser + "> **bold** [click](https://evil.example) `code`\n# Heading\u202e"

func TestUserTextIsEscaped(t *testing.T) {
	tr := track(hostile)
	tr.Author = "@everyone"
	tr.RequesterID = "" // the requester mention is the bot's own, not user text
	tr.URI = "javascript:alert(1)"
	tr.ArtworkURL = "http://127.0.0.1/x.png) [y](z"
	view := nowPlayingView()
	view.Track, view.Next = tr, &tr
	q, _ := music.RestoreQueue(10, []music.Track{tr})
	page, _ := q.Page(1, 10)
	for name, r := range map[string]*clusterpb.Reply{
		"nowplaying": NowPlaying(view),
		"queue":      QueuePage(page, &tr),
		"added":      Added(tr, 1),
		"playlist":   AddedPlaylist(hostile, 1, 0),
	} {
		b, _ := json.Marshal(MessageCreate(r))
		var m discord.MessageCreate
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var text []string
		for _, e := range m.Embeds {
			text = append(text, e.Title, e.Description)
			for _, f := range e.Fields {
				text = append(text, f.Value)
			}
			if strings.Contains(e.URL, "javascript") {
				t.Errorf("%s: embed URL %q", name, e.URL)
			}
		}
		all := strings.Join(text, "\n")
		for _, bad := range []string{"@everyone", "@here", "<@&", "<@" + testUser, "**bold**", "[click]", "\u202e", "javascript:", "\n# Heading"} {
			if strings.Contains(all, bad) {
				t.Errorf("%s: rendered text contains %q:\n%s", name, bad, all)
			}
		}
	}
}

func TestEveryMessageAllowsNoMentions(t *testing.T) {
	none := `"allowed_mentions":{"parse":[],"roles":[],"users":[],"replied_user":false}`
	for name, r := range map[string]*clusterpb.Reply{
		"nil": nil, "empty": {}, "error": Error("@everyone"), "info": Info("<@&1>"),
		"nowplaying": NowPlaying(nowPlayingView()), "settings": SettingsView(music.DefaultSettings()),
	} {
		for kind, v := range map[string]any{"create": MessageCreate(r), "update": MessageUpdate(r)} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), none) {
				t.Errorf("%s %s: %s", name, kind, b)
			}
		}
	}
}

func TestRenderEdges(t *testing.T) {
	// Nothing to show still shows something.
	for _, r := range []*clusterpb.Reply{nil, {}, {Content: "  "}, {Embeds: []*clusterpb.Embed{nil, {}}}, {Rows: []*clusterpb.ButtonRow{{Buttons: []*clusterpb.Button{{Label: "no id"}}}}}} {
		if m := MessageCreate(r); m.Content != "Done." {
			t.Errorf("%v rendered content %q", r, m.Content)
		}
		if u := MessageUpdate(r); *u.Content != "Done." || len(*u.Embeds) != 0 || len(*u.Components) != 0 {
			t.Errorf("%v rendered update %+v", r, u)
		}
	}
	// Ephemeral is flag 64 on create and absent on update.
	if m := MessageCreate(Error("no")); m.Flags != 64 {
		t.Errorf("error flags %d", m.Flags)
	}
	if m := MessageCreate(Info("yes")); m.Flags != 0 {
		t.Errorf("info flags %d", m.Flags)
	}
	if b, _ := json.Marshal(MessageUpdate(Error("no"))); strings.Contains(string(b), "flags") {
		t.Errorf("update sends flags: %s", b)
	}
	// An edit to a message without embeds or buttons removes the old ones.
	if b, _ := json.Marshal(MessageUpdate(Info("Stopped."))); !strings.Contains(string(b), `"embeds":[]`) || !strings.Contains(string(b), `"components":[]`) {
		t.Errorf("update does not clear: %s", b)
	}

	// Over Discord's limits, everything is clamped rather than refused.
	big := &clusterpb.Reply{Content: strings.Repeat("x", 3000)}
	for i := range 12 {
		e := &clusterpb.Embed{Title: strings.Repeat("t", 300), Description: strings.Repeat("d", 5000), Footer: strings.Repeat("f", 3000),
			Url: "https://example.com/" + fmt.Sprint(i)}
		for range 30 {
			e.Fields = append(e.Fields, &clusterpb.Embed_Field{Name: strings.Repeat("n", 300), Value: strings.Repeat("v", 2000)})
		}
		big.Embeds = append(big.Embeds, e)
	}
	for range 7 {
		row := &clusterpb.ButtonRow{}
		for j := range 7 {
			row.Buttons = append(row.Buttons, &clusterpb.Button{CustomId: CustomID(ButtonSkip, guild), Label: strings.Repeat("l", 100), Style: int32(j)})
		}
		row.Buttons = append(row.Buttons, &clusterpb.Button{CustomId: strings.Repeat("c", 101)})
		big.Rows = append(big.Rows, row)
	}
	m := MessageCreate(big)
	if n := utf8.RuneCountInString(m.Content); n != maxContent {
		t.Errorf("content %d characters", n)
	}
	total := 0
	for _, e := range m.Embeds {
		if utf8.RuneCountInString(e.Title) > maxEmbedTitle || utf8.RuneCountInString(e.Description) > maxEmbedDesc || len(e.Fields) > maxEmbedFields {
			t.Errorf("embed over limits: title %d, description %d, %d fields", len(e.Title), len(e.Description), len(e.Fields))
		}
		total += utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
		if e.Footer != nil {
			total += utf8.RuneCountInString(e.Footer.Text)
		}
		for _, f := range e.Fields {
			if utf8.RuneCountInString(f.Name) > maxFieldName || utf8.RuneCountInString(f.Value) > maxFieldValue {
				t.Errorf("field over limits")
			}
			total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
	}
	if total > maxEmbedsTotal || len(m.Embeds) > maxEmbeds {
		t.Errorf("%d embeds with %d characters", len(m.Embeds), total)
	}
	if len(m.Components) != maxRows {
		t.Errorf("%d rows", len(m.Components))
	}
	for _, c := range m.Components {
		row := c.(discord.ActionRowComponent)
		if len(row.Components) != maxRowButtons {
			t.Errorf("%d buttons in a row", len(row.Components))
		}
		for _, ic := range row.Components {
			b := ic.(discord.ButtonComponent)
			if len(b.CustomID) > maxCustomIDLength || utf8.RuneCountInString(b.Label) > maxButtonLabel || b.Style < 1 || b.Style > 4 {
				t.Errorf("button %+v", b)
			}
		}
	}
}

func TestQueuePageStaysWithinTheDescription(t *testing.T) {
	var tracks []music.Track
	for i := range 25 {
		tr := track(strings.Repeat("Long title ", 30))
		tr.Author = strings.Repeat("author ", 30)
		tr.URI = "https://example.com/" + strings.Repeat("a", 480) + fmt.Sprint(i)
		tracks = append(tracks, tr)
	}
	q, _ := music.RestoreQueue(100, tracks)
	page, _ := q.Page(1, 25)
	d := QueuePage(page, &tracks[0]).Embeds[0].Description
	if n := utf8.RuneCountInString(d); n > maxEmbedDesc {
		t.Fatalf("description %d characters", n)
	}
	if !strings.HasSuffix(d, "more on this page") || strings.Count(d, "](https://") != strings.Count(d, "\n`")+1 {
		t.Fatalf("lines are cut instead of left off:\n%s", d[len(d)-300:])
	}
	if r := MessageCreate(QueuePage(page, nil)); r.Embeds[0].Description != QueuePage(page, nil).Embeds[0].Description {
		t.Fatal("rendering cut the queue description")
	}
}

func TestEscapeLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"plain title", 100, "plain title"},
		{"a*b_c", 100, `a\*b\_c`},
		{"line\nbreak\r\n", 100, "line break"},
		{"@everyone", 100, "@\u200beveryone"},
		{"abcdef", 4, "abc…"},
		{"abcd", 4, "abcd"},
		{"ab**", 4, "ab…"}, // an escape is never cut in half
		{"\xff\xfe", 10, "\uFFFD"},
		{"a\x00b\x1bc", 10, "abc"},
	} {
		if got := escapeLine(tc.in, tc.limit); got != tc.want {
			t.Errorf("escapeLine(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestLinkURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com/a":                           "https://example.com/a",
		"https://example.com/a_(b)":                       "https://example.com/a_%28b%29",
		"javascript:alert(1)":                             "",
		"file:///etc/passwd":                              "",
		"https://user:pw@example.com/":                    "",
		"https://example.com/a b":                         "",
		"//example.com":                                   "",
		"https://example.com/" + strings.Repeat("a", 600): "",
	} {
		if got := linkURL(in); got != want {
			t.Errorf("linkURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// escapeLineSlow is escapeLine as first written, a step per rule: the
// one-pass escapeLine must say exactly what it says.
func escapeLineSlow(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, lineBreak), " ")
	s = strings.TrimSpace(s)
	var pieces []string
	total := 0
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			continue
		}
		e, _ := appendEscaped(nil, r)
		pieces = append(pieces, string(e))
		total += utf8.RuneCount(e)
	}
	if total > limit {
		n := 0
		for i, e := range pieces {
			if n += utf8.RuneCountInString(e); n > limit-1 {
				pieces = append(pieces[:i], "…")
				break
			}
		}
	}
	return strings.Join(pieces, "")
}

// FuzzEscapeLine: track titles and authors come from Lavalink, which takes
// them from whatever site a link points at.
func FuzzEscapeLine(f *testing.F) {
	f.Add(hostile, 256)
	f.Add("a**b", 3)
	f.Add("\xff@everyone\n", 10)
	f.Add(" \u2028a\u202eb\t\xc0c  ", 3)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = 2 + abs(limit)%300
		got := escapeLine(s, limit)
		if want := escapeLineSlow(s, limit); got != want {
			t.Fatalf("escapeLine(%q, %d) = %q; the rules one by one say %q", s, limit, got, want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > limit {
			t.Fatalf("escapeLine(%q, %d) = %q", s, limit, got)
		}
		if strings.ContainsAny(got, "\n\r\u202e") || strings.Contains(got, "@everyone") || strings.Contains(got, "<@") {
			t.Fatalf("escapeLine(%q) = %q", s, got)
		}
		// Every Markdown character is escaped: removing escaped pairs
		// leaves none.
		rest := got
		for _, c := range []string{`\\`, `\*`, `\_`, "\\`", `\~`, `\|`, `\[`, `\]`, `\(`, `\)`, `\>`, `\#`, `\-`} {
			rest = strings.ReplaceAll(rest, c, "")
		}
		if strings.ContainsAny(rest, "\\*_`~|[]()>#-") {
			t.Fatalf("escapeLine(%q) = %q leaves Markdown in %q", s, got, rest)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}

// BenchmarkQueuePage renders a full /queue page, the reply a busy guild
// sends most (70 % of loadgen's mix).
func BenchmarkQueuePage(b *testing.B) {
	var tracks []music.Track
	for i := range 30 {
		tracks = append(tracks, track(fmt.Sprintf("Never Gonna Give You Up (Official Video) %d", i)))
	}
	q, _ := music.RestoreQueue(100, tracks)
	page, _ := q.Page(2, QueuePageSize)
	cur := track("Together Forever")
	b.ReportAllocs()
	for b.Loop() {
		QueuePage(page, &cur)
	}
}
