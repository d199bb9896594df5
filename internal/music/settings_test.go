package music_test

import (
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in      int
		wantErr bool
	}{
		{-1, true}, {0, false}, {1, false}, {100, false}, {200, false}, {201, true}, {1 << 40, true}, {-1 << 40, true},
	}
	for _, tt := range tests {
		v, err := music.ParseVolume(tt.in)
		if tt.wantErr {
			checkErr(t, err, music.ErrVolumeRange)
			if !strings.Contains(err.Error(), "0 and 200") {
				t.Errorf("ParseVolume(%d) error %q does not name the range", tt.in, err)
			}
			continue
		}
		if err != nil || int(v) != tt.in {
			t.Errorf("ParseVolume(%d) = %v, %v", tt.in, v, err)
		}
		checkErr(t, v.Validate(), nil)
	}
	checkErr(t, music.Volume(201).Validate(), music.ErrVolumeRange)
}

func TestDefaultSettings(t *testing.T) {
	s := music.DefaultSettings()
	if s.DefaultVolume != 100 || s.DJRoleID != "" || s.AnnounceChannelID != "" {
		t.Fatalf("DefaultSettings() = %+v", s)
	}
	checkErr(t, s.Validate(), nil)
}

func TestNewSettings(t *testing.T) {
	const role, channel = "123456789012345678", "223456789012345678"
	tests := []struct {
		name      string
		role      string
		volume    int
		channel   string
		wantErr   error
		wantField string
	}{
		{"all set", role, 150, channel, nil, ""},
		{"nothing optional", "", 100, "", nil, ""},
		{"muted default", "", 0, "", nil, ""},
		{"bad role", "12ab", 100, "", music.ErrInvalidSnowflake, "DJ role"},
		{"bad volume", role, 201, channel, music.ErrVolumeRange, "default volume"},
		{"negative volume", role, -5, channel, music.ErrVolumeRange, "default volume"},
		{"bad channel", role, 100, "0", music.ErrInvalidSnowflake, "announce channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := music.NewSettings(tt.role, tt.volume, tt.channel)
			checkErr(t, err, tt.wantErr)
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantField) {
					t.Fatalf("error %q does not name field %q", err, tt.wantField)
				}
				if s != (music.Settings{}) {
					t.Fatalf("failed NewSettings returned %+v", s)
				}
				return
			}
			want := music.Settings{DJRoleID: tt.role, DefaultVolume: music.Volume(tt.volume), AnnounceChannelID: tt.channel}
			if s != want {
				t.Fatalf("NewSettings = %+v, want %+v", s, want)
			}
		})
	}
}
