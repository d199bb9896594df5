package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// voiceState is where a user is in voice. The session ID matters only for
// the bot (Lavalink needs it) but costs little to keep for everyone.
type voiceState struct {
	channel snowflake.ID
	session string
}

// voiceCache is guild → user → voice state, for the guilds of one shard.
// A guild is present from its GUILD_CREATE until its GUILD_DELETE, even
// with nobody in voice, so its size is the shard's guild count. Owned by
// the grain: no locks.
type voiceCache map[snowflake.ID]map[snowflake.ID]voiceState

func (c voiceCache) channel(guild, user snowflake.ID) snowflake.ID {
	return c[guild][user].channel
}

// handle applies one gateway event. at is when the reader received it.
func (g *grain) handle(at time.Time, ev gateway.EventData) {
	switch ev := ev.(type) {
	case gateway.EventReady:
		g.replaying = false
		g.countConnected(false)
		g.onReady(ev)
	case gateway.EventResumed:
		// Discord replays what was missed before RESUMED, so the cache
		// is whole again.
		g.log.Info("gateway resumed", "replayed_from_another_holder", g.replaying)
		g.countConnected(g.replaying)
		g.replaying = false
		g.setReady(true)
	case gateway.EventGuildCreate:
		g.onGuildCreate(ev)
	case gateway.EventGuildDelete:
		g.onGuildDelete(ev)
	case gateway.EventVoiceStateUpdate:
		g.onVoiceState(ev)
	case gateway.EventVoiceServerUpdate:
		g.onVoiceServer(ev)
	case interactionCreate:
		g.onInteraction(at, ev.Interaction, ev.payload)
	case gateway.EventInteractionCreate:
		g.onInteraction(at, ev.Interaction, nil)
	}
}

// countConnected tells Deps.Connected of the activation's first READY or
// RESUMED; later ones are the gateway reconnecting, not the shard moving.
func (g *grain) countConnected(resumed bool) {
	if g.connected {
		return
	}
	g.connected = true
	g.deps.Connected(resumed, g.deps.Now().Sub(g.activatedAt))
}

func (g *grain) onReady(ev gateway.EventReady) {
	g.botID = ev.User.ID
	g.sessionID, g.resumeURL, g.appID = ev.SessionID, ev.ResumeGatewayURL, idText(ev.Application.ID)
	// A new session: every guild gets a fresh GUILD_CREATE, which replaces
	// its entry. Guilds the bot left while the shard was away get no
	// GUILD_DELETE, so they go now.
	listed := make(map[snowflake.ID]bool, len(ev.Guilds))
	for _, ug := range ev.Guilds {
		listed[ug.ID] = true
	}
	for id := range g.cache {
		if !listed[id] {
			g.dropGuild(id, true)
		}
	}
	g.log.Info("gateway ready", "guilds", len(ev.Guilds), "bot", ev.User.ID.String(), "application", ev.Application.ID.String())
	g.setReady(true)
	g.dirty = true
	g.saveSoon()
	g.deps.OnReady(idText(ev.Application.ID), idText(ev.User.ID))
}

func idText(id snowflake.ID) string {
	if id == 0 {
		return ""
	}
	return id.String()
}

func (g *grain) onGuildCreate(ev gateway.EventGuildCreate) {
	if ev.Unavailable {
		return
	}
	gid := ev.ID
	bot := g.botID
	before, hadBefore := g.cache[gid][bot]
	states := make(map[snowflake.ID]voiceState, len(ev.VoiceStates))
	for _, vs := range ev.VoiceStates {
		if vs.ChannelID != nil && *vs.ChannelID != 0 {
			states[vs.UserID] = voiceState{channel: *vs.ChannelID, session: vs.SessionID}
		}
	}
	g.cache[gid] = states
	// After a new session or on a new owner of the shard, GUILD_CREATE is
	// the only news of the bot's voice state: the session grain must hear
	// of a change (or of the state it may not know, on a first sight).
	after, hasAfter := states[bot]
	if bot != 0 && (hadBefore || hasAfter) && before != after {
		g.forwardBotState(gid, after)
	}
}

