// Package lavalink is Ensemble's only door to Lavalink (the only importer
// of disgolink). Client implements the session grain's Audio: it loads
// tracks and drives each guild's player with one update carrying voice,
// track, position, volume and pause state, and forwards player events to
// the session grains in order per guild.
//
// This is the single-node path of issue 4: nodes are connected in the
// background with jittered exponential backoff and a call goes to the
// first connected node. The pool with per-node breakers, load-based
// selection and migration replaces the selection in its own issue.
package lavalink
