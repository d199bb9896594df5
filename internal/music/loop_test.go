package music_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestParseLoopMode(t *testing.T) {
	tests := []struct {
		in      string
		want    music.LoopMode
		wantErr bool
	}{
		{"off", music.LoopOff, false},
		{"track", music.LoopTrack, false},
		{"queue", music.LoopQueue, false},
		{"  QUEUE ", music.LoopQueue, false},
		{"Track", music.LoopTrack, false},
		{"", 0, true},
		{"on", 0, true},
		{"tracks", 0, true},
		{"LoopMode(1)", 0, true},
	}
	for _, tt := range tests {
		got, err := music.ParseLoopMode(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLoopMode(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, music.ErrLoopMode) {
			t.Errorf("ParseLoopMode(%q) error %v is not ErrLoopMode", tt.in, err)
		}
	}
}

func TestLoopModeString(t *testing.T) {
	for m, want := range map[music.LoopMode]string{
		music.LoopOff: "off", music.LoopTrack: "track", music.LoopQueue: "queue", 7: "LoopMode(7)",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", m, got, want)
		}
		if back, err := music.ParseLoopMode(m.String()); m.Valid() && (err != nil || back != m) {
			t.Errorf("round trip of %v = %v, %v", m, back, err)
		}
	}
}

func TestLoopModeCycle(t *testing.T) {
	for in, want := range map[music.LoopMode]music.LoopMode{
		music.LoopOff: music.LoopTrack, music.LoopTrack: music.LoopQueue, music.LoopQueue: music.LoopOff, 9: music.LoopOff,
	} {
		if got := in.Cycle(); got != want {
			t.Errorf("%v.Cycle() = %v, want %v", in, got, want)
		}
	}
}

func TestLoopModeText(t *testing.T) {
	type snap struct{ Loop music.LoopMode }
	b, err := json.Marshal(snap{music.LoopQueue})
	if err != nil || string(b) != `{"Loop":"queue"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var s snap
	if err := json.Unmarshal(b, &s); err != nil || s.Loop != music.LoopQueue {
		t.Fatalf("Unmarshal = %v, %v", s, err)
	}
	if err := json.Unmarshal([]byte(`{"Loop":"sometimes"}`), &s); !errors.Is(err, music.ErrLoopMode) {
		t.Fatalf("Unmarshal of bad mode: %v", err)
	}
	if _, err := json.Marshal(snap{music.LoopMode(5)}); !errors.Is(err, music.ErrLoopMode) {
		t.Fatalf("Marshal of bad mode: %v", err)
	}
}

func TestPlaybackModes(t *testing.T) {
	tests := []struct {
		name     string
		start    music.PlaybackModes
		loop     *music.LoopMode // set loop, or
		autoplay *bool           // set autoplay
		wantErr  error
		want     music.PlaybackModes
	}{
		{"loop on, autoplay off", music.PlaybackModes{}, lp(music.LoopTrack), nil, nil, music.PlaybackModes{Loop: music.LoopTrack}},
		{"loop queue, autoplay off", music.PlaybackModes{}, lp(music.LoopQueue), nil, nil, music.PlaybackModes{Loop: music.LoopQueue}},
		{"loop while autoplay refused", music.PlaybackModes{Autoplay: true}, lp(music.LoopTrack), nil, music.ErrLoopWhileAutoplay, music.PlaybackModes{Autoplay: true}},
		{"loop queue while autoplay refused", music.PlaybackModes{Autoplay: true}, lp(music.LoopQueue), nil, music.ErrLoopWhileAutoplay, music.PlaybackModes{Autoplay: true}},
		{"loop off while autoplay fine", music.PlaybackModes{Autoplay: true}, lp(music.LoopOff), nil, nil, music.PlaybackModes{Autoplay: true}},
		{"invalid loop", music.PlaybackModes{}, lp(music.LoopMode(3)), nil, music.ErrLoopMode, music.PlaybackModes{}},
		{"autoplay on", music.PlaybackModes{}, nil, bp(true), nil, music.PlaybackModes{Autoplay: true}},
		{"autoplay while loop track refused", music.PlaybackModes{Loop: music.LoopTrack}, nil, bp(true), music.ErrAutoplayWhileLooping, music.PlaybackModes{Loop: music.LoopTrack}},
		{"autoplay while loop queue refused", music.PlaybackModes{Loop: music.LoopQueue}, nil, bp(true), music.ErrAutoplayWhileLooping, music.PlaybackModes{Loop: music.LoopQueue}},
		{"autoplay off while looping fine", music.PlaybackModes{Loop: music.LoopQueue}, nil, bp(false), nil, music.PlaybackModes{Loop: music.LoopQueue}},
		{"autoplay off always fine", music.PlaybackModes{Autoplay: true}, nil, bp(false), nil, music.PlaybackModes{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.start
			var err error
			if tt.loop != nil {
				err = p.SetLoop(*tt.loop)
			} else {
				err = p.SetAutoplay(*tt.autoplay)
			}
			checkErr(t, err, tt.wantErr)
			if p != tt.want {
				t.Fatalf("modes = %+v, want %+v", p, tt.want)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("setters produced an invalid state %+v: %v", p, err)
			}
		})
	}
}

func TestPlaybackModesValidate(t *testing.T) {
	checkErr(t, music.PlaybackModes{}.Validate(), nil)
	checkErr(t, music.PlaybackModes{Loop: music.LoopQueue}.Validate(), nil)
	checkErr(t, music.PlaybackModes{Autoplay: true}.Validate(), nil)
	checkErr(t, music.PlaybackModes{Loop: music.LoopTrack, Autoplay: true}.Validate(), music.ErrAutoplayWhileLooping)
	checkErr(t, music.PlaybackModes{Loop: 4}.Validate(), music.ErrLoopMode)
}

func lp(m music.LoopMode) *music.LoopMode { return &m }
func bp(b bool) *bool                     { return &b }
