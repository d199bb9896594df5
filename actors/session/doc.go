// Package session is the music session grain (session/<guildID>): it owns a
// guild's queue, current track and position, playback modes, voice facts,
// now-playing message and the Lavalink player it drives.
//
// Every state change is written to the store, under the activation's
// fencing epoch, before the user is told it happened; an activation whose
// write is refused (a newer one exists) stops at once. On activation the
// grain restores its snapshot and, if a track was playing, re-creates the
// player at the saved position plus the time elapsed since.
//
// The grain is the one actor that touches its guild's player, which is what
// disgolink needs (its players are not safe for concurrent use).
package session
