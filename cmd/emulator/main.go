// Command emulator runs the Discord and/or Lavalink v4 emulators
// standalone on loopback, for manual runs of a node and for load tests,
// and prints their URLs and credentials. It runs until SIGINT/SIGTERM.
//
// With -control-addr it also serves the control API of package emuctl
// (Discord worlds created on demand, load runs measured inside the
// emulator): cmd/loadgen drives it from another process.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	discord := fs.Bool("discord", true, "run the Discord emulator")
	lavalink := fs.Bool("lavalink", true, "run the Lavalink emulator")
	discordAddr := fs.String("discord-addr", "127.0.0.1:0", "Discord emulator address (loopback)")
	lavalinkAddr := fs.String("lavalink-addr", "127.0.0.1:2333", "Lavalink emulator address (loopback)")
	password := fs.String("lavalink-password", "youshallnotpass", "Lavalink password clients must send")
	shards := fs.Int("shards", 1, "shard count the Discord emulator recommends")
	speed := fs.Float64("speed", 1, "Lavalink playback clock speed (2 = tracks end twice as fast)")
	guilds := fs.Int("guilds", 1, "demo guilds to create, each with a text and a voice channel and one member")
	controlAddr := fs.String("control-addr", "", "serve the load control API (worlds of Discord emulators) on this loopback address; empty: off")
	maxRecorded := fs.Int("max-recorded", 0, "bound on what the emulators record (requests, gateway payloads, player events): 0 keeps everything, -1 nothing; load runs want -1")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*discord && !*lavalink && *controlAddr == "" {
		fmt.Fprintln(stderr, "emulator: nothing to run (-discord=false, -lavalink=false and no -control-addr)")
		return 2
	}
	if *lavalink {
		l, err := lavalinkemu.Start(ctx, lavalinkemu.Config{Addr: *lavalinkAddr, Password: *password, Speed: *speed,
			MaxRecordedRequests: *maxRecorded, MaxRecordedEvents: *maxRecorded})
		if err != nil {
			fmt.Fprintln(stderr, "emulator: lavalink:", err)
			return 1
		}
		defer l.Close()
		// A password the caller chose is not echoed: it knows it, and the output may
		// end up in a log.
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "lavalink-password" })
		if given {
			fmt.Fprintf(stdout, "lavalink  address=%s url=%s\n", l.Addr(), l.URL())
		} else {
			fmt.Fprintf(stdout, "lavalink  address=%s url=%s password=%s\n", l.Addr(), l.URL(), *password)
		}
	}
	if *discord {
		d, err := discordemu.Start(ctx, discordemu.Config{Addr: *discordAddr, Shards: *shards, MaxRecorded: *maxRecorded})
		if err != nil {
			fmt.Fprintln(stderr, "emulator: discord:", err)
			return 1
		}
		defer d.Close()
		fmt.Fprintf(stdout, "discord   rest_url=%s gateway_url=%s\n", d.RESTURL(), d.GatewayURL())
		// The emulator's token is a fake credential for loopback use only;
		// printing it is what lets a node connect.
		fmt.Fprintf(stdout, "discord   DISCORD_TOKEN=%s\n", d.Token())
		for i := 0; i < *guilds; i++ {
			g, err := demoGuild(d, i, *shards)
			if err != nil {
				fmt.Fprintln(stderr, "emulator:", err)
				return 1
			}
			fmt.Fprintln(stdout, g)
		}
	}
	var served <-chan error
	if *controlAddr != "" {
		ctl := emuctl.NewServer(discordemu.Config{MaxRecorded: *maxRecorded}, nil)
		defer ctl.Close()
		addr, done, err := emuctl.Listen(ctx, *controlAddr, ctl)
		if err != nil {
			fmt.Fprintln(stderr, "emulator: control:", err)
			return 1
		}
		served = done
		fmt.Fprintf(stdout, "control   url=http://%s\n", addr)
	}
	fmt.Fprintln(stdout, "ready; Ctrl-C to stop")
	select {
	case <-ctx.Done():
	case err := <-served:
		// Asked to stop, the control server ends too, and this select
		// may see that first: that is a clean stop, not a failure.
		if ctx.Err() != nil {
			return 0
		}
		fmt.Fprintln(stderr, "emulator: control server stopped:", err)
		return 1
	}
	return 0
}

func demoGuild(d *discordemu.Emulator, i, shards int) (string, error) {
	g := discordemu.SnowflakeForShard(i%shards, shards)
	text, voice, user := discordemu.NewSnowflake(), discordemu.NewSnowflake(), discordemu.NewSnowflake()
	err := d.AddGuild(discordemu.Guild{
		ID: g, Name: fmt.Sprintf("Demo %d", i+1),
		Channels: []discordemu.Channel{{ID: text, Name: "music", Type: discordemu.ChannelText}, {ID: voice, Name: "Lounge", Type: discordemu.ChannelVoice}},
		Members:  []discordemu.Member{{User: discordemu.User{ID: user, Username: fmt.Sprintf("listener%d", i+1)}}},
	})
	if err != nil {
		return "", fmt.Errorf("demo guild: %w", err)
	}
	return fmt.Sprintf("guild     id=%d text=%d voice=%d member=%d", g, text, voice, user), nil
}
