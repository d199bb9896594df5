// Package guild is the guild grain (guild/<guildID>): it loads the guild's
// settings, applies the DJ rule and per-user cooldowns, routes commands and
// button presses to the session grain, and answers the interaction within
// Discord's 3 s deadline — directly when the session answers in time,
// otherwise with a deferred reply that is edited when the work ends.
//
// The grain never blocks its mailbox on the session: the call runs in a
// goroutine and its result comes back as a message, so a slow track load
// delays neither the deferral nor other members' commands.
package guild
