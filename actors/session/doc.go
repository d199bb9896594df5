// Package session is the music session grain (session/<guildID>): it owns a
// guild's queue, current track and position, playback modes, voice facts,
// now-playing message and the Lavalink player it drives.
//
// Every state change is written to the store under the activation's
// fencing epoch. A command's reply waits for the write that covers its
// change: the user is told of a change once it is stored or, when the
// store fails, that it is not saved yet (the session plays on from memory
// and retries the write). Voice and player events are acknowledged at once
// and stored after. An activation whose write is refused (a newer one
// exists) stops at once. On activation the
// grain restores its snapshot and, if a track was playing, re-creates the
// player at the saved position plus the time elapsed since.
//
// Fenced side effects: the snapshot names the Lavalink player of the last
// successful play (node, Lavalink session, member). Lavalink keeps a
// dropped session's players playing until its resume timeout, so the
// previous activation's player may still play when a new activation
// starts (on another member after one died or left, or on a restarted
// node). Before its first play, on the audio lane, the new activation
// takes that player over (Audio.TakeOver: read, then destroy, unless the
// session is its own member's) and plays from where it was instead of the
// estimate; every play waits for the takeover (takingOver). A failed
// takeover is tried again up to three times with the play retries'
// backoff, then falls back to the estimate, logged at WARN; one that
// failed for want of the node is tried again before the next play while
// plays fail too. Events of the superseded player carry the earlier
// activation's play ID (epoch.seq) and change nothing.
//
// The grain is the one actor that touches its guild's player, which is what
// disgolink needs (its players are not safe for concurrent use).
package session
