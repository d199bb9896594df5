package lavalinkemu

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"path"
	"strings"
)

// TrackInfo is Lavalink's track info object.
type TrackInfo struct {
	Identifier string  `json:"identifier"`
	IsSeekable bool    `json:"isSeekable"`
	Author     string  `json:"author"`
	Length     int64   `json:"length"`
	IsStream   bool    `json:"isStream"`
	Position   int64   `json:"position"`
	Title      string  `json:"title"`
	URI        *string `json:"uri"`
	ArtworkURL *string `json:"artworkUrl"`
	ISRC       *string `json:"isrc"`
	SourceName string  `json:"sourceName"`
}

// Track is Lavalink's track object.
type Track struct {
	Encoded    string          `json:"encoded"`
	Info       TrackInfo       `json:"info"`
	PluginInfo json.RawMessage `json:"pluginInfo"`
	UserData   json.RawMessage `json:"userData"`
}

// LoadType values of /v4/loadtracks.
const (
	LoadTrack    = "track"
	LoadPlaylist = "playlist"
	LoadSearch   = "search"
	LoadEmpty    = "empty"
	LoadError    = "error"
)

// LoadResult is the body of /v4/loadtracks.
type LoadResult struct {
	LoadType string `json:"loadType"`
	Data     any    `json:"data"`
}

type playlistData struct {
	Info       playlistInfo    `json:"info"`
	PluginInfo json.RawMessage `json:"pluginInfo"`
	Tracks     []Track         `json:"tracks"`
}

type playlistInfo struct {
	Name          string `json:"name"`
	SelectedTrack int    `json:"selectedTrack"`
}

// Exception is Lavalink's exception object (load errors, TrackExceptionEvent).
type Exception struct {
	Message         string `json:"message"`
	Severity        string `json:"severity"`
	Cause           string `json:"cause"`
	CauseStackTrace string `json:"causeStackTrace"`
}

var emptyObject = json.RawMessage(`{}`)

// catalogue resolves identifiers the way a Lavalink with the YouTube,
// SoundCloud and HTTP sources (and the local source disabled) would, but as a
// pure function of the identifier so that tests are reproducible.
type catalogue struct {
	broken        string
	searchResults int
}

// newCatalogue takes a Config with its defaults applied.
func newCatalogue(cfg Config) catalogue {
	return catalogue{broken: cfg.BrokenIdentifier, searchResults: cfg.SearchResults}
}

// noMatches is Lavalink's empty result: NoMatches has a null data field, not
// the {} the API documentation shows.
var noMatches = LoadResult{LoadType: LoadEmpty, Data: nil}

func (c catalogue) load(identifier string) LoadResult {
	if c.broken != "" && identifier == c.broken {
		return LoadResult{LoadType: LoadError, Data: Exception{
			Message:         "This video is unavailable",
			Severity:        "common",
			Cause:           "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: This video is unavailable",
			CauseStackTrace: "com.sedmelluq.discord.lavaplayer.tools.FriendlyException: This video is unavailable\n\tat lavalinkemu.catalogue.load",
		}}
	}
	for prefix, source := range map[string]string{"ytsearch:": "youtube", "ytmsearch:": "youtube", "scsearch:": "soundcloud"} {
		if q, ok := strings.CutPrefix(identifier, prefix); ok {
			return c.search(source, strings.TrimSpace(q))
		}
	}
	if u, err := url.Parse(identifier); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return c.loadURL(u)
	}
	// Everything else (plain words without a search prefix, local paths,
	// file: URLs, unknown source prefixes) matches no enabled source manager,
	// which Lavalink reports as "empty" rather than as an error.
	return noMatches
}

var searchVariants = []string{"", " (Official Video)", " (Live)", " (Lyrics)", " (Remix)", " (Acoustic)", " (Extended Mix)", " (Cover)", " (Instrumental)", " (Radio Edit)"}

