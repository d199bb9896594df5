// Package audio holds the vocabulary the session and guild grains and the
// Lavalink pool share: what a load returns, what a play needs, and the
// errors an audio backend answers with. The interfaces over it are declared
// by their consumers (actors/session's Audio, actors/guild's Searcher), and
// actors/lavalink implements them without importing either: actors talk by
// messages, never through each other's packages.
package audio

import (
	"errors"
	"time"

	"github.com/ensemble-bot/ensemble/internal/music"
)

// Loaded is the result of a load.
type Loaded struct {
	Tracks []music.Track
	// Playlist is the playlist's name when the URL was a playlist.
	Playlist string
	// Search is set when Tracks are search results (only the first is
	// queued).
	Search bool
}

// Voice is the bot's voice connection in a guild, as Lavalink needs it.
type Voice struct {
	ChannelID string
	SessionID string
	Token     string
	Endpoint  string
}

// Complete reports whether Lavalink can connect with these facts.
func (v Voice) Complete() bool {
	return v.ChannelID != "" && v.SessionID != "" && v.Token != "" && v.Endpoint != ""
}

// PlayRequest is everything a player needs to play.
type PlayRequest struct {
	Track    music.Track
	Position time.Duration
	Volume   int
	Paused   bool
	Voice    Voice
	// PlayID names this play of the track. The backend sends it with the
	// track (Lavalink echoes it in every event about the track) and puts
	// it in the PlayerEvents it forwards, so the session can tell its
	// current play from a replaced one, an old node's or an old player's.
	PlayID string
}

// Holder names the Lavalink player a play created or replaced: the node
// and the Lavalink session that holds it. A session is one member's
// websocket to the node (a restarted process gets a new one), and Lavalink
// keeps a dropped session's players playing until its resume timeout: the
// session grain stores the holder so that a later activation, wherever it
// runs, can take that player over (see PlayerState).
type Holder struct {
	Node    string
	Session string
}

// PlayerState is what a taken-over player was doing when it was read.
type PlayerState struct {
	// Identifier is its track's identifier and PlayID the play ID the
	// backend sent with the track (PlayRequest.PlayID; "" when the server
	// did not echo it).
	Identifier string
	PlayID     string
	// Position is the track's position at At (the reader's clock, when
	// the answer arrived).
	Position time.Duration
	At       time.Time
	Paused   bool
}

// ErrNoNode is what a backend returns (wrapped) when no audio node can
// take the call; users get a clear reply instead of a timeout.
var ErrNoNode = errors.New("no audio node available")

// ErrRefused is what a backend returns (wrapped) when the server answered
// the call with an error status: it did answer, so users are not told it
// did not.
var ErrRefused = errors.New("the audio server refused the request")

// LoadFailedError is a load the audio server answered with a failure
// (Lavalink's loadType "error"): Message is its reason, which users see.
type LoadFailedError struct {
	Message string
}

func (e *LoadFailedError) Error() string { return "load failed: " + e.Message }
