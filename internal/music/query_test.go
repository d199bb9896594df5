package music_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestValidateQuery(t *testing.T) {
	tests := []struct {
		in         string
		want       string
		wantSearch bool
		wantErr    error
	}{
		// Searches.
		{"never gonna give you up", "ytsearch:never gonna give you up", true, nil},
		{"  padded  ", "ytsearch:padded", true, nil},
		{"Hamilton: My Shot", "ytsearch:Hamilton: My Shot", true, nil},
		{"Hamilton:\u00a0My Shot", "ytsearch:Hamilton:\u00a0My Shot", true, nil},
		{"12:34 song", "ytsearch:12:34 song", true, nil},
		{"ytsearch:lofi", "ytsearch:lofi", true, nil},
		{"YTSearch: lofi ", "ytsearch:lofi", true, nil},
		{"ytmsearch:lofi", "ytmsearch:lofi", true, nil},
		{"scsearch:lofi", "scsearch:lofi", true, nil},
		{"ytsearch:file:///etc/passwd", "ytsearch:file:///etc/passwd", true, nil},
		{"/etc/passwd", "ytsearch:/etc/passwd", true, nil},
		{"../../etc/passwd", "ytsearch:../../etc/passwd", true, nil},
		{`\\server\share\x.mp3`, `ytsearch:\\server\share\x.mp3`, true, nil},
		{"www.youtube.com/watch?v=x", "ytsearch:www.youtube.com/watch?v=x", true, nil},
		{"日本語の歌", "ytsearch:日本語の歌", true, nil},
		{strings.Repeat("a", 500), "ytsearch:" + strings.Repeat("a", 500), true, nil},
		{strings.Repeat("é", 500), "ytsearch:" + strings.Repeat("é", 500), true, nil},
		// URLs.
		{"https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", false, nil},
		{"HTTPS://soundcloud.com/a/b", "https://soundcloud.com/a/b", false, nil},
		{"http://example.com:8080/a.mp3", "http://example.com:8080/a.mp3", false, nil},
		{"http://93.184.216.34/a.mp3", "http://93.184.216.34/a.mp3", false, nil},
		{"http://[2606:2800:220:1::]/a.mp3", "http://[2606:2800:220:1::]/a.mp3", false, nil},
		{"http://example.com/a b", "http://example.com/a%20b", false, nil},
		// Refused.
		{"", "", false, music.ErrEmptyQuery},
		{" \t ", "", false, music.ErrEmptyQuery},
		{"ytsearch:", "", false, music.ErrEmptyQuery},
		{"scsearch:   ", "", false, music.ErrEmptyQuery},
		{strings.Repeat("a", 501), "", false, music.ErrQueryTooLong},
		{strings.Repeat("a", 3000), "", false, music.ErrQueryTooLong},
		{"a\x00b", "", false, music.ErrInvalidQuery},
		{"a\nb", "", false, music.ErrInvalidQuery},
		{"a\xffb", "", false, music.ErrInvalidQuery},
		{"file:///etc/passwd", "", false, music.ErrUnsupportedSource},
		{"local:/etc/passwd", "", false, music.ErrUnsupportedSource},
		{"javascript:alert(1)", "", false, music.ErrUnsupportedSource},
		{"ftp://example.com/a.mp3", "", false, music.ErrUnsupportedSource},
		{"spsearch:song", "", false, music.ErrUnsupportedSource},
		{`C:\Music\a.mp3`, "", false, music.ErrUnsupportedSource},
		{"http:/etc/passwd", "", false, music.ErrInvalidURL},
		{"http:example.com", "", false, music.ErrInvalidURL},
		{"https://", "", false, music.ErrInvalidURL},
		{"https:///path", "", false, music.ErrInvalidURL},
		{"http://user:pw@example.com/", "", false, music.ErrInvalidURL},
		{"https://youtube.com@evil.example/", "", false, music.ErrInvalidURL},
		{"http://localhost:2333/v4/info", "", false, music.ErrInvalidURL},
		{"http://LOCALHOST./", "", false, music.ErrInvalidURL},
		{"http://api.localhost/", "", false, music.ErrInvalidURL},
		{"http://127.0.0.1/", "", false, music.ErrInvalidURL},
		{"http://10.0.0.5/a.mp3", "", false, music.ErrInvalidURL},
		{"http://192.168.1.1/", "", false, music.ErrInvalidURL},
		{"http://169.254.169.254/latest/meta-data/", "", false, music.ErrInvalidURL},
		{"http://0.0.0.0/", "", false, music.ErrInvalidURL},
		{"http://[::1]/", "", false, music.ErrInvalidURL},
		{"http://[::ffff:127.0.0.1]/", "", false, music.ErrInvalidURL},
		{"http://[fe80::1%25eth0]/", "", false, music.ErrInvalidURL},
		{"http://2130706433/", "", false, music.ErrInvalidURL},
		{"http://127.1/", "", false, music.ErrInvalidURL},
		{"http://0x7f.0.0.1/", "", false, music.ErrInvalidURL},
		{"http://example.com%2f/", "", false, music.ErrInvalidURL},
		{"http://exa mple.com/", "", false, music.ErrInvalidURL},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			q, err := music.ValidateQuery(tt.in)
			checkErr(t, err, tt.wantErr)
			if q.Identifier != tt.want || q.Search != tt.wantSearch {
				t.Fatalf("ValidateQuery(%q) = %+v, want %q search=%v", tt.in, q, tt.want, tt.wantSearch)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Fatalf("error message is %d bytes", len(err.Error()))
			}
		})
	}
}

