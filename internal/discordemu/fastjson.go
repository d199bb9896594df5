package discordemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSON writes v as encoding/json would, byte for byte, for the value types the
// emulator builds its payloads from (maps of any, slices, strings, integers, snowflakes,
// raw JSON), without reflection: encoding maps by reflection was most of a dispatch's
// cost under load, and that CPU is taken from the bot a load measures. Any other type
// goes through encoding/json.
func appendJSON(buf *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		buf.WriteString("null")
	case string:
		appendJSONString(buf, v)
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case int:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), int64(v), 10))
	case int64:
		buf.Write(strconv.AppendInt(buf.AvailableBuffer(), v, 10))
	case uint64:
		buf.Write(strconv.AppendUint(buf.AvailableBuffer(), v, 10))
	case Snowflake:
		buf.WriteByte('"')
		buf.Write(strconv.AppendUint(buf.AvailableBuffer(), uint64(v), 10))
		buf.WriteByte('"')
	case json.RawMessage:
		if v == nil {
			buf.WriteString("null")
			return nil
		}
		// encoding/json validates and compacts raw values.
		if err := json.Compact(buf, v); err != nil {
			return fmt.Errorf("discordemu: raw JSON: %w", err)
		}
	case map[string]any:
		if v == nil {
			buf.WriteString("null")
			return nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			appendJSONString(buf, k)
			buf.WriteByte(':')
			if err := appendJSON(buf, v[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		return appendJSONSlice(buf, v)
	case []string:
		return appendJSONSlice(buf, v)
	case []Snowflake:
		return appendJSONSlice(buf, v)
	case []int:
		return appendJSONSlice(buf, v)
	case []json.RawMessage:
		return appendJSONSlice(buf, v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("discordemu: %w", err)
		}
		buf.Write(b)
	}
	return nil
}

func appendJSONSlice[T any](buf *bytes.Buffer, s []T) error {
	if s == nil {
		buf.WriteString("null")
		return nil
	}
	buf.WriteByte('[')
	for i, e := range s {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendJSON(buf, any(e)); err != nil {
			return err
		}
	}
	buf.WriteByte(']')
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does (with its default HTML escaping):
// control characters, quotes, backslashes, <, > and &, U+2028 and U+2029 are escaped,
// and invalid UTF-8 becomes U+FFFD.
func appendJSONString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '\\', '"':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf.WriteString(s[start:i])
			buf.WriteString(`\u202`)
			buf.WriteByte(hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
