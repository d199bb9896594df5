package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu/emuctl"
)

// TestEmulatorPrintsWorkingEndpoints runs the command and talks to what it
// printed.
func TestEmulatorPrintsWorkingEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-lavalink-addr", "127.0.0.1:0", "-guilds", "2", "-shards", "2"}, pw, io.Discard)
		pw.Close()
	}()
	fields := map[string]string{}
	sc := bufio.NewScanner(pr)
	guilds := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "ready; Ctrl-C to stop" {
			break
		}
		if strings.HasPrefix(line, "guild ") {
			guilds++
		}
		for _, f := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
	}
	go io.Copy(io.Discard, pr)
	if guilds != 2 {
		t.Fatalf("%d demo guilds printed, want 2", guilds)
	}

	get := func(url, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(fields["url"]+"/version", fields["password"]); code != 200 || !strings.HasPrefix(body, "4.") {
		t.Fatalf("lavalink /version = %d %q", code, body)
	}
	if code, body := get(fields["rest_url"]+"/gateway/bot", "Bot "+fields["DISCORD_TOKEN"]); code != 200 || !strings.Contains(body, `"shards":2`) {
		t.Fatalf("discord /gateway/bot = %d %q", code, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop")
	}
}

// TestControlAPI runs the Lavalink emulator with a given password and the
// control API, and makes a world through what it printed.
func TestControlAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-discord=false", "-lavalink-addr", "127.0.0.1:0", "-lavalink-password", "SECRET-pw",
			"-control-addr", "127.0.0.1:0", "-max-recorded", "-1"}, pw, io.Discard)
		pw.Close()
	}()
	url := ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() && sc.Text() != "ready; Ctrl-C to stop" {
		if u, ok := strings.CutPrefix(sc.Text(), "control   url="); ok {
			url = u
		}
		if strings.Contains(sc.Text(), "SECRET") {
			t.Errorf("a password given on the command line was echoed: %q", sc.Text())
		}
	}
	go io.Copy(io.Discard, pr)
	c := &emuctl.Client{URL: url}
	w, err := c.NewWorld(ctx, emuctl.WorldSpec{Guilds: 2})
	if err != nil {
		t.Fatalf("control at %q: %v", url, err)
	}
	if w.Guilds != 2 {
		t.Fatalf("world %+v, want 2 guilds", w)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop")
	}
}

func TestNothingToRun(t *testing.T) {
	if code := run(context.Background(), []string{"-discord=false", "-lavalink=false"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
