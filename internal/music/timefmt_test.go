package music_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"0", 0, false},
		{"45", 45 * time.Second, false},
		{"90", 90 * time.Second, false},
		{"1:30", 90 * time.Second, false},
		{"01:30", 90 * time.Second, false},
		{"1:05", 65 * time.Second, false},
		{"1:5", 65 * time.Second, false},
		{"0:00", 0, false},
		{"1:59", 119 * time.Second, false},
		{"1:02:03", time.Hour + 2*time.Minute + 3*time.Second, false},
		{" 2:00 ", 2 * time.Minute, false},
		{"99:59:59", music.MaxTimestamp, false},
		{"359999", music.MaxTimestamp, false},
		{"5999:59", music.MaxTimestamp, false},
		{"360000", 0, true},
		{"100:00:00", 0, true},
		{"6000:00", 0, true},
		{"1:60", 0, true},
		{"1:60:00", 0, true},
		{"1:00:60", 0, true},
		{"-1", 0, true},
		{"-1:30", 0, true},
		{"+5", 0, true},
		{"", 0, true},
		{"  ", 0, true},
		{":", 0, true},
		{"1:", 0, true},
		{":30", 0, true},
		{"1::30", 0, true},
		{"1:2:3:4", 0, true},
		{"1.5", 0, true},
		{"1:30.5", 0, true},
		{"1m30s", 0, true},
		{"abc", 0, true},
		{"１:30", 0, true},
		{"1 : 30", 0, true},
		{"9999999", 0, true},
		{"99999999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := music.ParseTimestamp(tt.in)
		if tt.wantErr {
			if !errors.Is(err, music.ErrTimestamp) || got != 0 {
				t.Errorf("ParseTimestamp(%q) = %v, %v; want ErrTimestamp", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestValidateSeek(t *testing.T) {
	song := tr("a")
	song.Length = 3*time.Minute + 7*time.Second
	live := tr("l")
	live.IsStream = true
	tests := []struct {
		name    string
		track   music.Track
		pos     time.Duration
		wantErr error
	}{
		{"start", song, 0, nil},
		{"middle", song, time.Minute, nil},
		{"last second", song, song.Length - time.Second, nil},
		{"at end", song, song.Length, music.ErrSeekBeyondEnd},
		{"past end", song, time.Hour, music.ErrSeekBeyondEnd},
		{"negative", song, -time.Second, music.ErrTimestamp},
		{"stream", live, 0, music.ErrNotSeekable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := music.ValidateSeek(tt.track, tt.pos)
			checkErr(t, err, tt.wantErr)
			if errors.Is(err, music.ErrSeekBeyondEnd) && !strings.Contains(err.Error(), "3:07") {
				t.Fatalf("error %q does not give the track length", err)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0:00"},
		{999 * time.Millisecond, "0:00"},
		{5 * time.Second, "0:05"},
		{3*time.Minute + 7*time.Second, "3:07"},
		{59*time.Minute + 59*time.Second, "59:59"},
		{time.Hour, "1:00:00"},
		{time.Hour + 2*time.Minute + 3*time.Second, "1:02:03"},
		{music.MaxTimestamp, "99:59:59"},
		{125 * time.Hour, "125:00:00"},
		{-time.Minute, "0:00"},
	}
	for _, tt := range tests {
		if got := music.FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDisplayLength(t *testing.T) {
	song := tr("a")
	song.Length = 187 * time.Second
	if got := song.DisplayLength(); got != "3:07" {
		t.Errorf("song DisplayLength = %q", got)
	}
	song.IsStream = true
	if got := song.DisplayLength(); got != "LIVE" {
		t.Errorf("stream DisplayLength = %q", got)
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		name        string
		pos, length time.Duration
		width       int
		want        string
	}{
		{"start", 0, time.Minute, 5, "●────"},
		{"end", time.Minute, time.Minute, 5, "━━━━●"},
		{"half", 30 * time.Second, time.Minute, 5, "━━●──"},
		{"rounds", 10 * time.Second, time.Minute, 7, "━●─────"},
		{"past end clamps", time.Hour, time.Minute, 5, "━━━━●"},
		{"negative clamps", -time.Hour, time.Minute, 5, "●────"},
		{"stream", time.Hour, 0, 5, "●────"},
		{"tiny width", 0, time.Minute, 0, "●─"},
		{"width 2 end", time.Minute, time.Minute, 2, "━●"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := music.ProgressBar(tt.pos, tt.length, tt.width); got != tt.want {
				t.Fatalf("ProgressBar = %q, want %q", got, tt.want)
			}
		})
	}
	if n := utf8.RuneCountInString(music.ProgressBar(time.Second, time.Minute, 1<<30)); n != 100 {
		t.Fatalf("huge width gave %d cells, want 100", n)
	}
	for w := 2; w <= 30; w++ {
		for p := time.Duration(0); p <= time.Minute; p += 7 * time.Second {
			if n := utf8.RuneCountInString(music.ProgressBar(p, time.Minute, w)); n != w {
				t.Fatalf("ProgressBar(%v, 1m, %d) has %d cells", p, w, n)
			}
		}
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"0", "90", "1:30", "1:02:03", "99:59:59", "1:60", "-1", "", "::", "100:00:00", " 5 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := music.ParseTimestamp(s)
		if err != nil {
			if !errors.Is(err, music.ErrTimestamp) || d != 0 {
				t.Fatalf("ParseTimestamp(%q) = %v, %v", s, d, err)
			}
			return
		}
		if d < 0 || d > music.MaxTimestamp || d%time.Second != 0 {
			t.Fatalf("ParseTimestamp(%q) = %v, out of bounds", s, d)
		}
		// What we display, we accept back as the same value.
		back, err := music.ParseTimestamp(music.FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("round trip of %q: %v → %q → %v, %v", s, d, music.FormatDuration(d), back, err)
		}
	})
}
