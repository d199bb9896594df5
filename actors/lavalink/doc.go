// Package lavalink is Ensemble's only door to Lavalink (the only importer
// of disgolink): a member's pool of Lavalink nodes, seen by session grains
// as their Audio.
//
// Actors: one pool actor per member, parent of one node actor per
// configured server. A node actor owns this member's connection to its
// server: it connects with a deadline (disgolink's AddNode retries
// forever) and reconnects with actors/supervisor's jittered exponential
// backoff, enables Lavalink session resuming so a short drop of our own
// websocket does not stop the music, notices a dead reader by silence,
// polls stats for the load score, and escalates every failure (lost
// websocket, REST 5xx, timeout) to the pool. The pool's supervisor
// strategy is the circuit breaker (supervisor.BreakerStrategy).
//
// Selection: a guild's player stays on its node while that node is
// connected and its breaker closed (no flapping); otherwise it goes to the
// closed node with the lowest Score, counting this member's placements
// since the last stats so a burst spreads. With none, it stays on its
// node while that node's websocket is up (open or half-open breaker: a
// degraded node that plays beats silence); a guild with no player there
// fails with audio.ErrNoNode. Only a closed breaker takes new
// players; half-open lets exactly one probe through (supervisor.Breaker).
//
// Migration: when a node's breaker opens, or its websocket is lost and the
// quick resume try fails, or it comes back with a new session, the node
// is marked lost; the pool sends NODE_LOST (with the node's name) for
// every guild placed there through Options.OnEvent once some node can
// take them (never while none can: the session's Play would only fail and
// leave the guild silent). The events go through a coalescing forwarder
// goroutine, so the pool actor never waits for the receiver. The session
// grain answers with Play at its extrapolated position, and Play moves
// the player: removed from the old node's client, destroyed there if its
// websocket is up (whatever its breaker says), or swept when it answers
// again; the pool lists the old player until a destroy is confirmed.
// Created on the new node with one update carrying voice, track,
// position, volume, pause and filters.
//
// Takeover: Play returns the node and this member's Lavalink session that
// hold the player (audio.Holder), which the session stores. A later
// activation elsewhere calls TakeOver with it: through its own link to
// that node (Lavalink addresses any connected session's players with the
// node's password) it reads the old player and destroys it, so a dead or
// departed member's player does not play on beside the new one. A dead
// member's session waits for a resume, which Lavalink does not address
// over REST (404 "Session not found"): TakeOver resumes it over a
// websocket of its own (a claim, shared by the takeovers of its guilds and
// closed a linger after the last, leaving the session waiting again). The
// old player's events go to the session's own websocket, never to this
// client's listeners.
//
// Watchdog: a playing player whose position stops (or that reports
// TrackStuck) is nudged, then moved, then given up on (the session skips).
// A nudge decided before the session acted on the player is dropped; a
// TrackStuck the watchdog would not act on (paused, no voice, no track)
// goes straight to the session.
//
// Tests: lavalinkAPI separates the pool from disgolink, so the node
// actors, Client, watchdog and sweeps run under -race against a fake
// (fakelink_test.go); the emulator tests (!race) drive real disgolink.
//
// Each node has its own disgolink client: disgolink routes a message to
// the player of its guild in the client whatever node it came from, so a
// shared client would mistake an old node's late events for the new
// node's. Events from a node a guild's player has left are dropped.
package lavalink
