package lavalink

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgolink/v3/lavalink"
	"github.com/disgoorg/snowflake/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// TestFakeLinkPlayIDTravelsWithTheTrack: Play sends the session's play ID
// as the track's userData, and every track event Lavalink sends back is
// forwarded with the play ID it echoes and the track's identifier, however
// Lavalink re-encoded the track meanwhile (its position is in the
// encoding). userData that is not ours gives no play ID.
func TestFakeLinkPlayIDTravelsWithTheTrack(t *testing.T) {
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, servers, rec := newFakeLinkClient(t, br, Timing{})
	g := "900000000000000010"
	gid := snowflake.MustParse(g)
	req := playReq(t)
	req.PlayID = "12.3"
	node, err := playNode(c.Play(context.Background(), g, req))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, sent := servers[node].counts(gid); !strings.Contains(sent, `"userData":{"ensemblePlayId":"12.3"}`) {
		t.Fatalf("the play was sent without its ID: %s", sent)
	}
	uri := "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
	info := lavalinkemu.TrackInfo{Identifier: "dQw4w9WgXcQ", IsSeekable: true, Author: "Rick Astley", Length: 212000,
		Position: 166000, Title: "Never Gonna Give You Up", URI: &uri, SourceName: "youtube"}
	enc, err := lavalinkemu.EncodeTrack(info)
	if err != nil {
		t.Fatal(err)
	}
	track := func(userData string) lavalink.Track {
		return lavalink.Track{Encoded: enc, Info: lavalink.TrackInfo{Identifier: info.Identifier, Title: info.Title,
			Length: lavalink.Duration(info.Length), Position: lavalink.Duration(info.Position), SourceName: "youtube"}, UserData: lavalink.RawData(userData)}
	}
	for _, c2 := range []struct {
		name     string
		userData string
		playID   string
	}{
		{"ours", `{"ensemblePlayId":"12.3"}`, "12.3"},
		{"empty object", `{}`, ""},
		{"not an object", `"12.3"`, ""},
		{"someone else's", `{"requester":"42"}`, ""},
		{"absent", ``, ""},
	} {
		t.Run(c2.name, func(t *testing.T) {
			tr := track(c2.userData)
			msgs := []struct {
				msg  lavalink.Message
				kind clusterpb.PlayerEventKind
			}{
				{lavalink.TrackStartEvent{GuildID_: gid, Track: tr}, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_START},
				{lavalink.TrackExceptionEvent{GuildID_: gid, Track: tr, Exception: lavalink.Exception{Message: "broken"}}, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_EXCEPTION},
				{lavalink.TrackStuckEvent{GuildID_: gid, Track: tr}, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_STUCK},
				{lavalink.TrackEndEvent{GuildID_: gid, Track: tr, Reason: lavalink.TrackEndReasonFinished}, clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END},
			}
			for _, m := range msgs {
				rec.mu.Lock()
				before := len(rec.events)
				rec.mu.Unlock()
				c.playerMessage(node, g, m.msg, time.Now())
				rec.mu.Lock()
				got := rec.events[before:]
				rec.mu.Unlock()
				if len(got) != 1 || got[0].GetKind() != m.kind {
					t.Fatalf("%T forwarded as %v", m.msg, got)
				}
				if got[0].GetPlayId() != c2.playID || got[0].GetTrackIdentifier() != info.Identifier || got[0].GetNode() != node {
					t.Fatalf("%T forwarded with play %q, track %q, node %q", m.msg, got[0].GetPlayId(), got[0].GetTrackIdentifier(), got[0].GetNode())
				}
			}
		})
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFakeLinkNodeWithoutResuming: a server that answers the request to
// enable session resuming with 404 (NodeLink) is used anyway; the node is
// marked in the log (once) and the metrics; a websocket loss on it is a
// lost node at once, with no resume attempt (there is nothing to resume:
// its players are gone).
func TestFakeLinkNodeWithoutResuming(t *testing.T) {
	logs := &lockedBuffer{}
	br := config.Breaker{Window: time.Minute, FailureRatio: 1, MinRequests: 100, ResetTimeout: time.Hour}
	c, _, rec := newFakeLinkClientWith(t, br, Timing{ResumeGrace: time.Hour},
		func(s map[string]*fakeServer) { s["a"].noResume = true },
		slog.New(slog.NewTextHandler(logs, nil)))
	if v := gaugeValue(t, c.m.resuming.WithLabelValues("a")); v != 0 {
		t.Fatalf("resuming{node=a} = %v, want 0", v)
	}
	if v := gaugeValue(t, c.m.resuming.WithLabelValues("b")); v != 1 {
		t.Fatalf("resuming{node=b} = %v, want 1", v)
	}
	// Place one guild on each node: a placement counts until the next
	// stats, so the second guild goes to the other node.
	ctx := context.Background()
	nodes := map[string]string{}
	for _, g := range []string{"900000000000000021", "900000000000000022"} {
		n, err := playNode(c.Play(ctx, g, playReq(t)))
		if err != nil {
			t.Fatal(err)
		}
		nodes[n] = g
	}
	if nodes["a"] == "" || nodes["b"] == "" {
		t.Fatalf("placements %v", nodes)
	}
	for round := range 2 {
		c.sendNode("a", wsClosed{})
		// NODE_LOST at the loss itself: the node actor knew there was
		// nothing to resume (the reconnection gets a new session).
		waitUntil(t, "NODE_LOST for the guild on the node without resuming", func() bool { return rec.lostFor("a")[nodes["a"]] })
		waitUntil(t, "reconnected", func() bool { return c.isUsable("a") })
		if round == 0 {
			if _, err := c.Play(ctx, nodes["a"], playReq(t)); err != nil { // back to a (b carries a placement)
				t.Fatal(err)
			}
			rec.mu.Lock()
			rec.events = nil
			rec.mu.Unlock()
		}
	}
	if rec.lostFor("b")[nodes["b"]] {
		t.Fatal("the guild on the resuming node was moved")
	}
	if n := strings.Count(logs.String(), "cannot resume sessions"); n != 1 {
		t.Fatalf("%d WARN lines about the node without resuming, want 1:\n%s", n, logs.String())
	}
}