var artists = []string{"The Loopbacks", "Null Pointer Sisters", "Race Detector", "Goroutine Quartet", "Mutex Ensemble", "Deadline Exceeded", "Channel Buffer", "Zero Value"}

func (c catalogue) search(source, query string) LoadResult {
	if query == "" {
		return noMatches
	}
	n := c.searchResults
	if n <= 0 {
		n = 5
	}
	tracks := make([]Track, 0, n)
	for i := 0; i < n; i++ {
		seed := fmt.Sprintf("%s|%s|%d", source, query, i)
		title := query + searchVariants[i%len(searchVariants)]
		author := artists[hash(seed+"|author")%uint64(len(artists))]
		length := lengthFor(seed)
		switch source {
		case "youtube":
			tracks = append(tracks, youtubeTrack(videoID(seed), title, author, length))
		default:
			tracks = append(tracks, soundcloudTrack(slug(author), slug(title)+fmt.Sprintf("-%d", i), title, author, length))
		}
	}
	return LoadResult{LoadType: LoadSearch, Data: tracks}
}

func (c catalogue) loadURL(u *url.URL) LoadResult {
	host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
	q := u.Query()
	switch host {
	case "youtube.com", "m.youtube.com", "music.youtube.com":
		switch {
		case q.Get("list") != "":
			return youtubePlaylist(q.Get("list"), q.Get("v"))
		case u.Path == "/watch" && validVideoID(q.Get("v")):
			return single(youtubeFromID(q.Get("v")))
		case strings.HasPrefix(u.Path, "/shorts/") && validVideoID(strings.TrimPrefix(u.Path, "/shorts/")):
			return single(youtubeFromID(strings.TrimPrefix(u.Path, "/shorts/")))
		}
		return noMatches
	case "youtu.be":
		id := strings.Trim(u.Path, "/")
		if q.Get("list") != "" {
			return youtubePlaylist(q.Get("list"), id)
		}
		if validVideoID(id) {
			return single(youtubeFromID(id))
		}
		return noMatches
	case "soundcloud.com":
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		switch {
		case len(parts) == 3 && parts[1] == "sets":
			return soundcloudSet(parts[0], parts[2])
		case len(parts) == 2 && parts[0] != "" && parts[1] != "":
			seed := "soundcloud|" + parts[0] + "/" + parts[1]
			return single(soundcloudTrack(parts[0], parts[1], unslug(parts[1]), unslug(parts[0]), lengthFor(seed)))
		}
		return noMatches
	}
	if strings.Contains(strings.ToLower(u.Path), "playlist") || q.Has("list") {
		return httpPlaylist(u)
	}
	return single(httpTrack(u))
}

func single(t Track) LoadResult { return LoadResult{LoadType: LoadTrack, Data: t} }

func youtubeFromID(id string) Track {
	seed := "youtube|id|" + id
	return youtubeTrack(id, "Video "+id, artists[hash(seed)%uint64(len(artists))], lengthFor(seed))
}

func youtubePlaylist(list, selected string) LoadResult {
	n := playlistSize(list)
	tracks := make([]Track, 0, n)
	sel := -1
	if validVideoID(selected) {
		// YouTube puts the watched video into the list; index 0 keeps it simple.
		tracks = append(tracks, youtubeFromID(selected))
		sel = 0
	}
	for i := len(tracks); i < n; i++ {
		seed := fmt.Sprintf("youtube|list|%s|%d", list, i)
		tracks = append(tracks, youtubeTrack(videoID(seed), fmt.Sprintf("%s #%d", list, i+1), artists[hash(seed)%uint64(len(artists))], lengthFor(seed)))
	}
	return LoadResult{LoadType: LoadPlaylist, Data: playlistData{
		Info:       playlistInfo{Name: "Playlist " + list, SelectedTrack: sel},
		PluginInfo: emptyObject,
		Tracks:     tracks,
	}}
}

