package music_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ensemble-bot/ensemble/internal/music"
)

func TestParseSnowflake(t *testing.T) {
	tests := []struct {
		in   string
		want uint64 // 0 means invalid
	}{
		{"1", 1},
		{"175928847299117063", 175928847299117063},
		{"18446744073709551615", 18446744073709551615},
		{"", 0},
		{" 1", 0},
		{"1 ", 0},
		{"01", 0},
		{"0", 0},
		{"00000000000000000001", 0},
		{"18446744073709551616", 0},
		{"99999999999999999999", 0},
		{"123456789012345678901", 0},
		{"abc", 0},
		{"-5", 0},
		{"+5", 0},
		{"1e9", 0},
		{"0x10", 0},
		{"１２３", 0}, // full-width digits
		{"12_3", 0},
	}
	for _, tt := range tests {
		got, err := music.ParseSnowflake(tt.in)
		if tt.want == 0 {
			if !errors.Is(err, music.ErrInvalidSnowflake) || got != 0 {
				t.Errorf("ParseSnowflake(%q) = %d, %v; want ErrInvalidSnowflake", tt.in, got, err)
			}
			checkErr(t, music.ValidateSnowflake(tt.in), music.ErrInvalidSnowflake)
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSnowflake(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestValidateGuildID(t *testing.T) {
	checkErr(t, music.ValidateGuildID("81384788765712384"), nil)
	err := music.ValidateGuildID("guild")
	checkErr(t, err, music.ErrInvalidSnowflake)
	if !strings.Contains(err.Error(), "guild ID") {
		t.Fatalf("error %q does not say it is the guild ID", err)
	}
}

func TestSnowflakeErrorIsBounded(t *testing.T) {
	_, err := music.ParseSnowflake(strings.Repeat("9", 3000))
	if err == nil || len(err.Error()) > 120 {
		t.Fatalf("error for a long input is %d bytes", len(err.Error()))
	}
}

func FuzzParseSnowflake(f *testing.F) {
	for _, s := range []string{"1", "0", "01", "18446744073709551615", "18446744073709551616", "-1", " 1", "abc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := music.ParseSnowflake(s)
		if err != nil {
			if !errors.Is(err, music.ErrInvalidSnowflake) || v != 0 {
				t.Fatalf("ParseSnowflake(%q) = %d, %v", s, v, err)
			}
			return
		}
		// Canonical form: exactly one spelling per ID.
		if v == 0 || strconv.FormatUint(v, 10) != s {
			t.Fatalf("ParseSnowflake(%q) = %d, not its canonical spelling", s, v)
		}
	})
}
