package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/cluster/clustertest"
	"github.com/ensemble-bot/ensemble/internal/discordemu"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
)

// lockedBuffer is a node's output, written by the process while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// TestTwoNodesShareTheGuildsAndFailOver runs two node processes as one
// cluster (etcd membership, Redis store) against the emulators: the
// guilds' sessions spread over both members, each shard has one gateway
// connection, and when one node is killed (SIGKILL) the other restores
// its sessions by itself, at their position, and answers their commands.
// Then a rolling restart: a third node joins and the second is stopped
// (SIGTERM); the third plays and answers for every guild.
func TestTwoNodesShareTheGuildsAndFailOver(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := startCluster(ctx, t, clustertest.Config{Node: bin})
	dc, lava, redis := cl.Discord, cl.Lavalink, cl.Redis
	// 20 guilds: the chance that rendezvous hashing puts all on one of
	// two members is 2^-19.
	guilds, err := dc.AddLoadGuilds(20, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, b := startNode(ctx, t, cl), startNode(ctx, t, cl)
	answer := answerer(ctx, t, cl)
	for i, g := range guilds {
		answer(g, "play", discordemu.StringOption("query", fmt.Sprintf("song %d", i)))
	}
	players := cl.Players
	var before map[uint64][]lavalinkemu.PlayerInfo
	waitFor(t, "every guild playing once", func() bool {
		before = players()
		for _, g := range guilds {
			if len(before[uint64(g.ID)]) != 1 {
				return false
			}
		}
		return true
	})
	holders := map[string]int{}
	for _, ps := range before {
		holders[ps[0].SessionID]++
	}
	if len(holders) != 2 {
		t.Fatalf("players by Lavalink session (one per member): %v; want the guilds spread over both members", holders)
	}
	// Each shard has exactly one gateway connection in the cluster.
	shardsUp := func() {
		t.Helper()
		waitFor(t, "one ready gateway connection per shard", func() bool {
			count := map[int]int{}
			for _, s := range dc.Sessions() {
				if s.Connected && s.Ready {
					count[s.Shard]++
				}
			}
			return count[0] == 1 && count[1] == 1
		})
	}
	shardsUp()
	// The shards' Discord sessions: from here on, wherever a shard moves
	// (its member killed, or stopped), its next holder resumes the same
	// session from the lease's state, never identifies again.
	sessionOf := map[int]string{}
	for _, s := range dc.Sessions() {
		if s.Connected && s.Ready {
			sessionOf[s.Shard] = s.ID
		}
	}
	sameSessions := func(when string) {
		t.Helper()
		all := dc.Sessions()
		for _, s := range all {
			if s.ID != sessionOf[s.Shard] {
				t.Fatalf("%s: shard %d has a new Discord session (%+v); want %s resumed. Sessions: %+v", when, s.Shard, s, sessionOf[s.Shard], all)
			}
		}
		if len(all) != 2 {
			t.Fatalf("%s: sessions %+v; want one per shard", when, all)
		}
	}

	holdersStored(ctx, t, cl, guilds)
	// And each shard's lease holds its session to resume (stored at once
	// after READY; the key is the Redis backend's, see internal/store).
	rc := goredis.NewClient(&goredis.Options{Addr: redis.Addr})
	defer rc.Close()
	waitFor(t, "every shard's resume state stored", func() bool {
		for shard, id := range sessionOf {
			data, err := rc.Get(ctx, fmt.Sprintf("ensemble:{shard-%d}:resume", shard)).Bytes()
			var st clusterpb.ShardResume
			if err != nil || proto.Unmarshal(data, &st) != nil || st.GetSessionId() != id {
				return false
			}
		}
		return true
	})
	killedAt := time.Now()
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	// A's Lavalink session is the one whose websocket closed.
	var dead string
	waitFor(t, "the killed member's Lavalink session to drop", func() bool {
		for _, s := range lava.Sessions() {
			if !s.Connected {
				dead = s.ID
				return true
			}
		}
		return false
	})
	moved := 0
	for _, g := range guilds {
		old := before[uint64(g.ID)][0]
		if old.SessionID != dead {
			continue
		}
		moved++
		var now lavalinkemu.PlayerInfo
		waitFor(t, fmt.Sprintf("guild %s playing on the surviving member", g.ID), func() bool {
			for _, p := range players()[uint64(g.ID)] {
				if p.SessionID != dead {
					now = p
					return true
				}
			}
			return false
		})
		if now.Track.Info.Identifier != old.Track.Info.Identifier {
			t.Fatalf("guild %s: after failover playing %s, want %s", g.ID, now.Track.Info.Identifier, old.Track.Info.Identifier)
		}
		// Not from the start: where the track was, give or take what the
		// snapshot's age and the failover took.
		if now.Position+3000 < old.Position {
			t.Fatalf("guild %s: resumed at %d ms, it was at %d ms before the kill", g.ID, now.Position, old.Position)
		}
	}
	t.Logf("%d sessions failed over within %s", moved, time.Since(killedAt).Round(time.Millisecond))
	// The survivor took the killed member's players over (it resumed the
	// dead Lavalink session to reach them) and destroyed them: one player
	// per guild, not the old one playing on beside the new.
	onePlayerEach := func(when string) {
		t.Helper()
		// What was wrong 3 s into the wait (tracks can be as short as a
		// minute: a timeout shows tracks that ended meanwhile).
		var snapshot []string
		defer func() {
			if t.Failed() {
				t.Logf("guilds without exactly one playing player 3 s into the wait %s:\n%s", when, strings.Join(snapshot, "\n"))
			}
		}()
		start := time.Now()
		waitFor(t, "one player per guild "+when, func() bool {
			on := players()
			var odd []uint64
			for _, g := range guilds {
				if ps := on[uint64(g.ID)]; len(ps) != 1 {
					odd = append(odd, uint64(g.ID))
				}
			}
			if len(odd) > 0 && snapshot == nil && time.Since(start) > 3*time.Second {
				snapshot = []string{}
				for _, g := range odd {
					for _, s := range lava.Sessions() {
						for _, p := range lava.Players(s.ID) {
							if p.GuildID == g {
								snapshot = append(snapshot, fmt.Sprintf("guild %d: player %+v track %+v (session %+v)", g, p, p.Track, s))
							}
						}
					}
					for _, ev := range lava.PlayerEvents(g) {
						snapshot = append(snapshot, fmt.Sprintf("guild %d event at %s %s %s %s play %s pos %d", g, ev.Time.Format("15:04:05.000"), ev.SessionID, ev.Type, ev.Reason, ev.UserData, ev.Position))
					}
					for _, r := range lava.Requests() {
						if strings.Contains(r.Path, fmt.Sprint(g)) {
							snapshot = append(snapshot, fmt.Sprintf("guild %d request %s %s %.200s", g, r.Method, r.Path, r.Body))
						}
					}
				}
			}
			return len(odd) == 0
		})
	}
	onePlayerEach("after the failover")
	// The shards the killed member held connect again from the survivor,
	// resuming their sessions: Discord replays what it kept for them
	// meanwhile.
	shardsUp()
	sameSessions("after the failover")
	t.Logf("shards resumed on the survivor within %s of the kill (checked after the players)", time.Since(killedAt).Round(time.Millisecond))
	// Every guild is served, whichever member held its shard or session.
	for _, g := range guilds {
		if q := answer(g, "queue"); !strings.Contains(q, "song") {
			t.Fatalf("/queue in %s after failover: %s", g.ID, q)
		}
	}

	// A rolling restart: a new node joins, then the survivor is stopped
	// (SIGTERM): it leaves the membership first, hands its shards and
	// sessions over and exits 0; the new node plays every guild on.
	c := startNode(ctx, t, cl)
	drained := time.Now()
	if err := b.Stop(time.Minute); err != nil {
		t.Fatalf("stopped node: %v", err)
	}
	exited := time.Since(drained)
	// Playing on a Lavalink session whose websocket is up: the new node's
	// (the stopped nodes' sessions have dropped).
	waitFor(t, "every guild playing on the new node", func() bool {
		live := cl.LiveSessions()
		on := players()
		for _, g := range guilds {
			found := false
			for _, p := range on[uint64(g.ID)] {
				found = found || live[p.SessionID]
			}
			if !found {
				return false
			}
		}
		return true
	})
	t.Logf("stopped node exited %s after SIGTERM; every guild playing on the new node %s after it", exited.Round(time.Millisecond), time.Since(drained).Round(time.Millisecond))
	onePlayerEach("after the rolling restart")
	shardsUp()
	sameSessions("after the rolling restart")
	for _, g := range guilds {
		if q := answer(g, "queue"); !strings.Contains(q, "song") {
			t.Fatalf("/queue in %s after the rolling restart: %s", g.ID, q)
		}
	}
	// Stopped as it is, its takeovers just done: the drain ends within
	// node.shutdown_timeout whatever its sessions are doing
	// (TestStopDuringTakeovers).
	stopInTime(t, c)
}
