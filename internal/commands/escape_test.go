package commands

import "testing"

func TestEscapeNeutralisesTitles(t *testing.T) {
	for in, want := range map[string]string{
		"[Free Nitro](https://evil.example)": `\[Free Nitro\]\(https://evil.example\)`,
		"**bold** @everyone":                 "\\*\\*bold\\*\\* @\u200beveryone",
		"line\nbreak":                        "line break",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
