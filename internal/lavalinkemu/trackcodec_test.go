package lavalinkemu

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// lavaplayerV2 is a track encoded by real lavaplayer (TRACK_INFO_VERSION 2),
// published with the @lavalink/encoding package. It pins the byte layout to
// lavaplayer's, not to our reading of it.
const lavaplayerV2 = "QAAAkwIANFNrcmlsbGV4ICYgSGFic3RyYWt0IC0gQ2hpY2tlbiBTb3VwIFtPZmZpY2lhbCBBdWRpb10ABU9XU0xBAAAAAAADLIAACzIyTVdyV1BWX1FNAAEAK2h0dHBzOi8vd3d3LnlvdXR1YmUuY29tL3dhdGNoP3Y9MjJNV3JXUFZfUU0AB3lvdXR1YmUAAAAAAAAAAA=="

func TestEncodeMatchesLavaplayerLayout(t *testing.T) {
	v2, err := base64.StdEncoding.DecodeString(lavaplayerV2)
	if err != nil {
		t.Fatal(err)
	}
	// Version 3 is version 2 plus two nullable strings (artworkUrl, isrc)
	// right after uri; both absent here, so two zero flag bytes.
	uriEnd := bytes.Index(v2, []byte("22MWrWPV_QM\x00\x07youtube")) + len("22MWrWPV_QM")
	want := append([]byte{}, v2[:uriEnd]...)
	want = append(want, 0, 0)
	want = append(want, v2[uriEnd:]...)
	want[4] = 3
	binary.BigEndian.PutUint32(want, uint32(len(want)-4)|1<<30)

	uri := "https://www.youtube.com/watch?v=22MWrWPV_QM"
	got, err := encodeTrackBytes(TrackInfo{
		Title: "Skrillex & Habstrakt - Chicken Soup [Official Audio]", Author: "OWSLA", Length: 208000,
		Identifier: "22MWrWPV_QM", URI: &uri, SourceName: "youtube",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from lavaplayer's layout\n got %x\nwant %x", got, want)
	}
}

func TestModifiedUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"a", []byte{0, 1, 'a'}},
		{"\x00", []byte{0, 2, 0xC0, 0x80}},                      // NUL is two bytes in Java
		{"é", []byte{0, 2, 0xC3, 0xA9}},                         // same as UTF-8 below U+0800
		{"😀", []byte{0, 6, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80}}, // surrogate pair, 3 bytes each
	} {
		var b bytes.Buffer
		if err := writeUTF(&b, tc.in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), tc.want) {
			t.Errorf("writeUTF(%q) = %x, want %x", tc.in, b.Bytes(), tc.want)
		}
		r := &reader{b: b.Bytes()}
		if got := r.utf(); got != tc.in || r.err != nil {
			t.Errorf("utf() = %q, %v; want %q", got, r.err, tc.in)
		}
	}
	var b bytes.Buffer
	if err := writeUTF(&b, strings.Repeat("x", maxUTFBytes+1)); err == nil {
		t.Error("writeUTF accepted a string over 65535 bytes")
	}
}

func issuedTrack(t testing.TB) Track {
	t.Helper()
	res := catalogue{}.load("ytsearch:never gonna give you up")
	return res.Data.([]Track)[0]
}

