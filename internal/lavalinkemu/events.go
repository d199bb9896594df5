package lavalinkemu

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// PlayerEventRecord is one player event the emulator produced, in order.
type PlayerEventRecord struct {
	Seq        int64 // global order of production
	Time       time.Time
	SessionID  string
	GuildID    uint64
	Type       string // "TrackStartEvent", "TrackEndEvent", "TrackExceptionEvent", "TrackStuckEvent", "WebSocketClosedEvent"
	Reason     string // TrackEndEvent's reason
	Identifier string // the track's info.identifier ("" for WebSocketClosedEvent)
	Title      string
	Position   int64           // the track's position when the event was produced
	UserData   json.RawMessage // the track's userData as sent
}

// playerEvent is a websocket event message that goes into the event log.
type playerEvent interface {
	record() PlayerEventRecord
}

func trackRecord(typ string, t *Track) PlayerEventRecord {
	r := PlayerEventRecord{Type: typ}
	if t != nil {
		r.Identifier, r.Title, r.Position = t.Info.Identifier, t.Info.Title, t.Info.Position
		r.UserData = append(json.RawMessage(nil), t.UserData...)
	}
	return r
}

func (ev trackStartEvent) record() PlayerEventRecord { return trackRecord(ev.Type, ev.Track) }

func (ev trackEndEvent) record() PlayerEventRecord {
	r := trackRecord(ev.Type, ev.Track)
	r.Reason = ev.Reason
	return r
}

func (ev trackExceptionEvent) record() PlayerEventRecord { return trackRecord(ev.Type, ev.Track) }
func (ev trackStuckEvent) record() PlayerEventRecord     { return trackRecord(ev.Type, ev.Track) }
func (ev wsClosedEvent) record() PlayerEventRecord       { return PlayerEventRecord{Type: ev.Type} }

// emit sends a player event and logs it in the same step, under e.mu, so
// that the log's order is the order clients receive events in. An event
// nobody will ever receive (no socket, no resume pending) is not logged.
func (p *player) emit(ev playerEvent) {
	if !p.s.send(ev) {
		return
	}
	r := ev.record()
	r.SessionID, r.GuildID = p.s.id, p.guildID
	p.e.events.add(r)
}

// eventLog is bounded like the recorder. Its own lock is taken inside e.mu,
// never the other way round.
type eventLog struct {
	max  int
	mu   sync.Mutex
	seq  int64
	recs []PlayerEventRecord
	// changed is closed and replaced on every new record: waiters block on
	// it instead of polling.
	changed chan struct{}
}

func (l *eventLog) add(r PlayerEventRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max < 0 {
		return
	}
	l.seq++
	r.Seq, r.Time = l.seq, time.Now()
	l.recs = append(l.recs, r)
	// Trimming only at twice the bound keeps logging O(1) amortized.
	if l.max > 0 && len(l.recs) >= 2*l.max {
		l.recs = append([]PlayerEventRecord(nil), l.recs[len(l.recs)-l.max:]...)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// sinceLocked copies the retained records after seq for guildID (0: all), and
// returns the channel that announces the next record. Callers hold l.mu.
func (l *eventLog) sinceLocked(seq int64, guildID uint64) ([]PlayerEventRecord, chan struct{}) {
	recs := l.recs
	if l.max > 0 && len(recs) > l.max {
		recs = recs[len(recs)-l.max:]
	}
	var out []PlayerEventRecord
	for _, r := range recs {
		if r.Seq > seq && (guildID == 0 || r.GuildID == guildID) {
			out = append(out, r)
		}
	}
	return out, l.changed
}

// PlayerEvents returns the logged player events of guildID (0: every guild),
// oldest first: every TrackStart, TrackEnd, TrackException, TrackStuck and
// WebSocketClosed event the emulator sent or queued for a resuming session.
// The log survives Kill and Restart and is bounded by MaxRecordedEvents.
func (e *Emulator) PlayerEvents(guildID uint64) []PlayerEventRecord {
	e.events.mu.Lock()
	defer e.events.mu.Unlock()
	out, _ := e.events.sinceLocked(0, guildID)
	return out
}

// WaitPlayerEvent waits until an event for guildID (0: any guild) satisfying
// cond has been produced, including ones already logged, and returns the
// oldest such event; it fails when ctx ends first. cond runs without any
// emulator lock held. With a negative MaxRecordedEvents nothing is logged,
// so it always waits for ctx.
func (e *Emulator) WaitPlayerEvent(ctx context.Context, guildID uint64, cond func(PlayerEventRecord) bool) (PlayerEventRecord, error) {
	var seen int64
	for {
		e.events.mu.Lock()
		recs, changed := e.events.sinceLocked(seen, guildID)
		if n := e.events.seq; n > seen {
			seen = n
		}
		e.events.mu.Unlock()
		for _, r := range recs {
			if cond(r) {
				return r, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return PlayerEventRecord{}, fmt.Errorf("lavalinkemu: waiting for a player event of guild %d: %w", guildID, ctx.Err())
		}
	}
}
