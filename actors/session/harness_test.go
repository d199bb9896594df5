package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// These tests run the real grain in a real single-member cluster on a real
// bbolt store, under -race. Lavalink and the Discord gateway are replaced
// by recording doubles of the session's own ports (Audio, Gateway,
// Messages), so the grain's concurrency is checked without disgo's and
// disgolink's own races; the same paths run against the emulators in
// internal/node's end-to-end tests.

const testGuild = "81384788765712384"

type fakeAudio struct {
	t      testing.TB
	mu     sync.Mutex
	length time.Duration // of loaded tracks; 3 min when zero
	plays  []audio.PlayRequest
	calls  []string
	failAt map[string]error
	panics bool
	delay  time.Duration
	// holder is what Play answers ({node-a session-1} when zero).
	holder audio.Holder
	// takeOver answers TakeOver (nothing to take over when nil); the
	// holders asked for are in takeovers.
	takeOver  func(ctx context.Context, from audio.Holder) (audio.PlayerState, bool, error)
	takeovers []audio.Holder
}

func (a *fakeAudio) record(call string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
	if a.panics {
		panic("audio exploded")
	}
	return a.failAt[call]
}

func (a *fakeAudio) setFail(call string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failAt == nil {
		a.failAt = map[string]error{}
	}
	a.failAt[call] = err
}

func (a *fakeAudio) Load(_ context.Context, id string) (audio.Loaded, error) {
	if err := a.record("load"); err != nil {
		return audio.Loaded{}, err
	}
	if strings.Contains(id, "nothing") {
		return audio.Loaded{}, nil // Lavalink's loadType "empty"
	}
	a.mu.Lock()
	d, length := a.delay, a.length
	a.mu.Unlock()
	if length == 0 {
		length = 3 * time.Minute
	}
	time.Sleep(d)
	q := strings.TrimPrefix(id, "ytsearch:")
	var out audio.Loaded
	out.Search = strings.HasPrefix(id, "ytsearch:")
	n := 3
	if strings.Contains(id, "playlist") {
		out.Search, out.Playlist, n = false, "My list", 4
	}
	for i := 0; i < n; i++ {
		out.Tracks = append(out.Tracks, emuTrack(a.t, fmt.Sprintf("%s-%d", q, i), fmt.Sprintf("%s #%d", q, i), "Artist", length))
	}
	return out, nil
}

// emuTrack is a track as Lavalink loads it: its encoded form is lavaplayer's
// binary format, made by the emulator's encoder (never a placeholder).
func emuTrack(t testing.TB, id, title, author string, length time.Duration) music.Track {
	uri := "https://www.youtube.com/watch?v=" + id
	enc, err := lavalinkemu.EncodeTrack(lavalinkemu.TrackInfo{
		Identifier: id, IsSeekable: true, Author: author, Length: length.Milliseconds(), Title: title, URI: &uri, SourceName: "youtube",
	})
	if err != nil {
		t.Fatalf("encode %s: %v", id, err)
	}
	return music.Track{Encoded: enc, Identifier: id, Title: title, Author: author, URI: uri, SourceName: "youtube", Length: length}
}