func (g *grain) onGuildDelete(ev gateway.EventGuildDelete) {
	// An unavailable guild (an outage) keeps the bot as a member: its voice
	// states are unknown until it comes back with a GUILD_CREATE.
	g.dropGuild(ev.ID, !ev.Unavailable)
}

// dropGuild forgets a guild. When the bot really left it, the session
// grain hears that the bot is out of voice there.
func (g *grain) dropGuild(gid snowflake.ID, left bool) {
	states, ok := g.cache[gid]
	if !ok {
		return
	}
	delete(g.cache, gid)
	if bs, inVoice := states[g.botID]; left && inVoice && g.botID != 0 {
		g.forwardBotState(gid, voiceState{session: bs.session})
	}
}

func (g *grain) onVoiceState(ev gateway.EventVoiceStateUpdate) {
	gid := ev.GuildID
	if gid == 0 {
		return
	}
	states := g.cache[gid]
	if states == nil {
		states = map[snowflake.ID]voiceState{}
		g.cache[gid] = states
	}
	vs := voiceState{session: ev.SessionID}
	if ev.ChannelID != nil {
		vs.channel = *ev.ChannelID
	}
	if vs.channel == 0 {
		delete(states, ev.UserID)
	} else {
		states[ev.UserID] = vs
	}
	if g.botID != 0 && ev.UserID == g.botID {
		g.forwardBotState(gid, vs)
	}
}

func (g *grain) forwardBotState(gid snowflake.ID, vs voiceState) {
	state := &clusterpb.VoiceState{SessionId: vs.session}
	if vs.channel != 0 {
		state.ChannelId = vs.channel.String()
	}
	g.deliverVoice(&clusterpb.VoiceEvent{GuildId: gid.String(), Event: &clusterpb.VoiceEvent_State{State: state}})
}

func (g *grain) onVoiceServer(ev gateway.EventVoiceServerUpdate) {
	if ev.GuildID == 0 {
		return
	}
	server := &clusterpb.VoiceServer{Token: ev.Token}
	// A null endpoint means Discord is moving the voice server; a later
	// update brings the new one. The session must drop the old one now.
	if ev.Endpoint != nil {
		server.Endpoint = *ev.Endpoint
	}
	g.deliverVoice(&clusterpb.VoiceEvent{GuildId: ev.GuildID.String(), Event: &clusterpb.VoiceEvent_Server{Server: server}})
}

// answerWithin is Discord's deadline for the first answer to an
// interaction, counted from its arrival.
const answerWithin = 3 * time.Second

