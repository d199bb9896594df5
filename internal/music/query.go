package music

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxQueryLength bounds a /play query, in characters, after trimming.
const MaxQueryLength = 500

// searchPrefixes are the Lavalink search prefixes a user may type; a query
// without one is searched with the first.
var searchPrefixes = []string{"ytsearch:", "ytmsearch:", "scsearch:"}

// SearchPrefixes returns the search prefixes ValidateQuery accepts. It is a
// copy: the list is a security boundary, not something callers may extend.
func SearchPrefixes() []string { return slices.Clone(searchPrefixes) }

var (
	// ErrEmptyQuery: nothing to play or search for.
	ErrEmptyQuery = errors.New("the query is empty")
	// ErrQueryTooLong: more than MaxQueryLength characters.
	ErrQueryTooLong = errors.New("the query is too long")
	// ErrInvalidQuery: invalid UTF-8 or control characters.
	ErrInvalidQuery = errors.New("the query contains characters that are not allowed")
	// ErrUnsupportedSource: a scheme or source prefix other than http(s) and
	// the search prefixes.
	ErrUnsupportedSource = errors.New("unsupported source")
	// ErrInvalidURL: an http(s) link that is malformed or points somewhere
	// the bot must not fetch from.
	ErrInvalidURL = errors.New("invalid URL")
)

// Query is a validated /play query, ready for Lavalink's loadtracks.
type Query struct {
	// Identifier is always an http(s) URL or starts with one of
	// SearchPrefixes(); nothing else reaches Lavalink.
	Identifier string
	// Search is true when Identifier is a search rather than a URL.
	Search bool
}

// ValidateQuery turns what a user typed into a Lavalink identifier.
//
// The danger is Lavalink's local source, which plays any identifier that
// names a file, and its http source, which fetches any URL. So:
//
//   - http and https URLs with a host are played as URLs, except URLs with
//     user info (a classic way to disguise a host) and hosts that are
//     localhost or a non-public IP literal. That last check is defence in
//     depth against the bot being used to probe its own network; a DNS name can
//     still resolve anywhere, so Lavalink's egress must be restricted too.
//   - A query starting with one of SearchPrefixes keeps it.
//   - Anything else that starts like a URL scheme or source prefix ("file:",
//     "local:", "javascript:", "C:\...") is refused with a clear error rather
//     than searched, so the user learns it is not supported. A colon followed
//     by a space ("Hamilton: My Shot") is ordinary text.
//   - Everything else, including "/etc/passwd" or "../x", becomes a search:
//     "ytsearch:/etc/passwd" is a YouTube search, never a file path.
func ValidateQuery(s string) (Query, error) {
	q := strings.TrimSpace(s)
	if q == "" {
		return Query{}, ErrEmptyQuery
	}
	if !utf8.ValidString(q) {
		return Query{}, ErrInvalidQuery
	}
	if n := utf8.RuneCountInString(q); n > MaxQueryLength {
		return Query{}, fmt.Errorf("%w: %d characters, at most %d", ErrQueryTooLong, n, MaxQueryLength)
	}
	if strings.ContainsFunc(q, unicode.IsControl) {
		return Query{}, ErrInvalidQuery
	}
	for _, p := range searchPrefixes {
		if len(q) >= len(p) && strings.EqualFold(q[:len(p)], p) {
			text := strings.TrimSpace(q[len(p):])
			if text == "" {
				return Query{}, fmt.Errorf("%w: nothing to search for after %s", ErrEmptyQuery, p)
			}
			return Query{Identifier: p + text, Search: true}, nil
		}
	}
	scheme, ok := schemeOf(q)
	if !ok {
		return Query{Identifier: searchPrefixes[0] + q, Search: true}, nil
	}
	if scheme != "http" && scheme != "https" {
		return Query{}, fmt.Errorf("%w %q: use an http(s) link or search words (to search text with a colon, put a space after it)",
			ErrUnsupportedSource, shorten(scheme+":"))
	}
	u, err := url.Parse(q)
	if err != nil {
		return Query{}, fmt.Errorf("%w: it cannot be parsed", ErrInvalidURL)
	}
	if err := checkURL(u); err != nil {
		return Query{}, err
	}
	return Query{Identifier: u.String()}, nil
}

// schemeOf returns the lower-cased scheme when q starts with one (RFC 3986
// syntax) immediately followed by a non-space character.
func schemeOf(q string) (string, bool) {
	i := strings.IndexByte(q, ':')
	if i < 1 || i+1 >= len(q) {
		return "", false
	}
	if r, _ := utf8.DecodeRuneInString(q[i+1:]); unicode.IsSpace(r) {
		return "", false
	}
	for j := 0; j < i; j++ {
		c := q[j]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", false
		}
	}
	return strings.ToLower(q[:i]), true
}

func checkURL(u *url.URL) error {
	if u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%w: a link must look like https://host/path", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: links with a user name are not allowed", ErrInvalidURL)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return fmt.Errorf("%w: the link has no host", ErrInvalidURL)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: local addresses are not allowed", ErrInvalidURL)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if !ip.IsGlobalUnicast() || ip.IsPrivate() {
			return fmt.Errorf("%w: local and private addresses are not allowed", ErrInvalidURL)
		}
		return nil
	}
	// No public suffix is numeric, so a numeric last label is an IP in a
	// form netip rejects but resolvers accept ("2130706433", "127.1", "0x7f.1").
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" || strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%w: numeric hosts must be plain public IP addresses", ErrInvalidURL)
	}
	return nil
}
