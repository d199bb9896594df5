package guild

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// The guild grain runs in a real single-member cluster on a real bbolt
// store, under -race; the session and Discord are recording doubles of the
// grain's own ports (the real ones run in internal/node's end-to-end
// tests).

const testGuild = "81384788765712384"

type call struct {
	kind      string // respond, defer, edit, autocomplete
	id        string
	reply     *clusterpb.Reply
	ephemeral bool
	at        time.Time
}

type fakeReplier struct {
	mu    sync.Mutex
	calls []call
}

func (f *fakeReplier) add(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.at = time.Now()
	f.calls = append(f.calls, c)
	return nil
}

func (f *fakeReplier) Respond(_ context.Context, id, _ string, r *clusterpb.Reply) error {
	return f.add(call{kind: "respond", id: id, reply: r})
}
func (f *fakeReplier) Defer(_ context.Context, id, _ string, eph bool) error {
	return f.add(call{kind: "defer", id: id, ephemeral: eph})
}
func (f *fakeReplier) EditOriginal(_ context.Context, _, _ string, r *clusterpb.Reply) error {
	return f.add(call{kind: "edit", reply: r})
}
func (f *fakeReplier) DeleteOriginal(context.Context, string, string) error {
	return f.add(call{kind: "delete"})
}
func (f *fakeReplier) Followup(_ context.Context, _, _ string, r *clusterpb.Reply) error {
	return f.add(call{kind: "followup", reply: r})
}
func (f *fakeReplier) Autocomplete(_ context.Context, id, _ string, ch []*clusterpb.Choice) error {
	return f.add(call{kind: "autocomplete", id: id})
}

func (f *fakeReplier) forID(id string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.id == id || (c.kind == "edit" && id == "*") {
			out = append(out, c)
		}
	}
	return out
}

type fakeSessions struct {
	mu    sync.Mutex
	delay time.Duration
	reqs  []*clusterpb.SessionRequest
	// refuse answers with an (ephemeral) error instead.
	refuse bool
}

func (f *fakeSessions) Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	d, refuse := f.delay, f.refuse
	f.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if refuse {
		return &clusterpb.SessionReply{Reply: commands.Error("no results")}, nil
	}
	return &clusterpb.SessionReply{Reply: commands.Info("did " + req.GetCommand())}, nil
}

func (f *fakeSessions) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

type harness struct {
	t        *testing.T
	c        *pcluster.Cluster
	store    *store.Bolt
	replier  *fakeReplier
	sessions *fakeSessions
	next     int
}

