// Package guild is the guild grain (guild/<guildID>): it loads the guild's
// settings, applies the DJ rule and per-user cooldowns, routes commands and
// button presses to the session grain, and answers the interaction within
// Discord's 3 s deadline — directly when the answer is ready in time,
// otherwise with a deferred reply that is edited when the work ends.
//
// The grain never waits (ARCHITECTURE.md: no actor waits). The settings load, /settings
// saves and session calls run in goroutines that report back by message;
// commands that arrive while the settings load are kept in a short list and
// run when it reports. Each interaction's Discord calls run in order on a
// goroutine of their own that also owns the deferral timer, so neither a
// slow store, a slow session nor a rate-limited Discord delays this guild's
// other commands, or its deferrals.
//
// A guild whose session has nothing (no track, no queue, no voice
// connection) answers /queue and /nowplaying itself, so a guild that plays
// nothing activates no session; it knows from the store at activation, and
// later from the session's replies.
package guild
