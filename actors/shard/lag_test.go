package shard

import (
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"

	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// TestLagMeter: the lag is the delay above the smallest one of the last
// minutes, so a steady clock offset between the host and Discord counts for
// nothing, and an old minimum stops counting after lagMinutes.
func TestLagMeter(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	type obs struct {
		at    time.Duration // since t0
		delay time.Duration // raw: at - created
		want  time.Duration
	}
	cases := []struct {
		name string
		seq  []obs
	}{
		{"first reading is the offset", []obs{{0, 40 * time.Millisecond, 0}}},
		{"host clock 5 s fast", []obs{
			{0, 5 * time.Second, 0},
			{time.Second, 5*time.Second + 10*time.Millisecond, 10 * time.Millisecond},
			{2 * time.Second, 6500 * time.Millisecond, 1500 * time.Millisecond},
		}},
		{"host clock 2 s slow", []obs{
			{0, -2 * time.Second, 0},
			{time.Second, -500 * time.Millisecond, 1500 * time.Millisecond},
		}},
		{"a smaller delay lowers the offset", []obs{
			{0, 300 * time.Millisecond, 0},
			{time.Second, 20 * time.Millisecond, 0},
			{2 * time.Second, 1020 * time.Millisecond, time.Second},
		}},
		{"the minimum holds into the next minute", []obs{
			{0, 10 * time.Millisecond, 0},
			{time.Minute, 2010 * time.Millisecond, 2 * time.Second},
		}},
		{"an old minimum is forgotten (a step of the host clock)", []obs{
			{0, 10 * time.Millisecond, 0},
			{30 * time.Second, 5010 * time.Millisecond, 5 * time.Second},
			{3 * time.Minute, 5010 * time.Millisecond, 0},
			{3*time.Minute + time.Second, 5030 * time.Millisecond, 20 * time.Millisecond},
		}},
		{"an ID from the future is not an offset", []obs{
			{0, 10 * time.Millisecond, 0},
			{time.Second, -time.Hour, 0},
			{2 * time.Second, 1010 * time.Millisecond, time.Second},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m lagMeter
			for i, o := range tc.seq {
				now := t0.Add(o.at)
				if got := m.observe(now.Add(-o.delay), now); got != o.want {
					t.Fatalf("reading %d: lag %v, want %v", i, got, o.want)
				}
			}
		})
	}
}

// TestBehindShardAnswersBusy: an interaction that reaches the grain more
// than MaxLag after Discord created it is answered busy at once, with
// Discord's deadline counted from its creation; the next one on time is
// delivered again.
func TestBehindShardAnswersBusy(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	// Real time (deliveries check their age against the wall clock), in
	// whole milliseconds like snowflakes.
	clock := time.Now().Truncate(time.Millisecond)
	g.deps.Now = func() time.Time { return clock }
	g.deps.MaxLag = time.Second
	bot, alice := snowflake.ID(1000), snowflake.ID(2000)
	guild, text := snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(10)
	g.handle(clock, ready(bot, guild))

	at := func(created time.Time, name string) {
		t.Helper()
		// The reader read it just now; only the snowflake tells its age.
		g.handle(clock, interaction(t, interactionJSON(snowflake.New(created), guild, text, alice, name)))
	}
	at(clock.Add(-30*time.Millisecond), "on time")
	if in := recv(t, s.guilds); in.GetOptions()[0].GetValue() != "on time" {
		t.Fatalf("delivered %v", in)
	}
	clock = clock.Add(time.Second)
	created := clock.Add(-1600 * time.Millisecond)
	at(created, "behind")
	r := recv(t, s.refused)
	if !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want busy", r)
	}
	// The offset is the 30 ms of the first reading: the deadline is 3 s
	// after creation plus that.
	if want := created.Add(30*time.Millisecond + answerWithin); !r.deadline.Equal(want) {
		t.Fatalf("busy answer's deadline %v, want %v", r.deadline, want)
	}
	none(t, s.guilds)
	at(clock.Add(-50*time.Millisecond), "caught up")
	if in := recv(t, s.guilds); in.GetOptions()[0].GetValue() != "caught up" {
		t.Fatalf("delivered %v", in)
	}
	none(t, s.refused)
}

// TestNoRoomIsAnsweredBusyOnTheReader: an interaction the member has no room
// for is answered busy by the reader itself and never reaches the grain;
// the next one with room does.
func TestNoRoomIsAnsweredBusyOnTheReader(t *testing.T) {
	g, _, s := newTestGrain(t, 0, 1)
	g.deps.Admit = func(id string) bool { return id != "902" }
	var sent []any
	read := g.eventHandler(func(m any) { sent = append(sent, m) })
	guild, text, alice := snowflake.ID(discordemu.SnowflakeForShard(0, 1)), snowflake.ID(10), snowflake.ID(2000)
	for seq, id := range []snowflake.ID{901, 902, 903} {
		read(nil, gateway.EventTypeInteractionCreate, seq+1, interaction(t, interactionJSON(id, guild, text, alice, "q")))
	}
	if r := recv(t, s.refused); r.id != "902" || !commands.IsBusy(r.message) {
		t.Fatalf("refusal %+v, want 902 answered busy", r)
	}
	var ids []string
	for _, m := range sent {
		ids = append(ids, m.(*dispatch).ev.(interactionCreate).Interaction.ID().String())
	}
	if len(ids) != 2 || ids[0] != "901" || ids[1] != "903" {
		t.Fatalf("the grain got %v, want [901 903]", ids)
	}
	if n := g.fullRefused.Load(); n != 0 {
		t.Fatalf("%d refusals still counted after there was room again", n)
	}
}