// onInteraction delivers an interaction to its guild grain, or answers it
// with a refusal: nothing is dropped unanswered. payload is the raw
// INTERACTION_CREATE, nil when unknown.
func (g *grain) onInteraction(at time.Time, i discord.Interaction, payload io.Reader) {
	if i == nil {
		g.log.Warn("dropping an empty interaction: nothing to answer it with")
		return
	}
	// From here on, time counts from when the interaction would have
	// arrived had nothing been behind: Discord's deadline runs from its
	// creation, not from when a lagging reader got to it.
	now := g.deps.Now()
	lag := g.lag.observe(i.ID().Time(), now)
	if arrived := now.Add(-lag); arrived.Before(at) {
		at = arrived
	}
	// Once behind, the shard sheds until it has nearly caught up: at the
	// limit itself it would keep a standing backlog of MaxLag, and every
	// interaction it takes would wait that long.
	if lag > g.deps.MaxLag || g.shedding > 0 && lag > g.deps.MaxLag/4 {
		g.shed(at, i, lag)
		return
	}
	if g.shedding > 0 {
		g.log.Info("shard caught up with its interactions", "answered_busy", g.shedding, "lag", lag)
		g.shedding = 0
	}
	if gid := i.GuildID(); gid != nil && *gid != 0 {
		if owner := int((uint64(*gid) >> 22) % uint64(g.deps.ShardCount)); owner != g.id {
			g.log.Warn("refusing interaction for a guild of another shard",
				"guild", gid.String(), "owner", owner, "interaction", i.ID().String())
			g.refuse(at, i, commands.RefuseOtherShard.Text())
			return
		}
	}
	var channel snowflake.ID
	if !commands.HasChannel(i) && payload != nil {
		var err error
		if channel, err = payloadChannel(payload, i.ID()); err != nil {
			g.log.Warn("interaction without a channel object: no channel_id either", "err", err, "interaction", i.ID().String())
		}
	}
	in, err := commands.FromInteraction(i, channel, at, g.id)
	if err != nil {
		g.log.Info("refusing interaction", "err", err, "interaction", i.ID().String())
		g.refuse(at, i, commands.RefusalText(err))
		return
	}
	// FromInteraction accepts only interactions in a guild, by a member.
	gid, user := *i.GuildID(), i.Member().User.ID
	if ch := g.cache.channel(gid, user); ch != 0 {
		in.Invoker.VoiceChannelId = ch.String()
	}
	if ch := g.cache.channel(gid, g.botID); ch != 0 && g.botID != 0 {
		in.BotVoiceChannelId = ch.String()
	}
	in.Replayed = g.replaying
	guilds, log, tracer := g.deps.Guilds, g.log, g.deps.tracer()
	late := func(ctx context.Context) { g.refuseLate(ctx, at, i) }
	failed := func(ctx context.Context) { g.refuseIn(ctx, at, i, commands.BusyMessage) }
	accepted := g.deps.Ordered.Submit(in.GetGuildId(), func() {
		// The interaction's trace starts when the shard received it; its
		// context travels to the grains in the message.
		ctx, span := tracer.Start(context.Background(), "interaction "+in.GetName(), trace.WithTimestamp(at),
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
				attribute.String("ensemble.guild", in.GetGuildId()), attribute.Int("ensemble.shard", g.id),
				attribute.String("ensemble.kind", in.GetKind().String())))
		defer span.End()
		in.Traceparent = telemetry.Traceparent(ctx)
		// Behind this guild's earlier deliveries for too long: a fast
		// "busy" beats an answer after Discord's deadline.
		if time.Since(at) > deliverBudget {
			span.SetStatus(codes.Error, "late")
			late(ctx)
			return
		}
		// The delivery ends in time for a busy answer if it fails: the
		// guild grain unreachable (its member just died, say) must not
		// leave the interaction unanswered.
		ctx, cancel := context.WithDeadline(ctx, at.Add(deliverWithin))
		defer cancel()
		if err := guilds(ctx, in); err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not delivered")
			log.WarnContext(ctx, "deliver interaction to guild grain; answering busy", "err", err, "guild", in.GetGuildId(), "command", in.GetName())
			failed(ctx)
		}
	})
	if !accepted {
		g.log.Warn("guild backlog full; answering busy", "guild", in.GetGuildId(), "command", in.GetName())
		g.refuse(at, i, commands.BusyMessage)
	}
}

// shed answers busy an interaction that reached the grain lag after Discord
// created it: the member is behind on its gateway (reader or mailbox), and
// handing the interaction on would only make it later, and everyone behind
// it too. A busy answer costs one REST call, so shedding frees the CPU the
// member needs to catch up. One line per episode, not one per interaction.
func (g *grain) shed(at time.Time, i discord.Interaction, lag time.Duration) {
	if g.shedding == 0 {
		g.log.Warn("shard behind on its interactions; answering busy until it catches up", "lag", lag, "max_lag", g.deps.MaxLag)
	}
	g.shedding++
	g.refuse(at, i, commands.BusyMessage)
}