func TestDecodeTrackAcceptsIssuedAndRejectsOthers(t *testing.T) {
	tr := issuedTrack(t)
	info, err := DecodeTrack(tr.Encoded)
	if err != nil {
		t.Fatalf("issued track rejected: %v", err)
	}
	if !reflect.DeepEqual(info, tr.Info) {
		t.Fatalf("decoded %+v, issued %+v", info, tr.Info)
	}

	raw, _ := base64.StdEncoding.DecodeString(tr.Encoded)
	tamperedTitle := tr.Info
	tamperedTitle.Title = "Something else"
	forged, _ := EncodeTrack(tamperedTitle)
	unsigned := tr.Info
	unsigned.ArtworkURL = nil
	unsignedEnc, _ := EncodeTrack(unsigned)
	withPos := tr.Info
	withPos.Position = tr.Info.Length + 1
	pastEnd, _ := EncodeTrack(withPos)
	trailing := append(append([]byte{}, raw...), 0)
	binary.BigEndian.PutUint32(trailing, uint32(len(trailing)-4)|1<<30)
	v2 := append([]byte{}, raw...)
	v2[4] = 2

	for name, enc := range map[string]string{
		"empty":           "",
		"not base64":      "!!!",
		"truncated":       base64.StdEncoding.EncodeToString(raw[:len(raw)-3]),
		"bad size":        base64.StdEncoding.EncodeToString(append(append([]byte{}, raw...), 0)),
		"trailing byte":   base64.StdEncoding.EncodeToString(trailing),
		"old version":     base64.StdEncoding.EncodeToString(v2),
		"no flags":        base64.StdEncoding.EncodeToString(append([]byte{0}, raw[1:]...)),
		"tampered title":  forged,
		"unsigned":        unsignedEnc,
		"position > len":  pastEnd,
		"url-safe base64": strings.NewReplacer("+", "-", "/", "_").Replace(tr.Encoded) + "?",
		"json instead":    base64.StdEncoding.EncodeToString([]byte(`{"title":"x"}`)),
	} {
		if _, err := DecodeTrack(enc); !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: DecodeTrack err = %v, want ErrUndecodable", name, err)
		}
	}
}

func TestDecodeAcceptsAnyPositionWithinTrack(t *testing.T) {
	tr := issuedTrack(t)
	info := tr.Info
	info.Position = info.Length / 2
	enc, err := EncodeTrack(info)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTrack(enc)
	if err != nil || got.Position != info.Length/2 {
		t.Fatalf("DecodeTrack = %+v, %v; want position %d", got, err, info.Length/2)
	}
}

func FuzzDecodeTrack(f *testing.F) {
	f.Add(issuedTrack(f).Encoded)
	f.Add(lavaplayerV2)
	for _, id := range []string{"scsearch:x", "https://example.com/track/a.mp3", "https://radio.example/live"} {
		r := catalogue{}.load(id)
		switch d := r.Data.(type) {
		case Track:
			f.Add(d.Encoded)
		case []Track:
			f.Add(d[0].Encoded)
		}
	}
	f.Add("")
	f.Fuzz(func(t *testing.T, enc string) {
		info, err := decodeTrackStructure(enc)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error not wrapping ErrUndecodable: %v", err)
			}
			return
		}
		again, err := EncodeTrack(info)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", info, err)
		}
		if again != enc {
			t.Fatalf("round trip changed the encoding:\n in %s\nout %s", enc, again)
		}
		_, _ = DecodeTrack(enc) // must not panic either
	})
}

func FuzzEncodeDecodeRoundTrip(f *testing.F) {
	f.Add("title", "author", int64(1000), "id", false, "https://x", "youtube", int64(10))
	f.Add("\x00😀é", "", int64(0), "", true, "", "http", int64(0))
	f.Fuzz(func(t *testing.T, title, author string, length int64, id string, stream bool, uri, source string, pos int64) {
		in := TrackInfo{Title: title, Author: author, Length: length, Identifier: id, IsStream: stream, URI: &uri, SourceName: source, Position: pos}
		enc, err := EncodeTrack(in)
		if err != nil {
			return // strings over 64 KiB
		}
		out, err := decodeTrackStructure(enc)
		if source != "youtube" && source != "soundcloud" && source != "http" {
			if err == nil {
				t.Fatalf("unknown source %q decoded", source)
			}
			return
		}
		if err != nil {
			t.Fatalf("cannot decode own encoding of %+v: %v", in, err)
		}
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		if out.Title != valid(title) || out.Author != valid(author) || out.Identifier != valid(id) ||
			out.Length != length || out.Position != pos || out.IsStream != stream || *out.URI != valid(uri) {
			t.Fatalf("round trip: in %+v out %+v", in, out)
		}
	})
}
