package lavalinkemu

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The binary layout is lavaplayer's "message" format as written by
// DefaultAudioPlayerManager.encodeTrack (TRACK_INFO_VERSION 3):
//
//	int32  size | flags<<30   (flags = 1: TRACK_INFO_VERSIONED; size counts the bytes after the header)
//	byte   version (3)
//	UTF    title, author
//	int64  length (ms)
//	UTF    identifier
//	bool   isStream
//	UTF?   uri, artworkUrl, isrc  (bool presence flag + UTF)
//	UTF    sourceName
//	...    source-specific fields (the http source writes its container probe name)
//	int64  position (ms)
//
// UTF is Java's DataOutput.writeUTF: a uint16 byte count then "modified UTF-8".
const (
	trackInfoVersion   = 3
	trackInfoVersioned = 1
	maxUTFBytes        = 0xFFFF
	// httpProbeName is what lavaplayer's http source writes after sourceName
	// (ProbingAudioSourceManager.encodeTrackFactory); the catalogue serves mp3.
	httpProbeName = "mp3"
	// StreamLength is what lavaplayer reports as the length of a live stream
	// (Long.MAX_VALUE, UNKNOWN_DURATION).
	StreamLength = int64(1<<63 - 1)
)

// ErrUndecodable is returned (wrapped) for any encoded track the emulator did
// not issue, including truncated, re-encoded or tampered ones.
var ErrUndecodable = errors.New("undecodable track")

// signingKey is fixed on purpose: every emulator instance, before and after a
// Restart, and in other processes, must accept tracks issued by any other one,
// exactly as every real Lavalink node decodes tracks encoded by another node.
var signingKey = []byte("ensemble-lavalinkemu-track-signature-v1")

// trackSignature binds every info field except position (which changes as the
// track plays) so that a bot that edits or forges an encoded track is caught.
func trackSignature(info TrackInfo) string {
	m := hmac.New(sha256.New, signingKey)
	for _, s := range []string{
		info.Title, info.Author, strconv.FormatInt(info.Length, 10), info.Identifier,
		strconv.FormatBool(info.IsStream), deref(info.URI), deref(info.ISRC), info.SourceName,
	} {
		// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
		fmt.Fprintf(m, "%d:%s|", len(s), s)
	}
	return hex.EncodeToString(m.Sum(nil)[:12])
}

const artworkPrefix = "https://artwork.lavalink-emulator.invalid/"

// signedArtworkURL carries the signature inside a field the wire format already
// has, because lavaplayer's format has no room for anything else and clients
// treat artwork URLs as opaque.
func signedArtworkURL(info TrackInfo) string {
	return artworkPrefix + trackSignature(info) + ".jpg"
}

func deref(s *string) string {
	if s == nil {
		return "\x00<nil>"
	}
	return *s
}

// EncodeTrack returns the base64 lavaplayer encoding of info. It does not sign:
// tracks the catalogue issues are signed already, and tests use this to build
// tracks the emulator must refuse.
func EncodeTrack(info TrackInfo) (string, error) {
	raw, err := encodeTrackBytes(info)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

func encodeTrackBytes(info TrackInfo) ([]byte, error) {
	var body bytes.Buffer
	body.WriteByte(trackInfoVersion)
	for _, s := range []string{info.Title, info.Author} {
		if err := writeUTF(&body, s); err != nil {
			return nil, err
		}
	}
	writeInt64(&body, info.Length)
	if err := writeUTF(&body, info.Identifier); err != nil {
		return nil, err
	}
	writeBool(&body, info.IsStream)
	for _, s := range []*string{info.URI, info.ArtworkURL, info.ISRC} {
		writeBool(&body, s != nil)
		if s != nil {
			if err := writeUTF(&body, *s); err != nil {
				return nil, err
			}
		}
	}
	if err := writeUTF(&body, info.SourceName); err != nil {
		return nil, err
	}
	if info.SourceName == "http" {
		if err := writeUTF(&body, httpProbeName); err != nil {
			return nil, err
		}
	}
	writeInt64(&body, info.Position)

	if body.Len() >= 1<<30 {
		return nil, fmt.Errorf("track message too large: %d bytes", body.Len())
	}
	out := make([]byte, 4, 4+body.Len())
	binary.BigEndian.PutUint32(out, uint32(body.Len())|trackInfoVersioned<<30)
	return append(out, body.Bytes()...), nil
}

// DecodeTrack parses an encoded track and accepts it only if the emulator
// issued it: the structure must be exactly what EncodeTrack writes and the
// artwork signature must match the other fields.
func DecodeTrack(encoded string) (TrackInfo, error) {
	info, err := decodeTrackStructure(encoded)
	if err != nil {
		return TrackInfo{}, err
	}
	if info.ArtworkURL == nil || *info.ArtworkURL != signedArtworkURL(info) {
		return TrackInfo{}, fmt.Errorf("%w: not issued by this emulator (bad signature)", ErrUndecodable)
	}
	if !info.IsStream && (info.Position < 0 || info.Position > info.Length) {
		return TrackInfo{}, fmt.Errorf("%w: position %d outside 0..%d", ErrUndecodable, info.Position, info.Length)
	}
	return info, nil
}

// decodeTrackStructure is the unsigned half of DecodeTrack, kept apart so the
// fuzz target can check the codec round trip on arbitrary well-formed input.
func decodeTrackStructure(encoded string) (TrackInfo, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(encoded)
	if err != nil {
		return TrackInfo{}, fmt.Errorf("%w: base64: %v", ErrUndecodable, err)
	}
	if len(raw) < 4 {
		return TrackInfo{}, fmt.Errorf("%w: %d bytes, shorter than the message header", ErrUndecodable, len(raw))
	}
	header := binary.BigEndian.Uint32(raw)
	size, flags := int(header&(1<<30-1)), header>>30
	if flags != trackInfoVersioned {
		return TrackInfo{}, fmt.Errorf("%w: message flags %d, want %d", ErrUndecodable, flags, trackInfoVersioned)
	}
	if size != len(raw)-4 {
		return TrackInfo{}, fmt.Errorf("%w: message size %d but %d bytes follow", ErrUndecodable, size, len(raw)-4)
	}
	r := &reader{b: raw[4:]}
	var info TrackInfo
	if v := r.byte(); v != trackInfoVersion && r.err == nil {
		return TrackInfo{}, fmt.Errorf("%w: track info version %d, want %d", ErrUndecodable, v, trackInfoVersion)
	}
	info.Title = r.utf()
	info.Author = r.utf()
	info.Length = r.int64()
	info.Identifier = r.utf()
	info.IsStream = r.bool()
	info.URI = r.nullableUTF()
	info.ArtworkURL = r.nullableUTF()
	info.ISRC = r.nullableUTF()
	info.SourceName = r.utf()
	switch info.SourceName {
	case "http":
		if probe := r.utf(); probe != httpProbeName && r.err == nil {
			return TrackInfo{}, fmt.Errorf("%w: http probe %q", ErrUndecodable, probe)
		}
	case "youtube", "soundcloud":
	default:
		if r.err == nil {
			return TrackInfo{}, fmt.Errorf("%w: unknown source %q", ErrUndecodable, info.SourceName)
		}
	}
	info.Position = r.int64()
	if r.err != nil {
		return TrackInfo{}, fmt.Errorf("%w: %v", ErrUndecodable, r.err)
	}
	if len(r.b) != 0 {
		return TrackInfo{}, fmt.Errorf("%w: %d trailing bytes", ErrUndecodable, len(r.b))
	}
	info.IsSeekable = !info.IsStream
	// Non-canonical inputs (over-long UTF forms, a raw NUL, odd booleans) decode
	// in Java but would not be what we issued; requiring a byte-exact
	// re-encoding rejects them all at once.
	again, err := encodeTrackBytes(info)
	if err != nil || !bytes.Equal(again, raw) {
		return TrackInfo{}, fmt.Errorf("%w: non-canonical encoding", ErrUndecodable)
	}
	return info, nil
}

func writeInt64(b *bytes.Buffer, v int64) {
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], uint64(v))
	b.Write(tmp[:])
}

