// Package commands is Ensemble's edge to Discord's interactions: the command
// table (each command's slash-command spec, DJ action, the grain that runs
// it and the button that runs it; the grains declare the handlers), the
// conversion of an INTERACTION_CREATE into the grain message
// clusterpb.Interaction, the parsing of option text into typed, bounded
// arguments, the replies and embeds users see, and the REST adapter that
// sends them.
//
// It is one of the two packages allowed to import disgo's event and gateway
// types (the shard actor is the other). Everything a grain needs crosses the
// cluster as clusterpb messages; grains call the pure functions here (parsers,
// reply builders) and the Discord adapter, never disgo directly.
//
// # Trust
//
// Everything in an interaction is outside input: option values, button custom
// IDs and even the shape of the payload. FromInteraction checks the payload
// against Specs, so a grain only sees commands and options that exist;
// the parsers then bound every value and answer with errors written for the
// member (they become ephemeral replies). Custom IDs are versioned and bound to
// the guild they were rendered for (see CustomID).
//
// Every message this package renders sets allowed_mentions to nothing, and
// user-provided text (track titles, authors, echoed queries) is escaped, so a
// track called "@everyone" or "<@&role>" can neither ping nor forge markup.
package commands
