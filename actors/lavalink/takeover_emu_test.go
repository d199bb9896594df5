//go:build !race

package lavalink

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/secret"
)

// TestEmuTakeOverAnotherMembersPlayer: a player created through one
// member's Lavalink session is taken over by a second member's client
// (the session grain's new activation): it reads the first player's
// position and play ID, the first player is destroyed on the node, and
// once the second member plays from there, only its player exists.
// Two ways the first member can be gone: dead (its process killed, its
// session waiting for a resume that never comes, its player playing on
// until the resume timeout; Lavalink answers REST calls about such a
// session with 404, so the taker resumes it first) or alive (the session
// grain moved to another member: its own events of the destroyed player
// end its watch).
func TestEmuTakeOverAnotherMembersPlayer(t *testing.T) {
	voice := audio.Voice{ChannelID: "800000000000000041", SessionID: "vs", Token: "tok", Endpoint: "voice.example:443"}
	for _, dead := range []bool{true, false} {
		name := map[bool]string{true: "dead member", false: "live member"}[dead]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{nodes: 1})
			h.waitUsable(1)
			e := h.emus["n0"]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			loaded, err := h.c.Load(ctx, "ytsearch:handover")
			if err != nil || len(loaded.Tracks) == 0 {
				t.Fatalf("load: %v", err)
			}
			track := loaded.Tracks[0]
			const g = "900000000000000041"
			gid := snowflake.MustParse(g)
			old := audio.PlayRequest{Track: track, Volume: 70, Voice: voice, PlayID: "7.3"}

			// The first member creates the player on its session.
			var first audio.Holder
			var member *Client
			var memberEvents *recorder
			if dead {
				first = deadMemberPlays(ctx, t, e, gid, old)
			} else {
				member, memberEvents = startMember(t, e)
				if first, err = member.Play(ctx, g, old); err != nil {
					t.Fatal(err)
				}
			}
			ours, _ := h.c.liveLink("n0")
			if first.Session == "" || first.Session == ours.sessionID() {
				t.Fatalf("first player's session %q; ours is %q", first.Session, ours.sessionID())
			}
			// It plays on: wait until its clock has moved (playerUpdates
			// every 100 ms).
			var before lavalinkemu.PlayerInfo
			var beforeAt time.Time
			h.waitFor("the first player's position past 300 ms", 10*time.Second, func() bool {
				ps := e.Players(first.Session)
				if len(ps) == 1 {
					before, beforeAt = ps[0], time.Now()
				}
				return len(ps) == 1 && ps[0].Position >= 300
			})
			if dead {
				var waiting bool
				for _, s := range e.Sessions() {
					waiting = waiting || (s.ID == first.Session && s.Resumable && s.Players == 1)
				}
				if !waiting {
					t.Fatalf("the dead member's session is not waiting for a resume with its player: %+v", e.Sessions())
				}
			}

			// The second member takes it over.
			st, ok, err := h.c.TakeOver(ctx, g, first)
			if err != nil || !ok {
				t.Fatalf("TakeOver = %v, %v", ok, err)
			}
			if st.PlayID != "7.3" || st.Identifier != track.Identifier || st.Paused {
				t.Fatalf("taken-over state %+v", st)
			}
			// The node's clock ran on between the look and the read.
			lo := time.Duration(before.Position) * time.Millisecond
			if hi := lo + st.At.Sub(beforeAt); st.Position < lo || st.Position > hi+50*time.Millisecond {
				t.Fatalf("taken-over position %v, want between %v (the node's, before) and %v", st.Position, lo, hi)
			}
			if ps := e.Players(first.Session); len(ps) != 0 {
				t.Fatalf("the first player is still on the node: %+v", ps)
			}
			// Lavalink does not address a session waiting for a resume over
			// REST: the dead member's was resumed (claimed) for the takeover;
			// a live member's is reached as it is.
			claims := 0
			for _, r := range e.RequestsTo("GET", "/v4/websocket") {
				if r.Header.Get("Session-Id") == first.Session {
					claims++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[dead]; claims != want {
				t.Fatalf("%d websocket handshakes resuming the first session, want %d", claims, want)
			}
			// The destroy ended the old play: Lavalink's TrackEnd "stopped"
			// with the previous play ID, queued for a dead member's resume
			// or sent to a live one.
			ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
			defer ecancel()
			end, err := e.WaitPlayerEvent(ectx, uint64(gid), func(r lavalinkemu.PlayerEventRecord) bool {
				return r.SessionID == first.Session && r.Type == "TrackEndEvent" && r.Reason == "stopped"
			})
			if err != nil {
				t.Fatal(err)
			}
			var ud playUserData
			if err := json.Unmarshal(end.UserData, &ud); err != nil || ud.PlayID != "7.3" {
				t.Fatalf("the old play's TrackEnd carries userData %s", end.UserData)
			}

			// The second member plays where the first player was.
			pos := st.Position + time.Since(st.At)
			second, err := h.c.Play(ctx, g, audio.PlayRequest{Track: track, Position: pos, Volume: 70, Voice: voice, PlayID: "8.1"})
			if err != nil {
				t.Fatal(err)
			}
			if second.Node != "n0" || second.Session != ours.sessionID() {
				t.Fatalf("second holder %+v", second)
			}
			var all []lavalinkemu.PlayerInfo
			for _, p := range e.Players("") {
				if p.GuildID == uint64(gid) {
					all = append(all, p)
				}
			}
			if len(all) != 1 || all[0].SessionID != second.Session || all[0].Track == nil || !all[0].Connected || all[0].Paused {
				t.Fatalf("players of the guild after the takeover: %+v", all)
			}
			if p := time.Duration(all[0].Position) * time.Millisecond; p < st.Position {
				t.Fatalf("the new player is at %v, before the old one's %v", p, st.Position)
			}

			if dead {
				// Released after its linger, the claimed session waits for a
				// resume again (until its timeout), with no player left.
				h.waitFor("the dead session waiting again", 10*time.Second, func() bool {
					for _, s := range e.Sessions() {
						if s.ID == first.Session {
							return s.Resumable && s.Players == 0
						}
					}
					return false
				})
			} else {
				// The live member heard the end of its play (the session
				// grain, elsewhere now, ignores it by its play ID), and its
				// watchdog no longer follows the player, so it cannot
				// re-create it.
				waitUntil(t, "the live member's TrackEnd", func() bool {
					memberEvents.mu.Lock()
					defer memberEvents.mu.Unlock()
					for _, ev := range memberEvents.events {
						if ev.GetKind() == clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END && ev.GetEndReason() == "stopped" && ev.GetPlayId() == "7.3" {
							return true
						}
					}
					return false
				})
				gp := member.guild(g, false)
				gp.mu.Lock()
				watched := gp.watched()
				gp.mu.Unlock()
				if watched {
					t.Fatal("the live member's watchdog still follows the destroyed player")
				}
			}
		})
	}
}

