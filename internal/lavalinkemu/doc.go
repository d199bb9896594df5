// Package lavalinkemu is a Lavalink v4 server emulator (REST and websocket) for
// tests, the sandbox and the load generator. It listens on a loopback port and
// is driven by real clients (disgolink) exactly as a Lavalink node would be.
//
// Fidelity comes first: status codes, error bodies, event order and session
// behaviour follow the Lavalink v4 server source (PlayerRestHandler,
// SocketServer, SocketContext, HandshakeInterceptorImpl) and lavaplayer's
// player, so that a bot bug shows up as a failure here rather than in
// production. Where the emulator has to invent something (the catalogue of
// tracks, the playback clock, faults), it is deterministic: the same
// identifier always resolves to the same tracks, and the playback clock runs
// at a configurable speed so that a three-minute track can finish in a
// fraction of a second.
//
// Tracks are encoded in lavaplayer's binary format. The emulator signs the
// tracks it issues (inside the artwork URL, which clients treat as opaque) and
// refuses to decode anything else, so a bot that truncates, edits or invents an
// encoded track is caught; because the key is fixed, every emulator instance
// decodes tracks issued by any other one, like real nodes do.
//
// Deliberate differences from a real node: there is no audio and no Discord
// voice connection (a player counts as connected as soon as it has a full
// voice state); filters are stored and echoed but do not change the playback
// speed; stats are synthetic (see SetLoad).
package lavalinkemu
