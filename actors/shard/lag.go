package shard

import "time"

// lagMeter tells how long interactions waited between Discord creating them
// (the time in their snowflake ID) and the shard grain handling them: the
// time they spent in Discord's send buffer, the socket, disgo's reader and
// the grain's mailbox, which no queue of ours can measure. An overloaded
// member falls behind there first, before any of its own limits sees the
// backlog.
//
// The host's clock and Discord's may differ by a steady offset; without a
// correction, a clock a few seconds fast would make every interaction look
// late and the shard would refuse them all. The smallest delay seen over the
// last minute or two counts as that offset: a member behind on its gateway
// answers busy until it has nearly caught up, so a lull with a true reading
// comes well within the window. After a step of the host's clock the old
// readings age out within two minutes. A reading far below the offset (an ID
// from the future) is taken for a bad ID, not a new offset, so that one
// cannot make every later interaction look late.
type lagMeter struct {
	// mins[i] is the smallest raw delay of the minute starts[i] (Unix
	// minutes); a slot from an older minute is ignored.
	mins   [lagMinutes]time.Duration
	starts [lagMinutes]int64
}

const (
	// lagMinutes is how many minutes the offset is taken over.
	lagMinutes = 2
	// lagOutlier is how far below the offset a reading is a bad ID.
	lagOutlier = 10 * time.Second
)

// observe records an interaction created at created and handled at now, and
// returns its lag: the raw delay less the clock offset, never negative.
func (m *lagMeter) observe(created, now time.Time) time.Duration {
	raw := now.Sub(created)
	minute := now.Unix() / 60
	offset, known := m.offset(minute)
	if known && raw < offset-lagOutlier {
		return 0
	}
	slot := int(minute % lagMinutes)
	if m.starts[slot] != minute || raw < m.mins[slot] {
		m.starts[slot], m.mins[slot] = minute, raw
	}
	if !known || raw < offset {
		offset = raw
	}
	return raw - offset
}

// offset is the smallest delay of the slots of the last lagMinutes minutes.
func (m *lagMeter) offset(minute int64) (time.Duration, bool) {
	var offset time.Duration
	known := false
	for i, start := range m.starts {
		if minute-start < lagMinutes && (!known || m.mins[i] < offset) {
			offset, known = m.mins[i], true
		}
	}
	return offset, known
}
