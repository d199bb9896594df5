package clustertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// Answer invokes a slash command in guild g as its first member and
// returns the answer's text (the edit of a deferred answer).
func (c *Cluster) Answer(ctx context.Context, g discordemu.LoadGuild, name string, opts ...discordemu.Option) (string, error) {
	ix, err := c.Discord.InvokeCommand(g.ID, g.Members[0], g.Text, name, opts...)
	// The bot registers its commands once its first shard is ready, a
	// moment after /readyz says so: until then no user can run one
	// either.
	for errors.Is(err, discordemu.ErrNoCommand) {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("/%s in %s: %w (%w)", name, g.ID, err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		ix, err = c.Discord.InvokeCommand(g.ID, g.Members[0], g.Text, name, opts...)
	}
	if err != nil {
		return "", err
	}
	res, err := ix.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("/%s in %s: %w (%s)", name, g.ID, err, c.unanswered(ix))
	}
	if res.Type == discordemu.ResponseDeferredMessage {
		msg, err := ix.WaitAnswer(ctx)
		if err != nil {
			return "", fmt.Errorf("/%s in %s: the deferred answer: %w", name, g.ID, err)
		}
		return fmt.Sprint(msg.Content, msg.Embeds), nil
	}
	return fmt.Sprint(res.Content, res.Embeds), nil
}

// unanswered says what Discord saw of an interaction left without an
// answer: whether it reached the bot, and whether an answer came too late.
func (c *Cluster) unanswered(ix *discordemu.Interaction) string {
	what := fmt.Sprintf("not sent yet on shard %d", ix.Shard())
	if sent := ix.SentAt(); !sent.IsZero() {
		what = fmt.Sprintf("sent on shard %d at %s", ix.Shard(), sent.Format("15:04:05.000"))
	}
	for _, e := range c.Discord.ErrorsOfKind(discordemu.ErrLateInteraction) {
		if strings.Contains(e.Detail, ix.ID.String()) {
			what += "; " + e.Detail
		}
	}
	for _, s := range c.Discord.Sessions() {
		if s.Shard == ix.Shard() {
			what += fmt.Sprintf("; session %s connected=%t ready=%t resumes=%d replayed=%d", s.ID, s.Connected, s.Ready, s.Resumes, s.Replayed)
		}
	}
	// The nodes' lines about it and its guild, the latest last: a test
	// failing on an unanswered interaction shows them first, before the
	// nodes' whole output (which a CI report may cut).
	var lines []string
	for _, n := range c.Nodes() {
		for l := range strings.Lines(n.Output()) {
			if strings.Contains(l, ix.ID.String()) || strings.Contains(l, ix.GuildID.String()) {
				lines = append(lines, strings.TrimSuffix(l, "\n")+" ("+n.Admin+")")
			}
		}
	}
	slices.Sort(lines) // each starts with its time
	return what + "; the nodes' lines about it:\n" + strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// Players returns each guild's playing players (a track, a voice
// connection, not paused), whatever Lavalink session holds them. It is one
// snapshot of every session: a scan session by session could see a
// player that a takeover destroyed and, a moment later, the one it
// created, and count two players that never played at once.
func (c *Cluster) Players() map[uint64][]lavalinkemu.PlayerInfo {
	out := map[uint64][]lavalinkemu.PlayerInfo{}
	for _, p := range c.Lavalink.Players("") {
		if p.Track != nil && p.Connected && !p.Paused {
			out[p.GuildID] = append(out[p.GuildID], p)
		}
	}
	return out
}

// LiveSessions is the Lavalink sessions with a websocket attached: a
// player of another session belongs to a member that is gone.
func (c *Cluster) LiveSessions() map[string]bool {
	live := map[string]bool{}
	for _, s := range c.Lavalink.Sessions() {
		live[s.ID] = s.Connected
	}
	return live
}

// ShardSessions is each shard's Discord gateway session that is connected
// and ready.
func (c *Cluster) ShardSessions() map[int]discordemu.SessionInfo {
	out := map[int]discordemu.SessionInfo{}
	for _, s := range c.Discord.Sessions() {
		if s.Connected && s.Ready {
			out[s.Shard] = s
		}
	}
	return out
}
