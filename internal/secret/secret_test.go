package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const raw = "tok3n-Sup3r.S3cret"

type exported struct {
	Name  string
	Token String
}

type unexported struct {
	name  string
	token String
}

func TestFmtNeverPrintsValue(t *testing.T) {
	s := New(raw)
	values := map[string]any{
		"value":              s,
		"pointer":            &s,
		"exported field":     exported{Name: "n", Token: s},
		"unexported field":   unexported{name: "n", token: s},
		"pointer to struct":  &unexported{name: "n", token: s},
		"slice":              []String{s, s},
		"map value":          map[string]String{"k": s},
		"interface in slice": []any{s},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-20v", "%T"}
	for name, v := range values {
		for _, verb := range verbs {
			got := fmt.Sprintf(verb, v)
			if strings.Contains(got, raw) || strings.Contains(got, fmt.Sprintf("%x", raw)) || strings.Contains(got, fmt.Sprintf("%X", raw)) {
				t.Errorf("%s with %s leaked: %s", name, verb, got)
			}
		}
	}
	if got := fmt.Sprint(s); got != Mask {
		t.Errorf("Sprint = %q, want %q", got, Mask)
	}
	if got := fmt.Sprintf("%#v", s); got != `secret.String("[REDACTED]")` {
		t.Errorf("%%#v = %q", got)
	}
	if got := fmt.Sprintf("%q", s); got != `"[REDACTED]"` {
		t.Errorf("%%q = %q", got)
	}
}

func TestReveal(t *testing.T) {
	if got := New(raw).Reveal(); got != raw {
		t.Fatalf("Reveal = %q", got)
	}
	var zero String
	if zero.IsSet() || zero.Reveal() != "" || zero.String() != "" {
		t.Fatalf("zero value: set=%v reveal=%q string=%q", zero.IsSet(), zero.Reveal(), zero.String())
	}
	if New("").IsSet() {
		t.Fatal("New(\"\") is set")
	}
}

func TestSlogNeverPrintsValue(t *testing.T) {
	s := New(raw)
	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("x", "token", s, "cfg", exported{Token: s}, "hidden", unexported{token: s}, slog.Any("ptr", &s))
		log.With("token", s).Info("with")
		log.WithGroup("g").Info("group", "token", s)
		if strings.Contains(buf.String(), raw) {
			t.Errorf("%s handler leaked: %s", h.name, buf.String())
		}
		if !strings.Contains(buf.String(), Mask) {
			t.Errorf("%s handler shows no mask: %s", h.name, buf.String())
		}
	}
}

func TestJSONNeverPrintsValue(t *testing.T) {
	s := New(raw)
	for _, v := range []any{s, &s, exported{Token: s}, map[string]String{"k": s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(raw)) || !bytes.Contains(b, []byte(Mask)) {
			t.Errorf("json %T = %s", v, b)
		}
	}
}

func TestErrorsNeverPrintValue(t *testing.T) {
	s := New(raw)
	base := fmt.Errorf("dial with token %v: %w", s, errors.New("refused"))
	wrapped := fmt.Errorf("connect: %w", base)
	joined := errors.Join(wrapped, fmt.Errorf("token %s %q %+v", s, s, exported{Token: s}))
	for _, err := range []error{base, wrapped, joined} {
		if strings.Contains(err.Error(), raw) {
			t.Errorf("error leaked: %v", err)
		}
	}
}

func TestUnmarshalText(t *testing.T) {
	var cfg struct {
		Token String `json:"token"`
	}
	if err := json.Unmarshal([]byte(`{"token":"`+raw+`"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token.Reveal() != raw {
		t.Fatalf("decoded %q", cfg.Token.Reveal())
	}
	if err := json.Unmarshal([]byte(`{"token":""}`), &cfg); err != nil || cfg.Token.IsSet() {
		t.Fatalf("empty token: set=%v err=%v", cfg.Token.IsSet(), err)
	}
}

func TestPanicMessage(t *testing.T) {
	defer func() {
		r := recover()
		if msg := fmt.Sprint(r); strings.Contains(msg, raw) {
			t.Errorf("panic value prints %s", msg)
		}
	}()
	panic(New(raw))
}
