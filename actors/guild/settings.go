package guild

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// settingsCommand shows or changes the guild's settings. The change is
// stored before the reply says it happened.
func (g *Grain) settingsCommand(in *clusterpb.Interaction) {
	if !g.settingsLoaded {
		g.reply(in, commands.Error("The settings could not be read right now; nothing changed. Please try again in a moment."))
		return
	}
	next, changed, err := commands.ParseSettings(in.GetOptions(), g.settings)
	if err != nil {
		g.reply(in, commands.Error(err.Error()))
		return
	}
	if !changed {
		g.reply(in, commands.SettingsView(g.settings))
		return
	}
	if err := g.saveSettings(next); err != nil {
		g.log.Warn("save settings", "err", err)
		g.reply(in, commands.Error("The settings could not be saved; nothing changed. Please try again."))
		return
	}
	g.settings = next
	g.reply(in, commands.SettingsView(next))
}

func (g *Grain) saveSettings(s music.Settings) error {
	data, err := proto.Marshal(&clusterpb.GuildSettings{
		DjRoleId:          s.DJRoleID,
		DefaultVolume:     int32(s.DefaultVolume),
		AnnounceChannelId: s.AnnounceChannelID,
	})
	if err != nil {
		return err
	}
	c, cancel := context.WithTimeout(context.Background(), g.deps.CallTimeout)
	defer cancel()
	return g.deps.Store.SaveSettings(c, g.guildID, data)
}
