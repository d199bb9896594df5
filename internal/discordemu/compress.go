package discordemu

import (
	"bytes"
	"compress/zlib"
	"fmt"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zstd"
)

// Compression is the transport compression a gateway client asked for with ?compress=.
type Compression string

// The transport compressions Discord offers. zlib-payload (per-message compression asked
// for in IDENTIFY) is not emulated: disgo never asks for it.
const (
	CompressionNone Compression = ""
	CompressionZlib Compression = "zlib-stream"
	CompressionZstd Compression = "zstd-stream"
)

// frameEncoder turns one JSON payload into one websocket message. Stream compressions keep
// a single context for the whole connection, as Discord does, so a client that resets its
// decompressor between messages (or shares one across connections) fails here too.
type frameEncoder interface {
	encode(payload []byte) (messageType int, data []byte, err error)
	close()
}

func newFrameEncoder(c Compression) (frameEncoder, error) {
	switch c {
	case CompressionNone:
		return plainEncoder{}, nil
	case CompressionZlib:
		e := &zlibEncoder{}
		e.w = zlib.NewWriter(&e.buf)
		return e, nil
	case CompressionZstd:
		e := &zstdEncoder{}
		w, err := zstd.NewWriter(&e.buf,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(1<<20))
		if err != nil {
			return nil, err
		}
		e.w = w
		return e, nil
	default:
		return nil, fmt.Errorf("unknown compression %q", c)
	}
}

type plainEncoder struct{}

func (plainEncoder) encode(p []byte) (int, []byte, error) { return websocket.TextMessage, p, nil }
func (plainEncoder) close()                               {}

type zlibEncoder struct {
	buf bytes.Buffer
	w   *zlib.Writer
}

// encode ends each payload with a sync flush, so every message ends in 00 00 ff ff: the
// marker clients use to know a payload is complete.
func (e *zlibEncoder) encode(p []byte) (int, []byte, error) {
	if _, err := e.w.Write(p); err != nil {
		return 0, nil, err
	}
	if err := e.w.Flush(); err != nil {
		return 0, nil, err
	}
	out := bytes.Clone(e.buf.Bytes())
	e.buf.Reset()
	return websocket.BinaryMessage, out, nil
}

func (e *zlibEncoder) close() { _ = e.w.Close() }

type zstdEncoder struct {
	buf bytes.Buffer
	w   *zstd.Encoder
}

// encode flushes a block per payload without ending the frame: the stream stays one zstd
// frame for the connection's lifetime.
func (e *zstdEncoder) encode(p []byte) (int, []byte, error) {
	if _, err := e.w.Write(p); err != nil {
		return 0, nil, err
	}
	if err := e.w.Flush(); err != nil {
		return 0, nil, err
	}
	out := bytes.Clone(e.buf.Bytes())
	e.buf.Reset()
	return websocket.BinaryMessage, out, nil
}

func (e *zstdEncoder) close() { _ = e.w.Close() }
