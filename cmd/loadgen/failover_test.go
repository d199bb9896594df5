package main

import (
	"io"
	"testing"
)

func TestTrackDiff(t *testing.T) {
	for _, c := range []struct {
		name          string
		before, after []string
		lost, dup     int
	}{
		{"unchanged", []string{"a", "b", "c"}, []string{"a", "b", "c"}, 0, 0},
		{"the current track ended", []string{"a", "b", "c"}, []string{"b", "c"}, 0, 0},
		// Three tracks (a minute or more each) cannot all end in a run.
		{"nothing after", []string{"a", "b", "c"}, nil, 3, 0},
		{"a queued track lost", []string{"a", "b", "c"}, []string{"a", "c"}, 1, 0},
		{"a track queued twice", []string{"a", "b", "c"}, []string{"a", "b", "c", "c"}, 0, 1},
		{"the queue replayed from the start", []string{"a", "b", "c"}, []string{"b", "c", "a"}, 0, 1},
		{"a stranger playing", []string{"a", "b"}, []string{"x", "a", "b"}, 0, 1},
		{"nothing before", nil, []string{"x"}, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			lost, dup := trackDiff(c.before, c.after)
			if lost != c.lost || dup != c.dup {
				t.Fatalf("trackDiff(%v, %v) = lost %d dup %d; want %d, %d", c.before, c.after, lost, dup, c.lost, c.dup)
			}
		})
	}
}

func TestParseClusterScenarios(t *testing.T) {
	o, err := parseCluster("failover-node", []string{"--nodes", "3", "--guilds", "1000"}, io.Discard)
	if err != nil || o.nodes != 3 || o.guilds != 1000 || o.shards != 20 || o.probes != 200 {
		t.Fatalf("failover-node flags: %+v, %v", o, err)
	}
	o, err = parseCluster("scale-out", []string{"--from", "2", "--to", "3", "--guilds", "100"}, io.Discard)
	if err != nil || o.from != 2 || o.to != 3 || o.shards != 4 {
		t.Fatalf("scale-out flags: %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"failover-node", "--nodes", "1"},
		{"failover-node", "--lease-ttl", "1s"},
		{"scale-out", "--from", "3", "--to", "3"},
		{"drain", "extra"},
	} {
		if _, err := parseCluster(bad[0], bad[1:], io.Discard); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
