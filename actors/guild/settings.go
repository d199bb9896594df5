package guild

import (
	"context"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// startLoad reads the settings and whether a session exists, off the
// mailbox; commands wait in the pending list until it reports.
func (g *Grain) startLoad() {
	g.load = loading
	if g.loading == nil {
		g.loading = &loadProgress{}
	}
	g.loading.events = g.sessionEvents
	st, id, timeout := g.deps.Store, g.guildID(), g.deps.CallTimeout
	g.report(func() any {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rec, err := st.LoadGuild(c, id)
		return loadedMsg{rec: rec, err: err}
	})
}

func (g *Grain) onLoaded(msg loadedMsg) {
	l := g.loading
	if g.load != loading || l == nil {
		return
	}
	pending := l.pending
	l.pending = nil
	if msg.err != nil {
		// Keep the safe defaults for now, and let a later command try
		// again once the backoff allows, not every command: a store that
		// is down is not helped by a retry per interaction. No timer: an
		// idle guild needs no settings, and may passivate meanwhile.
		delay, _ := g.deps.LoadRetry.Delay(l.failures, rand.Float64())
		l.failures++
		g.load, l.retryAt = loadFailed, g.now()+delay
		g.logger().Warn("load settings; DJ actions need Manage Server until a reload succeeds", "err", msg.err, "retry_after", delay)
	} else {
		g.settings = g.decodeSettings(msg.rec.Settings)
		g.load, g.loading = loaded, nil
		switch {
		case msg.rec.HasSession:
			g.session = sessionActive
		case g.sessionEvents == l.events && len(g.inFlight) == 0:
			// Nothing reached the session while the store was read, so
			// its answer is still true.
			g.session = sessionInactive
		}
	}
	for _, w := range pending {
		g.run(w)
	}
}

// decodeSettings turns stored settings into the guild's. Stored settings
// that cannot be decoded or are invalid leave the defaults (and a later
// /settings replaces them: there is nothing readable to keep).
func (g *Grain) decodeSettings(data []byte) music.Settings {
	if data == nil {
		return music.DefaultSettings()
	}
	var pb clusterpb.GuildSettings
	if err := proto.Unmarshal(data, &pb); err != nil {
		g.logger().Warn("decode settings; using defaults", "err", err)
		return music.DefaultSettings()
	}
	s, err := music.NewSettings(pb.GetDjRoleId(), int(pb.GetDefaultVolume()), pb.GetAnnounceChannelId())
	if err != nil {
		g.logger().Warn("stored settings invalid; using defaults", "err", err)
		return music.DefaultSettings()
	}
	return s
}

// settingsCommand shows or changes the guild's settings. Changes are
// applied one at a time, in order: each is parsed against the settings the
// previous one left, and stored before the reply says it happened.
func (g *Grain) settingsCommand(w *work) {
	if g.load != loaded {
		g.finish(w, commands.Error("The settings could not be read right now; nothing changed. Please try again in a moment."))
		return
	}
	if q := g.saves; q != nil {
		if len(q.queue) >= maxSettingsQueue {
			g.finish(w, commands.Busy())
			return
		}
		g.track(w)
		q.queue = append(q.queue, w)
		return
	}
	g.applySettings(w)
}

func (g *Grain) applySettings(w *work) {
	next, changed, err := commands.ParseSettings(w.in.GetOptions(), g.settings)
	if err != nil {
		g.finish(w, commands.Error(err.Error()))
		return
	}
	if !changed {
		g.finish(w, commands.SettingsView(g.settings))
		return
	}
	data, err := proto.Marshal(&clusterpb.GuildSettings{
		DjRoleId:          next.DJRoleID,
		DefaultVolume:     int32(next.DefaultVolume),
		AnnounceChannelId: next.AnnounceChannelID,
	})
	if err != nil {
		g.logger().Warn("encode settings", "err", err)
		g.finish(w, commands.Error("The settings could not be saved; nothing changed. Please try again."))
		return
	}
	if g.saves == nil {
		g.saves = &saveQueue{}
	}
	g.saves.saving = w
	g.track(w)
	st, guildID, id, timeout := g.deps.Store, g.guildID(), w.in.GetId(), g.deps.CallTimeout
	g.report(func() any {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return savedMsg{id: id, next: next, err: st.SaveSettings(c, guildID, data)}
	})
}

func (g *Grain) onSaved(msg savedMsg) {
	q := g.saves
	if q == nil || q.saving == nil || q.saving.in.GetId() != msg.id {
		return
	}
	w := q.saving
	q.saving = nil
	if msg.err != nil {
		g.logger().Warn("save settings", "err", msg.err)
		g.finish(w, commands.Error("The settings could not be saved; nothing changed. Please try again."))
	} else {
		g.settings = msg.next
		g.finish(w, commands.SettingsView(msg.next))
	}
	for q.saving == nil && len(q.queue) > 0 {
		next := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		g.applySettings(next)
	}
	if q.saving == nil {
		g.saves = nil
	}
}

var _ SettingsStore = store.Store(nil)
