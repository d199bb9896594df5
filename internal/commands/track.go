package commands

import (
	"time"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// The track's wire form, in session snapshots and the views the session
// sends its guild grain.

// TrackToPB is t's wire form; nil for nil.
func TrackToPB(t *music.Track) *clusterpb.SessionSnapshot_Track {
	if t == nil {
		return nil
	}
	return &clusterpb.SessionSnapshot_Track{
		Encoded: t.Encoded, Identifier: t.Identifier, Title: t.Title, Author: t.Author,
		Uri: t.URI, ArtworkUrl: t.ArtworkURL, SourceName: t.SourceName,
		LengthMs: t.Length.Milliseconds(), IsStream: t.IsStream, RequesterId: t.RequesterID,
	}
}

// TrackFromPB is the track p describes.
func TrackFromPB(p *clusterpb.SessionSnapshot_Track) music.Track {
	return music.Track{
		Encoded: p.GetEncoded(), Identifier: p.GetIdentifier(), Title: p.GetTitle(), Author: p.GetAuthor(),
		URI: p.GetUri(), ArtworkURL: p.GetArtworkUrl(), SourceName: p.GetSourceName(),
		Length: time.Duration(p.GetLengthMs()) * time.Millisecond, IsStream: p.GetIsStream(), RequesterID: p.GetRequesterId(),
	}
}