// deadMemberPlays is a member process that plays p on the emulator with
// session resuming on (as Client does) and is then killed: its websocket
// goes without a goodbye (no resuming turned off), so Lavalink keeps its
// session and the player playing, waiting for a resume that never comes.
// It is plain disgolink: none of this package's clients, so nothing of it
// lives on to reconnect.
func deadMemberPlays(ctx context.Context, t *testing.T, e *lavalinkemu.Emulator, gid snowflake.ID, p audio.PlayRequest) audio.Holder {
	t.Helper()
	dl := disgolink.New(snowflake.MustParse("123456789012345678"), disgolink.WithLogger(slog.New(slog.DiscardHandler)))
	node, err := dl.AddNode(ctx, disgolink.NodeConfig{Name: "n0", Address: e.Addr(), Password: emuPassword})
	if err != nil {
		t.Fatal(err)
	}
	on, secs := true, 60
	if _, err := node.Rest().UpdateSession(ctx, node.SessionID(), lavalink.SessionUpdate{Resuming: &on, Timeout: &secs}); err != nil {
		t.Fatal(err)
	}
	upd, err := playUpdate(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Rest().UpdatePlayer(ctx, node.SessionID(), gid, upd); err != nil {
		t.Fatal(err)
	}
	sid := node.SessionID()
	dl.Close()
	waitUntil(t, "the dead member's session waiting for a resume", func() bool {
		for _, s := range e.Sessions() {
			if s.ID == sid && s.Resumable {
				return true
			}
		}
		return false
	})
	return audio.Holder{Node: "n0", Session: sid}
}

// startMember is another member's Lavalink client on the emulator, with
// its own session; its forwarded events go to the recorder.
func startMember(t *testing.T, e *lavalinkemu.Emulator) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	c, err := New(Options{
		BotUserID: "123456789012345678", RequestTimeout: 2 * time.Second, Registerer: prometheus.NewRegistry(),
		Nodes:   []config.LavalinkNode{{Name: "n0", Address: e.Addr(), Password: secret.New(emuPassword)}},
		Breaker: config.Default().Lavalink.Breaker, OnEvent: rec.event,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	t.Cleanup(c.Close)
	waitUntil(t, "the other member connected", func() bool { return c.isUsable("n0") })
	return c, rec
}
