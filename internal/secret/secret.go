// Package secret holds credentials (the Discord token, Lavalink and Redis
// passwords) in a type that cannot leak them by accident.
//
// Every way Go turns a value into text — the fmt verbs, log/slog, encoding/json,
// encoding.TextMarshaler (and so YAML encoders), gob-free error wrapping — prints
// a fixed mask instead of the value. The value leaves the type only through
// Reveal, so every place that uses a secret is a grep away.
package secret

import (
	"fmt"
	"log/slog"
)

// Mask is what every formatting path prints instead of a set secret.
const Mask = "[REDACTED]"

// String is a secret string. The zero value is an empty (unset) secret.
type String struct {
	// A pointer, not a string: when a String sits in an unexported field of
	// another struct, fmt cannot call its methods and prints the field raw;
	// a pointer below the top level prints as an address, never the value.
	value *string
}

// New wraps v.
func New(v string) String {
	if v == "" {
		return String{}
	}
	return String{value: &v}
}

// Reveal returns the secret value. Call it only where the value is handed
// to the service that needs it.
func (s String) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsSet reports whether the secret is non-empty.
func (s String) IsSet() bool { return s.value != nil }

// String implements fmt.Stringer.
func (s String) String() string { return s.masked() }

// GoString implements fmt.GoStringer, for %#v.
func (s String) GoString() string { return `secret.String("` + s.masked() + `")` }

// Format implements fmt.Formatter, so every verb (%v %+v %#v %s %q %x %d ...)
// prints the mask. Without it %x would hex-encode the raw field.
func (s String) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.masked())
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(s.GoString()))
			return
		}
		_, _ = f.Write([]byte(s.masked()))
	default:
		_, _ = f.Write([]byte(s.masked()))
	}
}

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(s.masked()) }

// MarshalText implements encoding.TextMarshaler; encoding/json and YAML
// encoders use it, so a config dumped as JSON shows the mask.
func (s String) MarshalText() ([]byte, error) { return []byte(s.masked()), nil }

// MarshalJSON implements json.Marshaler.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + s.masked() + `"`), nil }

// UnmarshalText lets a secret be decoded from configuration text.
func (s *String) UnmarshalText(b []byte) error {
	*s = New(string(b))
	return nil
}

func (s String) masked() string {
	if s.value == nil {
		return ""
	}
	return Mask
}