func soundcloudSet(user, set string) LoadResult {
	key := user + "/sets/" + set
	n := playlistSize(key)
	tracks := make([]Track, 0, n)
	for i := 0; i < n; i++ {
		seed := fmt.Sprintf("soundcloud|set|%s|%d", key, i)
		name := fmt.Sprintf("%s part %d", unslug(set), i+1)
		tracks = append(tracks, soundcloudTrack(user, slug(name), name, unslug(user), lengthFor(seed)))
	}
	return LoadResult{LoadType: LoadPlaylist, Data: playlistData{
		Info:       playlistInfo{Name: unslug(set), SelectedTrack: -1},
		PluginInfo: emptyObject,
		Tracks:     tracks,
	}}
}

func httpPlaylist(u *url.URL) LoadResult {
	base := *u
	base.RawQuery, base.Fragment = "", ""
	n := playlistSize(u.String())
	tracks := make([]Track, 0, n)
	for i := 0; i < n; i++ {
		item := base
		item.Path = strings.TrimSuffix(base.Path, "/") + fmt.Sprintf("/%02d.mp3", i+1)
		tracks = append(tracks, httpTrack(&item))
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." {
		name = u.Host
	}
	return LoadResult{LoadType: LoadPlaylist, Data: playlistData{
		Info:       playlistInfo{Name: name, SelectedTrack: -1},
		PluginInfo: emptyObject,
		Tracks:     tracks,
	}}
}

func youtubeTrack(id, title, author string, length int64) Track {
	uri := "https://www.youtube.com/watch?v=" + id
	return signedTrack(TrackInfo{Identifier: id, Author: author, Length: length, Title: title, URI: &uri, SourceName: "youtube"})
}

func soundcloudTrack(user, trackSlug, title, author string, length int64) Track {
	uri := "https://soundcloud.com/" + user + "/" + trackSlug
	return signedTrack(TrackInfo{Identifier: uri, Author: author, Length: length, Title: title, URI: &uri, SourceName: "soundcloud"})
}

// httpTrack mirrors lavaplayer's http source: the identifier is the URL.
// Paths that look like live radio are streams, which never finish.
func httpTrack(u *url.URL) Track {
	s := u.String()
	lower := strings.ToLower(u.Path)
	info := TrackInfo{Identifier: s, Author: "Unknown artist", URI: &s, SourceName: "http"}
	name := strings.TrimSuffix(path.Base(u.Path), path.Ext(u.Path))
	if name == "" || name == "/" || name == "." {
		name = u.Host
	}
	info.Title = unslug(name)
	if strings.Contains(lower, "/stream") || strings.Contains(lower, "/live") || strings.HasSuffix(lower, ".m3u8") {
		info.IsStream, info.Length = true, StreamLength
	} else {
		info.Length = lengthFor("http|" + s)
	}
	return signedTrack(info)
}

func signedTrack(info TrackInfo) Track {
	info.IsSeekable = !info.IsStream
	art := signedArtworkURL(info)
	info.ArtworkURL = &art
	enc, err := EncodeTrack(info)
	if err != nil {
		// Only strings over 64 KiB fail; identifiers that long come from a
		// query, and Lavalink answers such a load with "empty" anyway.
		return Track{}
	}
	return Track{Encoded: enc, Info: info, PluginInfo: emptyObject, UserData: emptyObject}
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// lengthFor gives whole seconds between 1 and 6 minutes.
func lengthFor(seed string) int64 { return int64(60+hash(seed+"|len")%301) * 1000 }

func playlistSize(seed string) int { return 3 + int(hash(seed+"|size")%6) }

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func videoID(seed string) string {
	h := hash(seed + "|id")
	var b [11]byte
	for i := range b {
		b[i] = idAlphabet[h%64]
		h = h/64 ^ hash(fmt.Sprintf("%s|%d", seed, i))
	}
	return string(b[:])
}

func validVideoID(id string) bool {
	if len(id) != 11 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune(idAlphabet, r) {
			return false
		}
	}
	return true
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func unslug(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		s = u
	}
	return strings.NewReplacer("-", " ", "_", " ").Replace(s)
}
