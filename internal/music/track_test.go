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
