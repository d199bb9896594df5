package node

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/actors/session"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

var errNoDiscord = errors.New("discord is not configured")

// replier and messages make a missing Discord client an error instead of
// a nil dereference (the node runs without a token).
type replier struct{ d *commands.Discord }

func (r replier) Respond(ctx context.Context, id, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.Respond(ctx, id, token, rep)
}

func (r replier) Defer(ctx context.Context, id, token string, ephemeral bool) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.Defer(ctx, id, token, ephemeral)
}

func (r replier) EditOriginal(ctx context.Context, appID, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.EditOriginal(ctx, appID, token, rep)
}

func (r replier) DeleteOriginal(ctx context.Context, appID, token string) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.DeleteOriginal(ctx, appID, token)
}

func (r replier) Followup(ctx context.Context, appID, token string, rep *clusterpb.Reply) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.Followup(ctx, appID, token, rep)
}

func (r replier) Autocomplete(ctx context.Context, id, token string, choices []*clusterpb.Choice) error {
	if r.d == nil {
		return errNoDiscord
	}
	return r.d.Autocomplete(ctx, id, token, choices)
}

type messages struct{ d *commands.Discord }

func (m messages) CreateMessage(ctx context.Context, channelID string, r *clusterpb.Reply) (string, error) {
	if m.d == nil {
		return "", errNoDiscord
	}
	return m.d.CreateMessage(ctx, channelID, r)
}

func (m messages) EditMessage(ctx context.Context, channelID, messageID string, r *clusterpb.Reply) error {
	if m.d == nil {
		return errNoDiscord
	}
	return m.d.EditMessage(ctx, channelID, messageID, r)
}

// sessions calls session grains with bounded retries.
type sessions struct{ c *cluster.Cluster }

func (s sessions) Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error) {
	return ecluster.Call(ctx, 3, func(opts ...cluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		return clusterpb.GetSessionGrainClient(s.c, req.GetGuildId()).Execute(req, opts...)
	})
}

// noAudio is the Audio of a node without Lavalink (no token yet).
type noAudio struct{}

func (noAudio) Load(context.Context, string) (session.Loaded, error) {
	return session.Loaded{}, session.ErrNoAudioNode
}
func (noAudio) Play(context.Context, string, session.PlayRequest) (string, error) {
	return "", session.ErrNoAudioNode
}
func (noAudio) Pause(context.Context, string, bool) error         { return session.ErrNoAudioNode }
func (noAudio) Seek(context.Context, string, time.Duration) error { return session.ErrNoAudioNode }
func (noAudio) Volume(context.Context, string, int) error         { return session.ErrNoAudioNode }
func (noAudio) Stop(context.Context, string) error                { return nil }
func (noAudio) Destroy(context.Context, string) error             { return nil }