func (a *fakeAudio) Play(_ context.Context, _ string, p audio.PlayRequest) (audio.Holder, error) {
	if err := a.record("play"); err != nil {
		return audio.Holder{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.plays = append(a.plays, p)
	if a.holder == (audio.Holder{}) {
		return audio.Holder{Node: "node-a", Session: "session-1"}, nil
	}
	return a.holder, nil
}

func (a *fakeAudio) TakeOver(ctx context.Context, _ string, from audio.Holder) (audio.PlayerState, bool, error) {
	if err := a.record("takeover"); err != nil {
		return audio.PlayerState{}, false, err
	}
	a.mu.Lock()
	a.takeovers = append(a.takeovers, from)
	f := a.takeOver
	a.mu.Unlock()
	if f == nil {
		return audio.PlayerState{}, false, nil
	}
	st, ok, err := f(ctx, from)
	a.record("takeover done")
	return st, ok, err
}

func (a *fakeAudio) Pause(context.Context, string, bool) error         { return a.record("pause") }
func (a *fakeAudio) Seek(context.Context, string, time.Duration) error { return a.record("seek") }
func (a *fakeAudio) Volume(context.Context, string, int) error         { return a.record("volume") }
func (a *fakeAudio) Stop(context.Context, string) error                { return a.record("stop") }
func (a *fakeAudio) Destroy(context.Context, string) error             { return a.record("destroy") }

func (a *fakeAudio) lastPlay() (audio.PlayRequest, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.plays) == 0 {
		return audio.PlayRequest{}, 0
	}
	return a.plays[len(a.plays)-1], len(a.plays)
}

// fakeGateway answers op 4 as Discord does: the bot's voice state, then
// the voice server, delivered to the session grain in that order.
type fakeGateway struct {
	mu      sync.Mutex
	c       *pcluster.Cluster
	updates []string
	// fail refuses op 4; silent accepts it but Discord never answers.
	fail, silent bool
	// answered counts the op 4s whose voice events the session took.
	answered int
}

func (g *fakeGateway) UpdateVoice(_ context.Context, guildID, channelID string) error {
	g.mu.Lock()
	g.updates = append(g.updates, channelID)
	c, fail, silent := g.c, g.fail, g.silent
	g.mu.Unlock()
	if fail {
		return errors.New("shard not ready")
	}
	if silent {
		return nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client := clusterpb.GetSessionGrainClient(c, guildID)
		_, _ = ecluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
			return client.Voice(&clusterpb.VoiceEvent{GuildId: guildID, Event: &clusterpb.VoiceEvent_State{State: &clusterpb.VoiceState{ChannelId: channelID, SessionId: "voice-session"}}}, opts...)
		})
		if channelID != "" {
			_, _ = ecluster.Call(ctx, 3, func(opts ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
				return client.Voice(&clusterpb.VoiceEvent{GuildId: guildID, Event: &clusterpb.VoiceEvent_Server{Server: &clusterpb.VoiceServer{Token: "voice-token", Endpoint: "voice.example:443"}}}, opts...)
			})
		}
		g.mu.Lock()
		g.answered++
		g.mu.Unlock()
	}()
	return nil
}

type fakeMessages struct {
	mu      sync.Mutex
	creates int
	edits   int
	last    *clusterpb.Reply
}

func (m *fakeMessages) CreateMessage(_ context.Context, _ string, r *clusterpb.Reply) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	m.last = r
	return "900000000000000001", nil
}

func (m *fakeMessages) EditMessage(_ context.Context, _, _ string, r *clusterpb.Reply) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.edits++
	m.last = r
	return nil
}

func (m *fakeMessages) counts() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.creates, m.edits
}

type harness struct {
	t        *testing.T
	member   *ecluster.Member
	store    *store.Bolt
	audio    *fakeAudio
	gateway  *fakeGateway
	messages *fakeMessages
	logs     *strings.Builder
	logMu    *sync.Mutex
	seq      atomic.Int64
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newHarness(t *testing.T, tweak func(*Deps)) *harness {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, audio: &fakeAudio{t: t}, gateway: &fakeGateway{}, messages: &fakeMessages{}, logs: &strings.Builder{}, logMu: &sync.Mutex{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(lockedWriter{h.logMu, h.logs}), nil))
	deps := Deps{
		Store: st, Audio: h.audio, Gateway: h.gateway, Messages: h.messages, Log: log,
		Rand: rand.New(rand.NewPCG(1, 2)).IntN, QueueMax: 20, CallTimeout: 2 * time.Second,
		NowPlayingDelay: 50 * time.Millisecond, AutoplayCooldown: time.Millisecond, IdleTimeout: time.Minute,
	}
	if tweak != nil {
		tweak(&deps)
	}
	ccfg := config.Default().Cluster
	ccfg.RequestTimeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := ecluster.Start(ctx, ccfg, ecluster.Options{Log: log, Kinds: []*pcluster.Kind{NewKind(deps)}})
	if err != nil {
		t.Fatal(err)
	}
	h.member = m
	h.gateway.mu.Lock()
	h.gateway.c = m.Cluster
	h.gateway.mu.Unlock()
	t.Cleanup(func() {
		m.Stop()
		st.Close()
	})
	return h
}