func writeBool(b *bytes.Buffer, v bool) {
	if v {
		b.WriteByte(1)
	} else {
		b.WriteByte(0)
	}
}

// writeUTF writes s the way java.io.DataOutputStream.writeUTF does: UTF-16
// code units, U+0000 as two bytes, surrogates as three bytes each.
func writeUTF(b *bytes.Buffer, s string) error {
	units := utf16.Encode([]rune(strings.ToValidUTF8(s, "\uFFFD")))
	var enc []byte
	for _, u := range units {
		switch {
		case u >= 0x0001 && u <= 0x007F:
			enc = append(enc, byte(u))
		case u <= 0x07FF: // includes U+0000
			enc = append(enc, 0xC0|byte(u>>6), 0x80|byte(u&0x3F))
		default:
			enc = append(enc, 0xE0|byte(u>>12), 0x80|byte((u>>6)&0x3F), 0x80|byte(u&0x3F))
		}
	}
	if len(enc) > maxUTFBytes {
		return fmt.Errorf("string of %d encoded bytes exceeds writeUTF's limit of %d", len(enc), maxUTFBytes)
	}
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(enc)))
	b.Write(n[:])
	b.Write(enc)
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("truncated: need %d bytes, have %d", n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) bool() bool {
	switch v := r.byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		if r.err == nil {
			r.err = fmt.Errorf("boolean byte %d", v)
		}
		return false
	}
}

func (r *reader) int64() int64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (r *reader) nullableUTF() *string {
	if !r.bool() {
		return nil
	}
	s := r.utf()
	if r.err != nil {
		return nil
	}
	return &s
}

// utf reads Java modified UTF-8 into a Go string; lone surrogates become
// U+FFFD, which the canonical re-encoding check then rejects.
func (r *reader) utf() string {
	nb := r.take(2)
	if nb == nil {
		return ""
	}
	b := r.take(int(binary.BigEndian.Uint16(nb)))
	if b == nil {
		return ""
	}
	units := make([]uint16, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c < 0x80:
			units = append(units, uint16(c))
			i++
		case c&0xE0 == 0xC0 && i+1 < len(b) && b[i+1]&0xC0 == 0x80:
			units = append(units, uint16(c&0x1F)<<6|uint16(b[i+1]&0x3F))
			i += 2
		case c&0xF0 == 0xE0 && i+2 < len(b) && b[i+1]&0xC0 == 0x80 && b[i+2]&0xC0 == 0x80:
			units = append(units, uint16(c&0x0F)<<12|uint16(b[i+1]&0x3F)<<6|uint16(b[i+2]&0x3F))
			i += 3
		default:
			if r.err == nil {
				r.err = fmt.Errorf("malformed modified UTF-8 at byte %d", i)
			}
			return ""
		}
	}
	s := string(utf16.Decode(units))
	if !utf8.ValidString(s) {
		r.err = errors.New("invalid string")
	}
	return s
}