// payloadChannel reads channel_id from an INTERACTION_CREATE payload after
// checking it is the payload of interaction id.
func payloadChannel(payload io.Reader, id snowflake.ID) (snowflake.ID, error) {
	var p struct {
		ID        snowflake.ID `json:"id"`
		ChannelID snowflake.ID `json:"channel_id"`
	}
	if err := json.NewDecoder(payload).Decode(&p); err != nil {
		return 0, fmt.Errorf("decode the raw interaction: %w", err)
	}
	if p.ID != id {
		return 0, fmt.Errorf("the raw payload is of interaction %s, not %s", p.ID, id)
	}
	if p.ChannelID == 0 {
		return 0, errors.New("no channel_id in the payload")
	}
	return p.ChannelID, nil
}

// refuseLate answers busy an interaction that waited too long for its
// guild. It runs on the delivery's goroutine, not in the grain.
func (g *grain) refuseLate(ctx context.Context, at time.Time, i discord.Interaction) {
	g.log.WarnContext(ctx, "interaction waited too long for its guild; answering busy", "interaction", i.ID().String())
	g.refuseIn(ctx, at, i, commands.BusyMessage)
}

// refuse answers an interaction the bot will not handle with message (an
// autocomplete with no choices), through Deps.Refuse on Answers: the REST
// call must not hold the grain, and a guild's full backlog must not hold
// its refusals.
func (g *grain) refuse(at time.Time, i discord.Interaction, message string) {
	g.refuseIn(context.Background(), at, i, message)
}

// refuseIn is refuse within the trace of parent (the interaction's
// delivery); with no span in parent the answer starts the interaction's trace,
// from when the shard received it: an operator sees busy answers and
// refusals as traces of their own.
func (g *grain) refuseIn(parent context.Context, at time.Time, i discord.Interaction, message string) {
	id, token := i.ID(), i.Token()
	// A ping is answered with a pong and comes only to HTTP endpoints,
	// never over the gateway; without an ID or token there is nothing to
	// answer.
	if id == 0 || token == "" || i.Type() == discord.InteractionTypePing {
		g.log.Warn("cannot answer interaction", "interaction", id.String(), "type", int(i.Type()))
		return
	}
	refuse, log, kind, tracer, shard := g.deps.Refuse, g.log, commands.KindOf(i), g.deps.tracer(), g.id
	answer := "refused"
	if commands.IsBusy(message) {
		answer = "busy"
	}
	accepted := g.deps.Answers.Submit(id.String(), func() {
		var ctx context.Context
		var span trace.Span
		attrs := trace.WithAttributes(attribute.Int("ensemble.shard", shard), attribute.String("ensemble.kind", kind.String()),
			attribute.String("ensemble.answer", answer))
		if trace.SpanContextFromContext(parent).IsValid() {
			// Only the trace of parent: the delivery that failed has
			// ended, and its deadline with it.
			ctx, span = tracer.Start(context.WithoutCancel(parent), "answer "+answer, attrs)
		} else {
			ctx, span = tracer.Start(context.Background(), "interaction "+answer, trace.WithTimestamp(at),
				trace.WithSpanKind(trace.SpanKindServer), attrs)
		}
		defer span.End()
		ctx, cancel := context.WithDeadline(ctx, at.Add(answerWithin))
		defer cancel()
		if err := refuse(ctx, id.String(), token, kind, message); err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not answered")
			log.WarnContext(ctx, "answer refused interaction", "err", err, "interaction", id.String())
		}
	})
	if !accepted {
		// Over a thousand answers in flight: the member is far past
		// its capacity, and this one goes unanswered.
		log.Error("too many answers in flight; interaction left unanswered", "interaction", id.String())
	}
}

// deliverVoice hands the bot's voice event to the session grain, in order
// with the guild's other voice events (their own key: an interaction
// backlog must not delay or drop them).
func (g *grain) deliverVoice(ev *clusterpb.VoiceEvent) {
	voice, log := g.deps.Voice, g.log
	accepted := g.deps.Ordered.Submit("voice/"+ev.GetGuildId(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
		defer cancel()
		if err := voice(ctx, ev); err != nil {
			log.Warn("deliver voice event to session grain", "err", err, "guild", ev.GetGuildId())
		}
	})
	if !accepted {
		log.Error("voice event dropped: the guild's voice backlog is full", "guild", ev.GetGuildId())
	}
}
