package session

import (
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/music"
)

func trackToPB(t *music.Track) *clusterpb.SessionSnapshot_Track {
	if t == nil {
		return nil
	}
	return &clusterpb.SessionSnapshot_Track{
		Encoded: t.Encoded, Identifier: t.Identifier, Title: t.Title, Author: t.Author,
		Uri: t.URI, ArtworkUrl: t.ArtworkURL, SourceName: t.SourceName,
		LengthMs: t.Length.Milliseconds(), IsStream: t.IsStream, RequesterId: t.RequesterID,
	}
}

func trackFromPB(p *clusterpb.SessionSnapshot_Track) music.Track {
	return music.Track{
		Encoded: p.GetEncoded(), Identifier: p.GetIdentifier(), Title: p.GetTitle(), Author: p.GetAuthor(),
		URI: p.GetUri(), ArtworkURL: p.GetArtworkUrl(), SourceName: p.GetSourceName(),
		Length: time.Duration(p.GetLengthMs()) * time.Millisecond, IsStream: p.GetIsStream(), RequesterID: p.GetRequesterId(),
	}
}

// snapshot captures the state to store.
func (s *state) snapshot(guildID string, epoch uint64) *clusterpb.SessionSnapshot {
	snap := &clusterpb.SessionSnapshot{
		GuildId:             guildID,
		Current:             trackToPB(s.current),
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
	for _, t := range s.queue.Tracks() {
		snap.Queue = append(snap.Queue, trackToPB(&t))
	}
	return snap
}

// restore rebuilds state from a snapshot. The queue keeps every stored
// track even if queue_max has shrunk since: nothing a user queued is lost.
func restore(snap *clusterpb.SessionSnapshot, queueMax int) (*state, error) {
	tracks := make([]music.Track, 0, len(snap.GetQueue()))
	for _, t := range snap.GetQueue() {
		tracks = append(tracks, trackFromPB(t))
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
		t := trackFromPB(snap.GetCurrent())
		s.current = &t
	}
	return s, nil
}
