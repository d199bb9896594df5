package guild

import (
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// The guild's handlers of the command table (internal/commands);
// TestHandlersMatchTheTable fails if a command has none where it runs, or a
// handler no command.

// guildCommands run the commands.InGuild commands.
var guildCommands = map[commands.Name]func(*Grain, *work){
	commands.CmdSettings: (*Grain).settingsCommand,
}

// idleAnswers answer the commands.IdleAnswer commands while the session is
// known to have nothing, with the session's own words.
var idleAnswers = map[commands.Name]func(opts []*clusterpb.Option) *clusterpb.Reply{
	commands.CmdQueue: func(opts []*clusterpb.Option) *clusterpb.Reply {
		return commands.QueueAnswer(emptyQueue, nil, opts)
	},
	commands.CmdNowPlaying: func([]*clusterpb.Option) *clusterpb.Reply { return commands.NothingPlaying() },
}

// emptyQueue renders the pages of a session that has nothing; it is only
// read.
var emptyQueue, _ = music.NewQueue(1)

// idleReply is the session's answer to name when it has nothing.
func idleReply(name commands.Name, opts []*clusterpb.Option) *clusterpb.Reply {
	return idleAnswers[name](opts)
}
