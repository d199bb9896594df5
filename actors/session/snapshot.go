package session

import (
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// snapshot captures the state to store.
func (s *state) snapshot(guildID string, epoch uint64) *clusterpb.SessionSnapshot {
	snap := &clusterpb.SessionSnapshot{
		GuildId:             guildID,
		Current:             commands.TrackToPB(s.current),
		PositionMs:          s.position.Milliseconds(),
		PositionAtUnixMs:    s.positionAt.UnixMilli(),
		Paused:              s.paused,
		Volume:              int32(s.volume),
		Loop:                s.modes.Loop.String(),
		Autoplay:            s.modes.Autoplay,
		VoiceChannelId:      s.voice.ChannelID,
		VoiceSessionId:      s.voice.SessionID,
		VoiceToken:          s.voice.Token,
		VoiceEndpoint:       s.voice.Endpoint,
		TextChannelId:       s.textChannelID,
		NowPlayingMessageId: s.nowPlayingID,
		LavalinkNode:        s.holder.Node,
		LavalinkSessionId:   s.holder.Session,
		MemberId:            s.member,
		Epoch:               epoch,
		Recent:              append([]string(nil), s.recent...),
	}
	for t := range s.queue.All() {
		snap.Queue = append(snap.Queue, commands.TrackToPB(&t))
	}
	return snap
}

// restore rebuilds state from a snapshot. The queue keeps every stored
// track even if queue_max has shrunk since: nothing a user queued is lost.
func restore(snap *clusterpb.SessionSnapshot, queueMax int) (*state, error) {
	tracks := make([]music.Track, 0, len(snap.GetQueue()))
	for _, t := range snap.GetQueue() {
		tracks = append(tracks, commands.TrackFromPB(t))
	}
	q, err := music.RestoreQueue(max(queueMax, len(tracks)), tracks)
	if err != nil {
		return nil, err
	}
	loop, err := music.ParseLoopMode(snap.GetLoop())
	if err != nil {
		loop = music.LoopOff
	}
	s := &state{
		queue:         q,
		position:      time.Duration(snap.GetPositionMs()) * time.Millisecond,
		positionAt:    time.UnixMilli(snap.GetPositionAtUnixMs()),
		paused:        snap.GetPaused(),
		volume:        int(snap.GetVolume()),
		modes:         music.PlaybackModes{Loop: loop, Autoplay: snap.GetAutoplay() && loop == music.LoopOff},
		textChannelID: snap.GetTextChannelId(),
		nowPlayingID:  snap.GetNowPlayingMessageId(),
		holder:        audio.Holder{Node: snap.GetLavalinkNode(), Session: snap.GetLavalinkSessionId()},
		member:        snap.GetMemberId(),
		recent:        snap.GetRecent(),
		voice: audio.Voice{
			ChannelID: snap.GetVoiceChannelId(), SessionID: snap.GetVoiceSessionId(),
			Token: snap.GetVoiceToken(), Endpoint: snap.GetVoiceEndpoint(),
		},
	}
	if snap.GetCurrent() != nil {
		t := commands.TrackFromPB(snap.GetCurrent())
		s.current = &t
	}
	return s, nil
}
