package music_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestTrackValidate(t *testing.T) {
	tests := []struct {
		name    string
		track   music.Track
		wantErr bool
	}{
		{"minimal", music.Track{Encoded: "QAAA"}, false},
		{"full", music.Track{Encoded: "QAAA", Identifier: "x", Title: "t", Length: time.Minute, RequesterID: "175928847299117063"}, false},
		{"stream", music.Track{Encoded: "QAAA", IsStream: true}, false},
		{"no encoded", music.Track{Title: "t"}, true},
		{"negative length", music.Track{Encoded: "QAAA", Length: -1}, true},
		{"bad requester", music.Track{Encoded: "QAAA", RequesterID: "me"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.track.Validate()
			if tt.wantErr {
				checkErr(t, err, music.ErrInvalidTrack)
			} else {
				checkErr(t, err, nil)
			}
		})
	}
}

func TestTrackErrorQuotesShortTitle(t *testing.T) {
	err := music.Track{Title: strings.Repeat("x", 3000)}.Validate()
	if err == nil || len(err.Error()) > 120 {
		t.Fatalf("error for a long title is %d bytes", len(err.Error()))
	}
}

// The /queue page appends a track's length into its buffer; it must say what
// DisplayLength says, streams included.
func TestAppendDisplayLength(t *testing.T) {
	for _, tr := range []music.Track{
		{Length: 3*time.Minute + 7*time.Second},
		{Length: time.Hour + 2*time.Minute + 3*time.Second},
		{Length: -time.Second},
		{Length: 3 * time.Minute, IsStream: true},
	} {
		want := tr.DisplayLength()
		if got := string(tr.AppendDisplayLength([]byte("x "))); got != "x "+want {
			t.Errorf("AppendDisplayLength of %+v = %q, want %q", tr, got, "x "+want)
		}
	}
	if got := (music.Track{IsStream: true}).DisplayLength(); got != "LIVE" {
		t.Errorf("a stream's DisplayLength = %q, want LIVE", got)
	}
}