func (h *harness) client() *clusterpb.SessionGrainClient {
	return clusterpb.GetSessionGrainClient(h.member.Cluster, testGuild)
}

func opt(name, value string) *clusterpb.Option { return &clusterpb.Option{Name: name, Value: value} }

// exec runs a command as a member in voice channel "111".
func (h *harness) exec(command string, opts ...*clusterpb.Option) *clusterpb.Reply {
	h.t.Helper()
	return h.execAs(nil, command, opts...).GetReply()
}

// execAs runs a command as exec does, after edit (if set) changed the
// request, and returns the whole reply.
func (h *harness) execAs(edit func(*clusterpb.SessionRequest), command string, opts ...*clusterpb.Option) *clusterpb.SessionReply {
	h.t.Helper()
	// As in production: bounded retries, made safe by the request ID (a
	// stopping activation drops what is left in its mailbox).
	id := h.seq.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := ecluster.Call(ctx, 3, func(o ...pcluster.GrainCallOption) (*clusterpb.SessionReply, error) {
		req := &clusterpb.SessionRequest{
			GuildId: testGuild, Command: command, Options: opts, TextChannelId: "222", RequestId: fmt.Sprint("req-", id),
			Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"},
		}
		if edit != nil {
			edit(req)
		}
		return h.client().Execute(req, o...)
	})
	if err != nil {
		h.t.Fatalf("%s: %v", command, err)
	}
	return res
}

// event delivers a player event the way the member's Lavalink client
// forwards one: the play ID is what Lavalink echoes from the track's
// userData, the identifier its track info.
func (h *harness) event(ev *clusterpb.PlayerEvent) {
	h.t.Helper()
	ev.GuildId = testGuild
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return h.client().Player(ev, o...)
	})
	if err != nil {
		h.t.Fatalf("player event %v: %v", ev.GetKind(), err)
	}
}

// trackEvent is an event about the play p.
func trackEvent(kind clusterpb.PlayerEventKind, reason string, p audio.PlayRequest) *clusterpb.PlayerEvent {
	return &clusterpb.PlayerEvent{Kind: kind, EndReason: reason, PlayId: p.PlayID, TrackIdentifier: p.Track.Identifier, Node: "node-a"}
}

// finished is Lavalink's TrackEnd "finished" for the latest play.
func (h *harness) finished() {
	h.t.Helper()
	p, n := h.audio.lastPlay()
	if n == 0 {
		h.t.Fatal("no play to finish")
	}
	h.event(trackEvent(clusterpb.PlayerEventKind_PLAYER_EVENT_KIND_TRACK_END, "finished", p))
}

// playing is the title of the track the session plays, as /nowplaying
// shows it ("" when nothing plays). The call goes through the grain's
// mailbox after everything sent to it before, so it shows their effect on
// the session's state; the store follows (see stored).
func (h *harness) playing() string {
	h.t.Helper()
	r := h.exec("nowplaying")
	if len(r.GetEmbeds()) == 0 {
		return ""
	}
	return r.GetEmbeds()[0].GetTitle()
}

// stored waits until the stored snapshot satisfies cond: the session
// writes it off the mailbox, after the change.
func (h *harness) stored(what string, cond func(*clusterpb.SessionSnapshot) bool) *clusterpb.SessionSnapshot {
	h.t.Helper()
	var snap *clusterpb.SessionSnapshot
	h.waitFor("stored: "+what, func() bool {
		snap = h.snapshot()
		return cond(snap)
	})
	return snap
}

func (h *harness) snapshot() *clusterpb.SessionSnapshot {
	h.t.Helper()
	data, err := h.store.LoadSession(context.Background(), testGuild)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	snap := &clusterpb.SessionSnapshot{}
	if err := proto.Unmarshal(data, snap); err != nil {
		h.t.Fatal(err)
	}
	return snap
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.logMu.Lock()
			logs := h.logs.String()
			h.logMu.Unlock()
			h.t.Fatalf("timed out: %s\nlogs:\n%s", what, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