func FuzzValidateQuery(f *testing.F) {
	for _, s := range []string{
		"song", "ytsearch:x", "https://example.com/a", "file:///etc/passwd", "local:x", "/etc/passwd",
		"http://127.0.0.1/", "a: b", "HTTP://x.y", "http:x", "ytsearch:", "http://[::1]/", "http://u@h/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := music.ValidateQuery(s)
		if err != nil {
			if q != (music.Query{}) {
				t.Fatalf("error %v with non-zero query %+v", err, q)
			}
			for _, sentinel := range []error{music.ErrEmptyQuery, music.ErrQueryTooLong, music.ErrInvalidQuery, music.ErrUnsupportedSource, music.ErrInvalidURL} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("error %v matches no sentinel", err)
		}
		id := q.Identifier
		allowed := false
		if q.Search {
			for _, p := range music.SearchPrefixes() {
				if strings.HasPrefix(id, p) && strings.TrimSpace(id[len(p):]) != "" {
					allowed = true
				}
			}
		} else {
			allowed = strings.HasPrefix(id, "http://") || strings.HasPrefix(id, "https://")
		}
		if !allowed {
			t.Fatalf("ValidateQuery(%q) = %+v: identifier is neither http(s) nor an allowed search", s, q)
		}
		if !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
			t.Fatalf("identifier %q has invalid or control characters", id)
		}
		if n := utf8.RuneCountInString(strings.TrimSpace(s)); n > music.MaxQueryLength {
			t.Fatalf("a %d-character query passed", n)
		}
		// Validating the result again must be stable (a search prefix adds
		// characters, so only when the identifier is itself short enough).
		if utf8.RuneCountInString(id) > music.MaxQueryLength {
			return
		}
		again, err := music.ValidateQuery(id)
		if err != nil || again != q {
			t.Fatalf("re-validating %q gave %+v, %v", id, again, err)
		}
	})
}

func TestSearchPrefixesIsACopy(t *testing.T) {
	music.SearchPrefixes()[0] = "local:"
	if q, err := music.ValidateQuery("song"); err != nil || q.Identifier != "ytsearch:song" {
		t.Fatalf("mutating SearchPrefixes() changed validation: %+v, %v", q, err)
	}
}
