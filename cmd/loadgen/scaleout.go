package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
)

// scaleOutReport is one scale-out run.
type scaleOutReport struct {
	Scenario   string  `json:"scenario"`
	Date       string  `json:"date"`
	From       int     `json:"from"`
	To         int     `json:"to"`
	Guilds     int     `json:"guilds"`
	Shards     int     `json:"shards"`
	LeaseTTLMs float64 `json:"lease_ttl_ms"`
	// SettledMs: from the first new member's start to the guilds'
	// players holding still for 3 s.
	SettledMs   float64 `json:"settled_ms"`
	Moved       int     `json:"moved"`
	MovedShare  float64 `json:"moved_share"`
	MaxOverMean float64 `json:"max_over_mean"`
	PerMember   []int   `json:"per_member"`
	LostTracks  int     `json:"lost_tracks"`
	DupTracks   int     `json:"duplicated_tracks"`
	DoubleP     int     `json:"double_players"`
}

func runScaleOut(ctx context.Context, env *runEnv, o clusterOptions) error {
	rep := scaleOutReport{Scenario: "scale-out", Date: time.Now().UTC().Format(time.RFC3339), From: o.from, To: o.to,
		Guilds: o.guilds, Shards: o.shards, LeaseTTLMs: durMS(o.leaseTTL)}
	w, err := startWorld(ctx, env, o, o.from, filepath.Join(env.dir, "scale-out"))
	if err != nil {
		return err
	}
	defer w.close()
	before, err := w.stable(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	for range o.to - o.from {
		if err := w.addNode(ctx); err != nil {
			return err
		}
	}
	// Settled: each guild has one player on a live session, and no player
	// has moved for 3 s.
	sctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	var last map[uint64]string
	var since time.Time
	err = clustertest.Poll(sctx, func() bool {
		live, players := w.c.LiveSessions(), w.c.Players()
		now := map[uint64]string{}
		for _, g := range w.guilds {
			ps := players[uint64(g.ID)]
			if len(ps) != 1 || !live[ps[0].SessionID] {
				last = nil
				return false
			}
			now[uint64(g.ID)] = ps[0].SessionID
		}
		if !sameMap(now, last) {
			last, since = now, time.Now()
			return false
		}
		return time.Since(since) >= 3*time.Second
	})
	if err != nil {
		return fmt.Errorf("scale-out: the guilds' players did not settle within %s", o.limit)
	}
	rep.SettledMs = durMS(since.Sub(start))
	count := map[string]int{}
	for id, s := range last {
		count[s]++
		if before[id].player != s {
			rep.Moved++
		}
	}
	most := 0
	for _, n := range count {
		rep.PerMember = append(rep.PerMember, n)
		most = max(most, n)
	}
	rep.MovedShare = float64(rep.Moved) / float64(o.guilds)
	rep.MaxOverMean = float64(most) / (float64(o.guilds) / float64(o.to))
	if rep.LostTracks, rep.DupTracks, rep.DoubleP, err = w.compare(ctx, before); err != nil {
		return err
	}
	printScaleOut(env.stdout, rep)
	if env.out != "" {
		return appendJSONLines(env.out, rep)
	}
	return nil
}

func sameMap(a, b map[uint64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func printScaleOut(w io.Writer, r scaleOutReport) {
	fmt.Fprintf(w, "scale-out %d → %d members, %d guilds, %d shards: settled %.0f ms after the first join\n", r.From, r.To, r.Guilds, r.Shards, r.SettledMs)
	fmt.Fprintf(w, "  moved %d (share %.3f), guilds per member %v (max/mean %.2f); lost tracks %d, duplicated %d, double players %d\n",
		r.Moved, r.MovedShare, r.PerMember, r.MaxOverMean, r.LostTracks, r.DupTracks, r.DoubleP)
}
