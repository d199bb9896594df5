// Package lavalinkemu is a Lavalink v4 server emulator (REST and websocket) for
// tests, the sandbox and the load generator. It listens on a loopback port and
// is driven by real clients (disgolink) exactly as a Lavalink node would be.
//
// Fidelity comes first: status codes, error bodies, headers, event order and
// session behaviour follow the Lavalink 4.2 server source (PlayerRestHandler,
// SocketServer, SocketContext, HandshakeInterceptorImpl, the protocol
// module's serializers) and lavaplayer's player, so that a bot bug shows up
// as a failure here rather than in production. In particular: every HTTP
// response carries Lavalink-Api-Version: 4; a player update's voice state
// needs a channelId (DAVE), and an unchanged voice state does not reconnect;
// track userData must be a JSON object and is echoed in every event and
// player response about its track; an empty load result has "data": null;
// /v4/stats has no frameStats key (the websocket stats message has it, null
// without players); a track identifier that fails to load inside a player
// update answers 400; REST reaches any connected session with the password,
// but not one waiting for a resume (404 "Session not found" until a
// websocket resumes it). The version reported is DefaultVersion unless
// Config.Version says otherwise. Config.NoResume turns the node into a
// Lavalink-compatible server without session resuming (NodeLink).
//
// Where the emulator has to invent something (the catalogue of tracks, the
// playback clock, faults), it is deterministic: the same identifier always
// resolves to the same tracks (Resolve answers without a server), and the
// playback clock runs at a configurable speed so that a three-minute track
// can finish in a fraction of a second.
//
// Faults come in two kinds. Node faults (DropWebsockets, Hang, FailREST,
// Kill/Restart) and player faults that act at once (FreezePlayer, CloseVoice,
// FailTrack) let a test break things at a moment of its choosing. Track
// faults (FailWhenPlayed, StickWhenPlayed) are rules about a track: every
// play of it fails or stalls when the playback clock reaches a position, so
// that "a track that fails in the middle of a queue" needs no test code
// racing the clock.
//
// For assertions, the emulator records every HTTP request it receives
// (Requests) and every player event it produces (PlayerEvents,
// WaitPlayerEvent), in order; both records belong to the test and survive
// Restart.
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