func newHarness(t *testing.T, tweak func(*Deps)) *harness {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, replier: &fakeReplier{}, sessions: &fakeSessions{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := Deps{Store: st, Replier: h.replier, Sessions: h.sessions, Log: log, AnswerBudget: 200 * time.Millisecond, MaxInFlight: 3}
	if tweak != nil {
		tweak(&d)
	}
	ccfg := config.Default().Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := ecluster.Start(ctx, ccfg, ecluster.Options{Log: log, Kinds: []*pcluster.Kind{NewKind(d, time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	h.c = m.Cluster
	t.Cleanup(func() {
		m.Stop(false)
		st.Close()
	})
	return h
}

var (
	listener = &clusterpb.Invoker{UserId: "1001", VoiceChannelId: "111"}
	dj       = &clusterpb.Invoker{UserId: "1002", VoiceChannelId: "111", RoleIds: []string{"555"}}
	mod      = &clusterpb.Invoker{UserId: "1003", VoiceChannelId: "111", Permissions: music.PermissionManageGuild}
)

// send hands the grain an interaction and returns its ID.
func (h *harness) send(inv *clusterpb.Invoker, kind clusterpb.InteractionKind, name string, opts ...*clusterpb.Option) string {
	h.t.Helper()
	h.next++
	id := strings.Repeat("9", 3) + string(rune('0'+h.next%10)) + time.Now().Format("150405.000000000")
	in := &clusterpb.Interaction{
		Id: id, Token: "tok", ApplicationId: "42", GuildId: testGuild, ChannelId: "222",
		Invoker: inv, Kind: kind, Name: name, Options: opts, ReceivedUnixNano: time.Now().UnixNano(),
		BotVoiceChannelId: "111",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
		return clusterpb.GetGuildGrainClient(h.c, testGuild).Handle(in, o...)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) command(inv *clusterpb.Invoker, name string, opts ...*clusterpb.Option) string {
	return h.send(inv, clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, name, opts...)
}

// final waits for the interaction's answer: a response, or a deferral and
// an edit.
func (h *harness) final(id string) []call {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		calls := h.replier.forID(id)
		if len(calls) > 0 && calls[0].kind == "respond" {
			return calls
		}
		if len(calls) > 0 && calls[0].kind == "defer" {
			if edits := h.replier.forID("*"); len(edits) > 0 {
				return append(calls, edits[len(edits)-1])
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("no answer for %s", id)
	return nil
}

func TestFastCommandIsAnsweredDirectly(t *testing.T) {
	h := newHarness(t, nil)
	calls := h.final(h.command(listener, "pause"))
	if len(calls) != 1 || calls[0].kind != "respond" || calls[0].reply.GetContent() != "did pause" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestSlowSessionIsDeferredThenEdited(t *testing.T) {
	h := newHarness(t, nil)
	h.sessions.delay = time.Second
	id := h.command(listener, "play", &clusterpb.Option{Name: "query", Value: "slow"})
	calls := h.final(id)
	if len(calls) != 2 || calls[0].kind != "defer" || calls[1].kind != "edit" || calls[1].reply.GetContent() != "did play" {
		t.Fatalf("calls %+v", calls)
	}
	if calls[0].ephemeral {
		t.Fatal("/play deferred as ephemeral; its answer is for the channel")
	}
}

func TestDJRuleRefusesWithoutCallingTheSession(t *testing.T) {
	h := newHarness(t, nil)
	calls := h.final(h.command(listener, "skip"))
	if calls[0].kind != "respond" || !calls[0].reply.GetEphemeral() || !strings.Contains(strings.ToLower(calls[0].reply.GetContent()), "dj") {
		t.Fatalf("refusal %+v", calls[0].reply)
	}
	if h.sessions.count() != 0 {
		t.Fatal("refused command reached the session")
	}
	// A moderator may.
	if c := h.final(h.command(mod, "skip")); c[0].reply.GetContent() != "did skip" {
		t.Fatalf("moderator skip: %+v", c[0].reply)
	}
}

func TestSettingsAreStoredAndApplied(t *testing.T) {
	h := newHarness(t, nil)
	calls := h.final(h.command(mod, "settings", &clusterpb.Option{Name: "dj_role", Value: "555"}, &clusterpb.Option{Name: "default_volume", Value: "70"}))
	if !calls[0].reply.GetEphemeral() {
		t.Fatalf("settings reply %+v", calls[0].reply)
	}
	data, err := h.store.LoadSettings(context.Background(), testGuild)
	if err != nil {
		t.Fatal(err)
	}
	var pb clusterpb.GuildSettings
	if err := proto.Unmarshal(data, &pb); err != nil || pb.GetDjRoleId() != "555" || pb.GetDefaultVolume() != 70 {
		t.Fatalf("stored %+v, %v", &pb, err)
	}
	// The DJ role now lets its members skip.
	if c := h.final(h.command(dj, "skip")); c[0].reply.GetContent() != "did skip" {
		t.Fatalf("DJ skip after settings: %+v", c[0].reply)
	}
	// Bad values are refused and change nothing.
	h.final(h.command(mod, "settings", &clusterpb.Option{Name: "default_volume", Value: "500"}))
	data2, _ := h.store.LoadSettings(context.Background(), testGuild)
	if string(data2) != string(data) {
		t.Fatal("refused settings changed the store")
	}
}

func TestCooldown(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Cooldown = time.Hour })
	h.final(h.command(listener, "queue"))
	c := h.final(h.command(listener, "queue"))
	if !strings.Contains(c[0].reply.GetContent(), "Slow down") {
		t.Fatalf("second use within cooldown: %+v", c[0].reply)
	}
}

// One member per test: protoactor's remote replaces gRPC's global logger
// at start, which races with another live member (PITFALLS.md).
func TestBusyGuild(t *testing.T) {
	var c []call
	h2 := newHarness(t, nil)
	h2.sessions.delay = 2 * time.Second
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, h2.command(listener, "pause"))
	}
	c = h2.final(ids[3])
	if !strings.Contains(c[0].reply.GetContent(), "busy") {
		t.Fatalf("fourth concurrent command: %+v", c[0].reply)
	}
}

func TestButtonsAreCheckedAgainstTheGuild(t *testing.T) {
	h := newHarness(t, nil)
	other := commands.CustomID(commands.ButtonPauseResume, "81384788765712385")
	c := h.final(h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, other))
	if !c[0].reply.GetEphemeral() || h.sessions.count() != 0 {
		t.Fatalf("foreign button: %+v, session calls %d", c[0].reply, h.sessions.count())
	}
	own := commands.CustomID(commands.ButtonPauseResume, testGuild)
	c = h.final(h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, own))
	if c[0].reply.GetContent() != "did pause_resume" || !c[0].reply.GetEphemeral() {
		t.Fatalf("own button (answered to the presser only): %+v", c[0].reply)
	}
}

func TestRetriedDeliveryRunsOnce(t *testing.T) {
	h := newHarness(t, nil)
	in := &clusterpb.Interaction{Id: "4242", Token: "tok", GuildId: testGuild, ChannelId: "222", Invoker: listener,
		Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: "pause", BotVoiceChannelId: "111", ReceivedUnixNano: time.Now().UnixNano()}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
			return clusterpb.GetGuildGrainClient(h.c, testGuild).Handle(in, o...)
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	h.final("4242")
	time.Sleep(100 * time.Millisecond)
	if n := h.sessions.count(); n != 1 {
		t.Fatalf("one interaction delivered three times reached the session %d times", n)
	}
}

// flakyStore fails LoadSettings until healed, around the real store.
type flakyStore struct {
	*store.Bolt
	mu     sync.Mutex
	broken bool
}

func (f *flakyStore) LoadSettings(ctx context.Context, g string) ([]byte, error) {
	f.mu.Lock()
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return nil, errors.New("store unreachable")
	}
	return f.Bolt.LoadSettings(ctx, g)
}

// TestUnreadableSettingsAreNotOverwritten: while the settings cannot be
// read, /settings changes are refused (merging them onto the defaults
// would wipe the stored DJ role); once readable, the stored role applies.
func TestUnreadableSettingsAreNotOverwritten(t *testing.T) {
	var fs *flakyStore
	h := newHarness(t, func(d *Deps) {
		fs = &flakyStore{Bolt: d.Store.(*store.Bolt), broken: true}
		d.Store = fs
	})
	stored, _ := proto.Marshal(&clusterpb.GuildSettings{DjRoleId: "555", DefaultVolume: 100})
	if err := fs.Bolt.SaveSettings(context.Background(), testGuild, stored); err != nil {
		t.Fatal(err)
	}
	c := h.final(h.command(mod, "settings", &clusterpb.Option{Name: "default_volume", Value: "80"}))
	if !c[0].reply.GetEphemeral() || !strings.Contains(c[0].reply.GetContent(), "nothing changed") {
		t.Fatalf("settings change while unreadable: %+v", c[0].reply)
	}
	if got, _ := fs.Bolt.LoadSettings(context.Background(), testGuild); string(got) != string(stored) {
		t.Fatal("the stored settings were overwritten")
	}
	fs.mu.Lock()
	fs.broken = false
	fs.mu.Unlock()
	if c := h.final(h.command(dj, "skip")); c[0].reply.GetContent() != "did skip" {
		t.Fatalf("DJ after the store healed: %+v", c[0].reply)
	}
}

func TestWrongGuildIsAnError(t *testing.T) {
	h := newHarness(t, nil)
	in := &clusterpb.Interaction{Id: "1", GuildId: "999", Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: "pause", Invoker: listener}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
		return clusterpb.GetGuildGrainClient(h.c, testGuild).Handle(in, o...)
	})
	var ge *pcluster.GrainErrorResponse
	if !errors.As(err, &ge) {
		t.Fatalf("misrouted interaction: %v", err)
	}
}

// TestSlowPublicErrorStaysPrivate: a /play deferred in public that ends in
// an error replaces its "thinking" message with an ephemeral follow-up.
func TestSlowPublicErrorStaysPrivate(t *testing.T) {
	h := newHarness(t, nil)
	h.sessions.delay, h.sessions.refuse = time.Second, true
	h.command(listener, "play", &clusterpb.Option{Name: "query", Value: "nothing"})
	deadline := time.Now().Add(10 * time.Second)
	var kinds []string
	for time.Now().Before(deadline) {
		h.replier.mu.Lock()
		kinds = kinds[:0]
		for _, c := range h.replier.calls {
			kinds = append(kinds, c.kind)
			if c.kind == "followup" && !c.reply.GetEphemeral() {
				t.Fatalf("follow-up is public: %+v", c.reply)
			}
		}
		h.replier.mu.Unlock()
		if len(kinds) == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Join(kinds, ",") != "defer,delete,followup" {
		t.Fatalf("calls %v, want defer, delete, followup", kinds)
	}
}
