// Package shard is the shard grain (kind "Shard", identity = the decimal
// shard ID): one activation owns one Discord gateway connection, made with
// disgo's gateway package, and everything that has to sit next to it.
//
// Making each shard a cluster identity lets the cluster place shards on
// members like any grain; the keeper (Keeper) on each member touches the
// shard identities the member owns, at once when the membership changes
// and each interval as a backstop, so a shard lost with its member is
// activated again elsewhere within the failure-detection time.
//
// During a membership change protoactor may run two activations of one
// shard; the lease in the store (Deps.Leases, see lease.go) makes sure
// only one is connected to Discord. An activation connects once it holds
// the lease: it waits while a live member holds it, and evicts a holder
// that is no longer a member. The holder renews the lease each second with
// its resume state (session ID, sequence, resume URL, the IDs READY gave,
// and the voice-state cache, which a RESUME does not send again), and
// releases it with the final state when it stops, closing its connection
// with 1012 so that Discord keeps the session. The next holder resumes
// that session instead of identifying: Discord replays what it missed. A
// holder whose renewal is fenced (another member took the shard) closes
// its connection and stops.
//
// The grain:
//   - keeps the voice states of its guilds (guild → user → channel, the bot
//     included), so an interaction carries the invoker's and the bot's voice
//     channel without a REST call;
//   - forwards INTERACTION_CREATE to the guild grain and the bot's own
//     VOICE_STATE_UPDATE and VOICE_SERVER_UPDATE to the session grain,
//     through cluster.Ordered (Deps.Ordered): interactions keyed by guild,
//     voice events under a key of their own per guild ("voice/<guild>"), so
//     an interaction backlog neither delays nor drops them. Each keeps the
//     order Discord sent it in (a voice server update never overtakes the
//     voice state), but a guild's voice events and interactions are not
//     ordered with each other; a slow grain never stalls the reader;
//   - answers every interaction it cannot forward (not in a server, an
//     unknown command or option, a stale button, a guild of another shard,
//     a full guild backlog, ...) through Deps.Refuse with a text for the
//     member, on workers of their own (Deps.Answers), so a full backlog
//     still gets its answers: nothing is left unanswered;
//   - answers busy at once, instead of forwarding, an interaction that comes
//     too late or finds no room: one that reaches the grain more than
//     Deps.MaxLag after Discord created it (its snowflake time, corrected for
//     a steady clock offset; shedding goes on until the lag is under a
//     quarter of the limit), and, on the reader itself, one the member has
//     no room for (Deps.Admit, the member's limit of interactions in flight);
//   - takes an interaction's channel from the raw payload's channel_id when
//     the optional channel object is missing (disgo reads only the object),
//     with disgo's raw events on;
//   - reports the application and bot user IDs of READY (Deps.OnReady):
//     Discord documents no token format, so the token cannot give them;
//   - sends op 4 for session grains (UpdateVoice), after checking the guild
//     really belongs to this shard: disgo's own guild→shard lookup falls back
//     to shard 0 for guilds it does not own, and Discord answers an op 4 on
//     the wrong shard with silence.
//
// disgo calls its event handler on the gateway's reader goroutine and holds
// one mutex for all shards of a process while it runs, so the handler only
// stamps the receive time, asks for room, and sends the event to the grain;
// all state lives in the grain and is touched by its mailbox alone (no locks).
//
// Only this package and internal/commands import disgo's gateway and event
// types (ARCHITECTURE.md, Import rules); the rest of the cluster sees clusterpb messages.
package shard
