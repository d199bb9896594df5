package music

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxTimestamp is the largest /seek target ParseTimestamp accepts, 99:59:59.
const MaxTimestamp = 99*time.Hour + 59*time.Minute + 59*time.Second

var (
	// ErrTimestamp reports text that is not a timestamp.
	ErrTimestamp = errors.New("invalid timestamp")
	// ErrSeekBeyondEnd reports a seek target at or past the track's end.
	ErrSeekBeyondEnd = errors.New("that is past the end of the track")
	// ErrNotSeekable reports a seek in a live stream.
	ErrNotSeekable = errors.New("live streams cannot be seeked")
)

// ParseTimestamp parses a /seek target: "ss", "m:ss" or "h:mm:ss", each
// part plain ASCII digits (a single-digit "1:5" is read as 1:05). A lone seconds value may exceed 59 ("90" is 1:30);
// once minutes are given, seconds (and minutes under hours) must be below 60,
// because "1:75" is more likely a typo than a wish. The result is at most
// MaxTimestamp.
func ParseTimestamp(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	parts := strings.Split(t, ":")
	if t == "" || len(parts) > 3 {
		return 0, timestampError(s)
	}
	const maxDigits = 6 // 999999 s already exceeds MaxTimestamp; keeps Atoi far from overflow
	vals := make([]int64, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > maxDigits || strings.Trim(p, "0123456789") != "" {
			return 0, timestampError(s)
		}
		v, _ := strconv.ParseInt(p, 10, 64) // cannot fail: at most 6 digits
		if i > 0 && v >= 60 {
			return 0, fmt.Errorf("%w: %q: minutes and seconds must be below 60", ErrTimestamp, shorten(s))
		}
		vals[i] = v
	}
	var secs int64
	for _, v := range vals {
		secs = secs*60 + v
	}
	d := time.Duration(secs) * time.Second
	if d > MaxTimestamp {
		return 0, fmt.Errorf("%w: %q is beyond %s", ErrTimestamp, shorten(s), FormatDuration(MaxTimestamp))
	}
	return d, nil
}

func timestampError(s string) error {
	return fmt.Errorf("%w: %q: use seconds, m:ss or h:mm:ss", ErrTimestamp, shorten(s))
}

// ValidateSeek checks a seek target against the track: it must be before the
// end (seeking to the very end would just skip), and streams cannot seek.
func ValidateSeek(t Track, pos time.Duration) error {
	if t.IsStream {
		return ErrNotSeekable
	}
	if pos < 0 {
		return fmt.Errorf("%w: negative position", ErrTimestamp)
	}
	if pos >= t.Length {
		return fmt.Errorf("%w: it is %s long", ErrSeekBeyondEnd, FormatDuration(t.Length))
	}
	return nil
}

// FormatDuration formats d as users read track times: "0:05", "3:07",
// "1:02:03". Fractions of a second are dropped, negatives show as "0:00".
func FormatDuration(d time.Duration) string {
	return string(AppendDuration(make([]byte, 0, 8), d))
}

// AppendDuration appends FormatDuration(d) to dst.
func AppendDuration(dst []byte, d time.Duration) []byte {
	secs := max(int64(d/time.Second), 0)
	h, m, s := secs/3600, secs/60%60, secs%60
	if h > 0 {
		dst = strconv.AppendInt(dst, h, 10)
		dst = append(dst, ':')
		dst = appendTwoDigits(dst, m)
	} else {
		dst = strconv.AppendInt(dst, m, 10)
	}
	dst = append(dst, ':')
	return appendTwoDigits(dst, s)
}

func appendTwoDigits(dst []byte, n int64) []byte {
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

// ProgressBar draws the now-playing bar: width cells of "━" (played) and "─"
// (remaining) with a "●" knob at pos. Width is clamped to 2..100 so a bad
// argument cannot produce a huge message; a length ≤ 0 (streams) puts the
// knob at the start.
func ProgressBar(pos, length time.Duration, width int) string {
	width = min(max(width, 2), 100)
	knob := 0
	if length > 0 {
		frac := float64(min(max(pos, 0), length)) / float64(length)
		knob = int(frac*float64(width-1) + 0.5)
	}
	var b strings.Builder
	b.Grow(width * len("━"))
	b.WriteString(strings.Repeat("━", knob))
	b.WriteString("●")
	b.WriteString(strings.Repeat("─", width-1-knob))
	return b.String()
}
