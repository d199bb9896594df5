package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSandboxRunsToTheEnd runs `node --sandbox` as a user would: it must
// show the conversation and exit 0 by itself. Built without -race: the
// sandbox drives disgo's gateway, which races inside the library.
func TestSandboxRunsToTheEnd(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--sandbox")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sandbox: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"join a voice channel first",   // refused before joining
		"Playing now",                  // first track
		"Playlist queued",              // playlist URL
		"now-playing message",          // the message with buttons
		"[pause_resume] [skip] [stop]", // its buttons
		"Paused.", "Resumed.", "Skipped",
		"ended by itself", // a track ends without a command and the next starts
		"Loop: track.",
		"autoplay cannot be turned on while loop is on", // a refusal, shown as ephemeral
		"only you can see this",
		"Stopped and cleared the queue.", "Left the voice channel",
		"Sandbox finished.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sandbox output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}

// TestClusterSandboxSurvivesAMemberDying runs `node --sandbox --nodes 3`:
// three members on a throwaway etcd and Redis; the member playing is
// killed mid-track and the music goes on from another, queue intact.
func TestClusterSandboxSurvivesAMemberDying(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--sandbox", "--nodes", "3")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cluster sandbox: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"member 3 up", "Playing now", "Added at position 1",
		"Killed that member (SIGKILL)",
		"The music continues from another member",
		"second song", // still queued after the failover
		"Sandbox finished.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster sandbox output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}
