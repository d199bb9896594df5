package music

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalidSnowflake reports a string that is not a Discord ID.
var ErrInvalidSnowflake = errors.New("invalid Discord ID")

// ParseSnowflake parses a Discord ID in its canonical form: 1 to 20 ASCII
// digits, no sign, space or leading zero, non-zero, and within uint64.
//
// The form is strict so that one ID has exactly one spelling: IDs are used as
// store keys and actor identities, where "01" and "1" must not be two guilds.
// The timestamp bits are not checked; that would make validity depend on the
// clock and buys nothing.
func ParseSnowflake(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalidSnowflake)
	}
	if len(s) > 20 {
		return 0, fmt.Errorf("%w: %q is longer than 20 digits", ErrInvalidSnowflake, shorten(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q must be digits only", ErrInvalidSnowflake, s)
		}
	}
	if s[0] == '0' {
		return 0, fmt.Errorf("%w: %q is zero or has a leading zero", ErrInvalidSnowflake, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidSnowflake, s)
	}
	return v, nil
}

// ValidateSnowflake reports whether s is a Discord ID as ParseSnowflake defines.
func ValidateSnowflake(s string) error {
	_, err := ParseSnowflake(s)
	return err
}

// ValidateGuildID reports whether s is a valid guild ID.
func ValidateGuildID(s string) error {
	if err := ValidateSnowflake(s); err != nil {
		return fmt.Errorf("guild ID: %w", err)
	}
	return nil
}
