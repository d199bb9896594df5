package discordemu

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo"
	"github.com/disgoorg/disgo/bot"
	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
)

// disgo tests that use only its REST client: they run under -race like the rest of the
// package. Tests that open disgo's gateway are in disgo_gateway_test.go.

func TestDisgoRESTRateLimit429(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()), bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	emu.RateLimitNext(RateLimit{Method: "POST", Path: "/channels/{id}/messages", RetryAfter: time.Second})
	msg, err := client.Rest.CreateMessage(sf(w.text), discord.NewMessageCreate().WithContent("hello"))
	if err != nil || msg.Content != "hello" {
		t.Fatalf("CreateMessage through a 429: %v %v", msg, err)
	}
	rqs := emu.Recorder().RequestsMatching("POST", "/channels/*/messages")
	if len(rqs) != 2 || rqs[0].Status != 429 || rqs[1].Status != 200 {
		t.Fatalf("requests %+v", rqs)
	}
	if gap := rqs[1].At.Sub(rqs[0].At); gap < 900*time.Millisecond {
		t.Fatalf("disgo retried after %v, before Retry-After", gap)
	}

	// With retries exhausted the bot sees the 429 itself.
	strict, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()), bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL()),
		rest.WithRateLimiterConfigOpts(rest.WithMaxRetries(1))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { strict.Close(context.Background()) })
	emu.RateLimitNext(RateLimit{Method: "POST", Path: "/channels/{id}/messages", RetryAfter: time.Second})
	_, err = strict.Rest.CreateMessage(sf(w.text), discord.NewMessageCreate().WithContent("hello"))
	var re *rest.Error
	if !errors.As(err, &re) || re.Response.StatusCode != 429 {
		t.Fatalf("exhausted retries: %v", err)
	}
}

func TestDisgoChannelMessagesEcho(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()), bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	msg, err := client.Rest.CreateMessage(sf(w.text), discord.NewMessageCreate().
		AddEmbeds(discord.NewEmbed().WithTitle("Now playing").AddField("By", "Artist", true)).
		AddActionRow(discord.NewPrimaryButton("Skip", "np:skip"), discord.NewPrimaryButton("Stop", "np:stop")))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Author.ID != client.ApplicationID || len(msg.Embeds) != 1 || msg.Embeds[0].Title != "Now playing" || len(msg.Components) != 1 || msg.CreatedAt.IsZero() {
		t.Fatalf("created %+v", msg)
	}
	upd, err := client.Rest.UpdateMessage(sf(w.text), msg.ID, discord.NewMessageUpdate().WithContent("paused"))
	if err != nil || upd.Content != "paused" || len(upd.Embeds) != 1 || upd.EditedTimestamp == nil {
		t.Fatalf("updated %+v %v", upd, err)
	}
	got, err := client.Rest.GetMessage(sf(w.text), msg.ID)
	if err != nil || got.Content != "paused" || got.Embeds[0].Fields[0].Value != "Artist" {
		t.Fatalf("fetched %+v %v", got, err)
	}
	if _, err := client.Rest.GetMessage(42, msg.ID); restCode(err) != 10003 {
		t.Fatalf("unknown channel: %v", err)
	}
	if ids := emu.Messages(w.text)[0].CustomIDs(); len(ids) != 2 || ids[1] != "np:stop" {
		t.Fatalf("custom ids %v", ids)
	}
}
func restCode(err error) int {
	var re *rest.Error
	if errors.As(err, &re) {
		return int(re.Code)
	}
	return -1
}

func TestDisgoMessageWithFileIsMultipart(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	client, err := disgo.New(emu.Token(), bot.WithLogger(quietLogger()), bot.WithRestClientConfigOpts(rest.WithURL(emu.RESTURL())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	// No content: only the file makes the message non-empty.
	if _, err := client.Rest.CreateMessage(sf(w.text), discord.NewMessageCreate().AddFile("queue.txt", "", strings.NewReader("1. song"))); err != nil {
		t.Fatal(err)
	}
	rq := emu.Recorder().RequestsMatching("POST", "/channels/*/messages")
	if len(rq) != 1 || !strings.HasPrefix(rq[0].Header.Get("Content-Type"), "multipart/form-data") {
		t.Fatalf("request %+v", rq)
	}
}
