package guild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/actors/supervisor"
	"github.com/prometheus/client_golang/prometheus"

	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/lavalinkemu"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// The guild grain runs in a real single-member cluster on a real bbolt
// store, under -race; the session and Discord are recording doubles of the
// grain's own ports (the real ones run in internal/node's end-to-end
// tests). Tests wait for what the doubles record, never for time to pass.

const (
	testGuild  = "81384788765712384"
	otherGuild = "81384788765712385"
)

type call struct {
	kind      string // respond, defer, edit, delete, followup, autocomplete
	token     string
	reply     *clusterpb.Reply
	ephemeral bool
	at        time.Time
	deadline  time.Time // the call's context's
	choices   []*clusterpb.Choice
}

type fakeReplier struct {
	mu    sync.Mutex
	calls []call
	// changed is closed and replaced at every call, for wait.
	changed chan struct{}
	// deferGate, when set, holds every Defer until it can take a value;
	// "defer-done" is recorded when it returns.
	deferGate chan struct{}
	// acknowledged lists the tokens whose Defer fails as Discord's does
	// for an interaction answered already.
	acknowledged map[string]bool
}

func (f *fakeReplier) add(c call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.at = time.Now()
	f.calls = append(f.calls, c)
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func (f *fakeReplier) Respond(ctx context.Context, _, tok string, r *clusterpb.Reply) error {
	f.add(call{kind: "respond", token: tok, reply: r, deadline: deadlineOf(ctx)})
	return nil
}
func (f *fakeReplier) Defer(ctx context.Context, _, tok string, eph bool) error {
	f.add(call{kind: "defer", token: tok, ephemeral: eph, deadline: deadlineOf(ctx)})
	f.mu.Lock()
	gate, acked := f.deferGate, f.acknowledged[tok]
	f.mu.Unlock()
	if acked {
		return fmt.Errorf("defer: %w", commands.ErrAlreadyAcknowledged)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.add(call{kind: "defer-done", token: tok})
	}
	return nil
}
func (f *fakeReplier) EditOriginal(ctx context.Context, _, tok string, r *clusterpb.Reply) error {
	f.add(call{kind: "edit", token: tok, reply: r, deadline: deadlineOf(ctx)})
	return nil
}
func (f *fakeReplier) DeleteOriginal(_ context.Context, _, tok string) error {
	f.add(call{kind: "delete", token: tok})
	return nil
}
func (f *fakeReplier) Followup(_ context.Context, _, tok string, r *clusterpb.Reply) error {
	f.add(call{kind: "followup", token: tok, reply: r})
	return nil
}
func (f *fakeReplier) Autocomplete(ctx context.Context, _, tok string, choices []*clusterpb.Choice) error {
	f.add(call{kind: "autocomplete", token: tok, deadline: deadlineOf(ctx), choices: choices})
	return nil
}

// wait returns the calls once done holds for them, and fails the test if
// it does not within 10 s.
func (f *fakeReplier) wait(t *testing.T, what string, done func([]call) bool) []call {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		calls := slices.Clone(f.calls)
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()
		if done(calls) {
			return calls
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no %s; calls: %s", what, kinds(calls))
		}
	}
}

func tokenOf(id string) string { return "tok-" + id }

// of returns the calls for interaction id.
func of(calls []call, id string) []call {
	var out []call
	for _, c := range calls {
		if c.token == tokenOf(id) {
			out = append(out, c)
		}
	}
	return out
}

func kinds(calls []call) string {
	var ks []string
	for _, c := range calls {
		ks = append(ks, c.kind)
	}
	return strings.Join(ks, ",")
}

func hasKind(calls []call, kind string) bool {
	return slices.ContainsFunc(calls, func(c call) bool { return c.kind == kind })
}

// finalReply is the reply the user ends up with, nil until there is one.
func finalReply(calls []call) *clusterpb.Reply {
	for _, c := range calls {
		switch c.kind {
		case "respond", "edit", "followup":
			return c.reply
		}
	}
	return nil
}

type fakeSessions struct {
	mu   sync.Mutex
	reqs []*clusterpb.SessionRequest
	// refuse answers with an (ephemeral) error instead.
	refuse bool
	// active says whether the session has something after a command.
	active func(command string) bool
	// gate, when set, holds every Execute until it can take a value.
	gate chan struct{}
	// started, when set, gets each command as it reaches the session (its
	// buffer must hold what the test does not read).
	started chan string
	// fail, when set, is every Execute's error.
	fail error
	// view, when set, gives each reply's view.
	view func(*clusterpb.SessionRequest) *clusterpb.SessionView
}

func (f *fakeSessions) Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	refuse, active, gate, started, fail, view := f.refuse, f.active, f.gate, f.started, f.fail, f.view
	f.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if started != nil {
		started <- req.GetCommand()
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	reply := &clusterpb.SessionReply{Reply: commands.Info("did " + req.GetCommand()), Active: true}
	if refuse {
		reply.Reply = commands.Error("no results")
	}
	if active != nil {
		reply.Active = active(req.GetCommand())
	}
	if view != nil {
		reply.View = view(req)
	}
	return reply, nil
}

func (f *fakeSessions) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeSessions) countFor(guild string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if r.GetGuildId() == guild {
			n++
		}
	}
	return n
}

// testStore is the real bbolt store with hooks that make a guild's calls
// slow or failing. A hook returning an error fails the call.
type testStore struct {
	*store.Bolt
	mu           sync.Mutex
	loadHook     func(ctx context.Context, guildID string) error
	saveHook     func(ctx context.Context, guildID string) error
	loads, saves int
}

func (s *testStore) LoadGuild(ctx context.Context, guildID string) (store.Guild, error) {
	s.mu.Lock()
	s.loads++
	hook := s.loadHook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, guildID); err != nil {
			return store.Guild{}, err
		}
	}
	return s.Bolt.LoadGuild(ctx, guildID)
}

func (s *testStore) SaveSettings(ctx context.Context, guildID string, data []byte) error {
	s.mu.Lock()
	s.saves++
	hook := s.saveHook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, guildID); err != nil {
			return err
		}
	}
	return s.Bolt.SaveSettings(ctx, guildID, data)
}

func (s *testStore) counts() (loads, saves int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads, s.saves
}

func (s *testStore) setHooks(load, save func(context.Context, string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadHook, s.saveHook = load, save
}

// gate returns a hook that holds each call for guild until release gets a
// value (other guilds pass), and tells entered when a call arrives.
func gate(guild string, release <-chan struct{}, entered chan<- struct{}) func(context.Context, string) error {
	return func(ctx context.Context, g string) error {
		if g != guild {
			return nil
		}
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func failing(err error) func(context.Context, string) error {
	return func(context.Context, string) error { return err }
}

// clock is a settable Deps.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t        *testing.T
	c        *pcluster.Cluster
	store    *testStore
	replier  *fakeReplier
	sessions *fakeSessions
	clock    *clock
	mu       sync.Mutex
	next     int
}

// newHarness starts a member whose guild grains use the harness's doubles;
// before, if set, runs before the member starts (to set hooks that the
// first activation must see).
func newHarness(t *testing.T, tweak func(*Deps), before func(*harness)) *harness {
	t.Helper()
	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: &testStore{Bolt: bolt}, replier: &fakeReplier{}, sessions: &fakeSessions{}, clock: &clock{now: time.Now()}}
	if before != nil {
		before(h)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := Deps{Store: h.store, Replier: h.replier, Sessions: h.sessions, Log: log, Now: h.clock.Now,
		AnswerBudget: 200 * time.Millisecond, MaxInFlight: 3, CallTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&d)
	}
	ccfg := config.Default().Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := ecluster.Start(ctx, ccfg, ecluster.Options{Log: log, Kinds: []*pcluster.Kind{NewKind(d)}, IdleTimeouts: map[string]time.Duration{Kind: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	h.c = m.Cluster
	t.Cleanup(func() {
		m.Stop()
		bolt.Close()
	})
	return h
}

var (
	listener = &clusterpb.Invoker{UserId: "1001", VoiceChannelId: "111"}
	dj       = &clusterpb.Invoker{UserId: "1002", VoiceChannelId: "111", RoleIds: []string{"555"}}
	mod      = &clusterpb.Invoker{UserId: "1003", VoiceChannelId: "111", Permissions: music.PermissionManageGuild}
)

// sendTo hands guild's grain an interaction and returns its ID.
func (h *harness) sendTo(guild string, inv *clusterpb.Invoker, kind clusterpb.InteractionKind, name string, opts ...*clusterpb.Option) string {
	h.t.Helper()
	h.mu.Lock()
	h.next++
	id := fmt.Sprintf("9%017d", h.next)
	h.mu.Unlock()
	in := &clusterpb.Interaction{
		Id: id, Token: tokenOf(id), ApplicationId: "42", GuildId: guild, ChannelId: "222",
		Invoker: inv, Kind: kind, Name: name, Options: opts, ReceivedUnixNano: h.clock.Now().UnixNano(),
		BotVoiceChannelId: "111",
	}
	h.deliver(in)
	return id
}

func (h *harness) deliver(in *clusterpb.Interaction) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.HandleReply, error) {
		return clusterpb.GetGuildGrainClient(h.c, in.GetGuildId()).Handle(in, o...)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) send(inv *clusterpb.Invoker, kind clusterpb.InteractionKind, name string, opts ...*clusterpb.Option) string {
	h.t.Helper()
	return h.sendTo(testGuild, inv, kind, name, opts...)
}

func (h *harness) command(inv *clusterpb.Invoker, name string, opts ...*clusterpb.Option) string {
	h.t.Helper()
	return h.send(inv, clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, name, opts...)
}

// final waits for the interaction's final reply and returns its calls.
func (h *harness) final(id string) []call {
	h.t.Helper()
	calls := h.replier.wait(h.t, "final reply for "+id, func(cs []call) bool { return finalReply(of(cs, id)) != nil })
	return of(calls, id)
}

// answer is final's reply.
func (h *harness) answer(id string) *clusterpb.Reply {
	h.t.Helper()
	return finalReply(h.final(id))
}

// settle waits until everything sent to guild before it was handled: a
// refusal goes through the same mailbox, after them.
func (h *harness) settle(guild string) {
	h.t.Helper()
	h.answer(h.sendTo(guild, listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, "not-a-button"))
}

func opt(name, value string) *clusterpb.Option { return &clusterpb.Option{Name: name, Value: value} }

func TestFastCommandIsAnsweredDirectly(t *testing.T) {
	h := newHarness(t, nil, nil)
	calls := h.final(h.command(listener, "pause"))
	if len(calls) != 1 || calls[0].kind != "respond" || calls[0].reply.GetContent() != "did pause" {
		t.Fatalf("calls %+v", calls)
	}
	// The first answer is never sent past Discord's deadline (a call that
	// would wait longer, on a rate limit, fails at once instead).
	if want := h.clock.Now().Add(ackWithin); !calls[0].deadline.Equal(want) {
		t.Fatalf("response's deadline %v after arrival, want Discord's %v", calls[0].deadline.Sub(h.clock.Now()), ackWithin)
	}
}

// TestSlowSessionIsDeferredThenEdited: a command whose session work
// outlasts the answer budget is deferred (privately: /pause's answer is
// for the member), then edited.
func TestSlowSessionIsDeferredThenEdited(t *testing.T) {
	h := newHarness(t, nil, nil)
	release := make(chan struct{})
	h.sessions.gate = release
	id := h.command(listener, "pause")
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	close(release)
	calls := h.final(id)
	if kinds(calls) != "defer,edit" || calls[1].reply.GetContent() != "did pause" {
		t.Fatalf("calls %s: %+v", kinds(calls), calls)
	}
	if !calls[0].ephemeral {
		t.Fatal("/pause deferred in public; its answer is for the member")
	}
	// The deferral is bound by the interaction's deadline, the edit (the
	// token lasts 15 minutes) by the call timeout only.
	if ackBy := h.clock.Now().Add(ackWithin); !calls[0].deadline.Equal(ackBy) || !calls[1].deadline.After(ackBy) {
		t.Fatalf("deadlines after arrival: deferral %v, edit %v", calls[0].deadline.Sub(h.clock.Now()), calls[1].deadline.Sub(h.clock.Now()))
	}
}

// TestPlayIsDeferredAtOnce: /play waits on a Lavalink search, so its
// answer is deferred as soon as the guild hands it to the session, long
// before the answer budget (an hour here); a /play the guild refuses
// itself is answered directly, and so is a command without DeferAtOnce.
func TestPlayIsDeferredAtOnce(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.AnswerBudget, d.Cooldown = time.Hour, time.Hour }, nil)
	release := make(chan struct{})
	h.sessions.gate = release
	id := h.command(listener, "play", opt("query", "slow"))
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	close(release)
	calls := h.final(id)
	if kinds(calls) != "defer,edit" || calls[0].ephemeral || calls[1].reply.GetContent() != "did play" {
		t.Fatalf("calls %s: %+v", kinds(calls), calls)
	}
	if calls := h.final(h.command(listener, "play", opt("query", "again"))); kinds(calls) != "respond" || !calls[0].reply.GetEphemeral() {
		t.Fatalf("a /play refused by the cooldown: calls %s, want an ephemeral response", kinds(calls))
	}
	if calls := h.final(h.command(listener, "pause")); kinds(calls) != "respond" {
		t.Fatalf("/pause: calls %s, want a direct response", kinds(calls))
	}
}

// TestPlayWaitingForTheSettingsIsDeferredOnlyWhenRouted: a /play that
// arrives while the guild's settings load is deferred once the guild hands
// it on, not before: one the guild then refuses (the member is not in
// voice) gets a direct ephemeral answer, not a public "thinking" message.
func TestPlayWaitingForTheSettingsIsDeferredOnlyWhenRouted(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	h := newHarness(t, func(d *Deps) { d.AnswerBudget = time.Hour },
		func(h *harness) { h.store.setHooks(gate(testGuild, release, entered), nil) })
	session := make(chan struct{})
	h.sessions.gate = session
	outside := &clusterpb.Invoker{UserId: "1009"}
	refused := h.command(outside, "play", opt("query", "a"))
	<-entered
	routed := h.command(listener, "play", opt("query", "b"))
	close(release)
	if calls := h.final(refused); kinds(calls) != "respond" || !calls[0].reply.GetEphemeral() {
		t.Fatalf("/play outside voice: calls %s, want an ephemeral response", kinds(calls))
	}
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, routed), "defer") })
	close(session)
	if calls := h.final(routed); kinds(calls) != "defer,edit" || calls[1].reply.GetContent() != "did play" {
		t.Fatalf("/play in voice: calls %s: %+v", kinds(calls), calls)
	}
}

func TestDJRuleRefusesWithoutCallingTheSession(t *testing.T) {
	h := newHarness(t, nil, nil)
	r := h.answer(h.command(listener, "skip"))
	if !r.GetEphemeral() || !strings.Contains(strings.ToLower(r.GetContent()), "dj") {
		t.Fatalf("refusal %+v", r)
	}
	if h.sessions.count() != 0 {
		t.Fatal("refused command reached the session")
	}
	// A moderator may.
	if r := h.answer(h.command(mod, "skip")); r.GetContent() != "did skip" {
		t.Fatalf("moderator skip: %+v", r)
	}
}

func storedSettings(t *testing.T, s *testStore) *clusterpb.GuildSettings {
	t.Helper()
	data, err := s.Bolt.LoadSettings(context.Background(), testGuild)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pb clusterpb.GuildSettings
	if err := proto.Unmarshal(data, &pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}

func TestSettingsAreStoredAndApplied(t *testing.T) {
	h := newHarness(t, nil, nil)
	r := h.answer(h.command(mod, "settings", opt("dj_role", "555"), opt("default_volume", "70")))
	if !r.GetEphemeral() {
		t.Fatalf("settings reply %+v", r)
	}
	pb := storedSettings(t, h.store)
	if pb.GetDjRoleId() != "555" || pb.GetDefaultVolume() != 70 {
		t.Fatalf("stored %+v", pb)
	}
	// The DJ role now lets its members skip.
	if r := h.answer(h.command(dj, "skip")); r.GetContent() != "did skip" {
		t.Fatalf("DJ skip after settings: %+v", r)
	}
	// Bad values are refused and change nothing.
	h.answer(h.command(mod, "settings", opt("default_volume", "500")))
	if got := storedSettings(t, h.store); !proto.Equal(got, pb) {
		t.Fatalf("refused settings changed the store: %+v", got)
	}
}

func TestCooldown(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Cooldown = time.Hour }, nil)
	h.answer(h.command(listener, "queue"))
	if r := h.answer(h.command(listener, "queue")); !strings.Contains(r.GetContent(), "Slow down") {
		t.Fatalf("second use within cooldown: %+v", r)
	}
	// The cooldown runs on the grain's clock.
	h.clock.advance(time.Hour)
	if r := h.answer(h.command(listener, "queue")); strings.Contains(r.GetContent(), "Slow down") {
		t.Fatalf("use after the cooldown: %+v", r)
	}
}

// One member per test: protoactor's remote replaces gRPC's global logger
// at start, which races with another live member.
func TestBusyGuild(t *testing.T) {
	h := newHarness(t, nil, nil)
	release := make(chan struct{})
	h.sessions.gate = release
	defer close(release)
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, h.command(listener, "pause"))
	}
	if r := h.answer(ids[3]); !commands.IsBusy(r.GetContent()) {
		t.Fatalf("fourth concurrent command: %+v", r)
	}
}

func TestButtonsAreCheckedAgainstTheGuild(t *testing.T) {
	h := newHarness(t, nil, nil)
	foreign := commands.CustomID(commands.ButtonPauseResume, otherGuild)
	r := h.answer(h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, foreign))
	if !r.GetEphemeral() || h.sessions.count() != 0 {
		t.Fatalf("foreign button: %+v, session calls %d", r, h.sessions.count())
	}
	own := commands.CustomID(commands.ButtonPauseResume, testGuild)
	r = h.answer(h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, own))
	if r.GetContent() != "did pause_resume" || !r.GetEphemeral() {
		t.Fatalf("own button (answered to the presser only): %+v", r)
	}
}

func TestRetriedDeliveryRunsOnce(t *testing.T) {
	h := newHarness(t, nil, nil)
	in := &clusterpb.Interaction{Id: "4242", Token: tokenOf("4242"), GuildId: testGuild, ChannelId: "222", Invoker: listener,
		Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: "pause", BotVoiceChannelId: "111", ReceivedUnixNano: time.Now().UnixNano()}
	for i := 0; i < 3; i++ {
		h.deliver(in)
	}
	h.final("4242")
	// A later command through the same mailbox: once it reached the
	// session, the copies before it were handled.
	h.answer(h.command(listener, "resume"))
	if n := h.sessions.count(); n != 2 {
		t.Fatalf("one interaction delivered three times, then another: the session got %d commands, want 2", n)
	}
	// Long after, the ID is forgotten (a delivery is never retried that
	// late) and the set holds only what is recent.
	h.clock.advance(dedupBounds.Window + time.Second)
	h.deliver(in)
	// Its answer, not the next command, says it reached the session: the
	// guild runs the two commands' session calls side by side.
	h.replier.wait(t, "a second final reply for 4242", func(cs []call) bool {
		n := 0
		for _, c := range of(cs, "4242") {
			if finalReply([]call{c}) != nil {
				n++
			}
		}
		return n == 2
	})
	h.answer(h.command(listener, "resume"))
	if n := h.sessions.count(); n != 4 {
		t.Fatalf("after the window the session got %d commands, want 4", n)
	}
}

// TestUnreadableSettingsAreNotOverwritten: while the settings cannot be
// read, /settings changes are refused (merging them onto the defaults
// would wipe the stored DJ role) and the DJ role is unknown; the grain
// reads the store again after a backoff, not at every command.
func TestUnreadableSettingsAreNotOverwritten(t *testing.T) {
	h := newHarness(t, func(d *Deps) {
		d.LoadRetry = supervisor.Backoff{Base: time.Second, Max: time.Minute}
	}, func(h *harness) {
		h.store.setHooks(failing(errors.New("store unreachable")), nil)
	})
	stored, _ := proto.Marshal(&clusterpb.GuildSettings{DjRoleId: "555", DefaultVolume: 100})
	if err := h.store.Bolt.SaveSettings(context.Background(), testGuild, stored); err != nil {
		t.Fatal(err)
	}
	r := h.answer(h.command(mod, "settings", opt("default_volume", "80")))
	if !r.GetEphemeral() || !strings.Contains(r.GetContent(), "nothing changed") {
		t.Fatalf("settings change while unreadable: %+v", r)
	}
	if got, _ := h.store.Bolt.LoadSettings(context.Background(), testGuild); string(got) != string(stored) {
		t.Fatal("the stored settings were overwritten")
	}

	// Each step: advance the clock, send a command, then count the loads.
	// The backoff (no jitter) waits 1 s, 2 s, 4 s after failures 1, 2, 3.
	steps := []struct {
		name    string
		advance time.Duration
		heal    bool
		inv     *clusterpb.Invoker
		want    string
		loads   int
	}{
		{"DJ refused while unreadable, no reload within 1 s", 900 * time.Millisecond, false, dj, "DJ role", 1},
		{"Manage Server may", 0, false, mod, "did skip", 1},
		{"reload after 1 s, fails again", 100 * time.Millisecond, false, dj, "DJ role", 2},
		{"no reload within the next 2 s", 1900 * time.Millisecond, false, dj, "DJ role", 2},
		{"reload after 2 s, store healed: the stored DJ role applies", 100 * time.Millisecond, true, dj, "did skip", 3},
		{"loaded: no more reloads", time.Hour, false, dj, "did skip", 3},
	}
	for _, s := range steps {
		h.clock.advance(s.advance)
		if s.heal {
			h.store.setHooks(nil, nil)
		}
		r := h.answer(h.command(s.inv, "skip"))
		if !strings.Contains(r.GetContent(), s.want) {
			t.Fatalf("%s: reply %q, want %q", s.name, r.GetContent(), s.want)
		}
		if loads, _ := h.store.counts(); loads != s.loads {
			t.Fatalf("%s: %d loads, want %d", s.name, loads, s.loads)
		}
	}
}

func TestWrongGuildIsAnError(t *testing.T) {
	h := newHarness(t, nil, nil)
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
	h := newHarness(t, nil, nil)
	release := make(chan struct{})
	h.sessions.gate, h.sessions.refuse = release, true
	id := h.command(listener, "play", opt("query", "nothing"))
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	close(release)
	calls := h.final(id)
	if kinds(calls) != "defer,delete,followup" {
		t.Fatalf("calls %s, want defer, delete, followup", kinds(calls))
	}
	if !calls[2].reply.GetEphemeral() {
		t.Fatalf("follow-up is public: %+v", calls[2].reply)
	}
}

// TestSlowStoreLoad: while a guild's store read hangs, its commands wait
// in the grain, are deferred within Discord's 3 s and completed once the
// read reports; another guild is answered at once meanwhile.
func TestSlowStoreLoad(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	h := newHarness(t, nil, func(h *harness) { h.store.setHooks(gate(testGuild, release, entered), nil) })
	sent := time.Now()
	id := h.command(listener, "pause")
	<-entered
	calls := h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	if d := of(calls, id)[0]; d.kind != "defer" || !d.ephemeral || d.at.Sub(sent) > 3*time.Second {
		t.Fatalf("first call %+v, want an ephemeral deferral within 3 s", d)
	}
	if h.sessions.count() != 0 {
		t.Fatal("the command ran before the settings were loaded")
	}
	// Another guild's grain is not held up.
	other := h.sendTo(otherGuild, listener, clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, "pause")
	if c := h.final(other); kinds(c) != "respond" || c[0].reply.GetContent() != "did pause" {
		t.Fatalf("other guild: %s %+v", kinds(c), c)
	}
	close(release)
	if c := h.final(id); kinds(c) != "defer,edit" || c[1].reply.GetContent() != "did pause" {
		t.Fatalf("after the load: %s %+v", kinds(c), c)
	}
}

// TestStoreSlowerThanTheDeadline: with every store call of a guild taking
// 3.5 s, longer than Discord's 3 s, its commands (a /settings change
// included) are deferred in time with the default budget, then completed.
func TestStoreSlowerThanTheDeadline(t *testing.T) {
	const latency = 3500 * time.Millisecond
	slow := func(ctx context.Context, g string) error {
		if g != testGuild {
			return nil
		}
		select {
		case <-time.After(latency): // the store's latency, not a wait for the test
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := newHarness(t, func(d *Deps) { d.AnswerBudget = 0 }, func(h *harness) { h.store.setHooks(slow, slow) })
	sent := time.Now()
	pause := h.command(listener, "pause")
	change := h.command(mod, "settings", opt("default_volume", "70"))
	for _, id := range []string{pause, change} {
		c := h.final(id)
		if c[0].kind != "defer" || c[0].at.Sub(sent) >= 3*time.Second {
			t.Fatalf("%s: %s, first after %v; want a deferral within 3 s", id, kinds(c), c[0].at.Sub(sent))
		}
	}
	if r := finalReply(h.final(pause)); r.GetContent() != "did pause" {
		t.Fatalf("pause: %+v", r)
	}
	if r := finalReply(h.final(change)); !strings.Contains(renderText(r), "70") {
		t.Fatalf("settings: %+v", r)
	}
	if pb := storedSettings(t, h.store); pb.GetDefaultVolume() != 70 {
		t.Fatalf("stored %+v", pb)
	}
}

// TestPendingListIsBounded: past maxPending commands waiting for the load,
// the next is told the bot is busy at once; the others complete.
func TestPendingListIsBounded(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	h := newHarness(t, func(d *Deps) { d.MaxInFlight = 100 }, func(h *harness) { h.store.setHooks(gate(testGuild, release, entered), nil) })
	var ids []string
	for i := 0; i < maxPending+1; i++ {
		ids = append(ids, h.command(listener, "pause"))
	}
	if r := h.answer(ids[maxPending]); !commands.IsBusy(r.GetContent()) {
		t.Fatalf("command past the pending bound: %+v", r)
	}
	<-entered
	close(release)
	for _, id := range ids[:maxPending] {
		if r := h.answer(id); r.GetContent() != "did pause" {
			t.Fatalf("pending command %s: %+v", id, r)
		}
	}
}

// TestSettingsReplyWaitsForItsSave: a change is in effect, and said to be,
// only once stored.
func TestSettingsReplyWaitsForItsSave(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	h := newHarness(t, nil, nil)
	h.answer(h.command(listener, "queue")) // loaded
	h.store.setHooks(nil, gate(testGuild, release, entered))
	id := h.command(mod, "settings", opt("dj_role", "555"))
	<-entered
	calls := h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	if c := of(calls, id); kinds(c) != "defer" || !c[0].ephemeral {
		t.Fatalf("while saving: %s, want one ephemeral deferral", kinds(c))
	}
	// Not in effect while not stored.
	if r := h.answer(h.command(dj, "skip")); !strings.Contains(r.GetContent(), "Manage Server") {
		t.Fatalf("DJ skip while the save runs: %+v", r)
	}
	close(release)
	if c := h.final(id); kinds(c) != "defer,edit" || !strings.Contains(renderText(c[1].reply), "555") {
		t.Fatalf("after the save: %s %+v", kinds(c), c)
	}
	if r := h.answer(h.command(dj, "skip")); r.GetContent() != "did skip" {
		t.Fatalf("DJ skip after the save: %+v", r)
	}
}

func renderText(r *clusterpb.Reply) string {
	var b strings.Builder
	b.WriteString(r.GetContent())
	for _, e := range r.GetEmbeds() {
		b.WriteString(e.GetTitle() + "\n" + e.GetDescription())
		for _, f := range e.GetFields() {
			b.WriteString("\n" + f.GetName() + ": " + f.GetValue())
		}
	}
	return b.String()
}

// TestSettingsChangesApplyInOrder: one save at a time; the next change is
// made on top of the previous one once that is stored.
func TestSettingsChangesApplyInOrder(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 2)
	h := newHarness(t, nil, nil)
	h.answer(h.command(listener, "queue"))
	h.store.setHooks(nil, gate(testGuild, release, entered))
	first := h.command(mod, "settings", opt("dj_role", "555"))
	<-entered
	second := h.command(mod, "settings", opt("default_volume", "70"))
	h.settle(testGuild)
	if _, saves := h.store.counts(); saves != 1 {
		t.Fatalf("%d saves in flight, want 1", saves)
	}
	release <- struct{}{}
	if r := finalReply(h.final(first)); !strings.Contains(renderText(r), "555") {
		t.Fatalf("first change: %+v", r)
	}
	<-entered
	release <- struct{}{}
	r := finalReply(h.final(second))
	if text := renderText(r); !strings.Contains(text, "555") || !strings.Contains(text, "70") {
		t.Fatalf("second change does not show both: %s", text)
	}
	if pb := storedSettings(t, h.store); pb.GetDjRoleId() != "555" || pb.GetDefaultVolume() != 70 {
		t.Fatalf("stored %+v, want both changes", pb)
	}
}

// TestSettingsQueueIsBounded: past maxSettingsQueue changes waiting for a
// save, the next is told the bot is busy at once.
func TestSettingsQueueIsBounded(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, maxSettingsQueue+1)
	h := newHarness(t, nil, nil)
	h.answer(h.command(listener, "queue"))
	h.store.setHooks(nil, gate(testGuild, release, entered))
	defer close(release)
	h.command(mod, "settings", opt("dj_role", "555"))
	<-entered
	for i := 0; i < maxSettingsQueue; i++ {
		h.command(mod, "settings", opt("default_volume", fmt.Sprint(50+i)))
	}
	if r := h.answer(h.command(mod, "settings", opt("default_volume", "99"))); !commands.IsBusy(r.GetContent()) {
		t.Fatalf("change past the queue bound: %+v", r)
	}
}

// TestFailedSaveChangesNothing: a save that fails leaves the settings as
// they were, in the store and in the grain.
func TestFailedSaveChangesNothing(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.answer(h.command(listener, "queue"))
	h.store.setHooks(nil, failing(errors.New("disk full")))
	r := h.answer(h.command(mod, "settings", opt("dj_role", "555")))
	if !r.GetEphemeral() || !strings.Contains(r.GetContent(), "could not be saved") {
		t.Fatalf("failed save: %+v", r)
	}
	if pb := storedSettings(t, h.store); pb != nil {
		t.Fatalf("stored %+v", pb)
	}
	if r := h.answer(h.command(dj, "skip")); !strings.Contains(r.GetContent(), "Manage Server") {
		t.Fatalf("DJ skip after a failed save: %+v", r)
	}
}

// TestIdleGuildAnswersItself: a guild with no stored session answers
// /queue and /nowplaying with the session's own words and activates no
// session; with one, or when the store cannot say, it asks the session.
func TestIdleGuildAnswersItself(t *testing.T) {
	emptyQueueText := "The queue is empty. Add tracks with /play."
	tests := []struct {
		name     string
		snapshot bool
		loadErr  bool
		command  string
		opts     []*clusterpb.Option
		calls    int
		want     string
	}{
		{"queue", false, false, "queue", nil, 0, emptyQueueText},
		{"queue page 1", false, false, "queue", []*clusterpb.Option{opt("page", "1")}, 0, emptyQueueText},
		{"queue page 2", false, false, "queue", []*clusterpb.Option{opt("page", "2")}, 0, "no page 2"},
		{"queue bad page", false, false, "queue", []*clusterpb.Option{opt("page", "x")}, 0, "whole number"},
		{"nowplaying", false, false, "nowplaying", nil, 0, "Nothing is playing."},
		{"pause goes to the session", false, false, "pause", nil, 1, "did pause"},
		{"queue with a stored session", true, false, "queue", nil, 1, "did queue"},
		{"nowplaying with a stored session", true, false, "nowplaying", nil, 1, "did nowplaying"},
		{"queue when the store cannot say", false, true, "queue", nil, 1, "did queue"},
	}
	// One member, a guild per case.
	guildOf := func(i int) string { return fmt.Sprint(81384788765712400 + i) }
	h := newHarness(t, nil, func(h *harness) {
		h.store.setHooks(func(_ context.Context, g string) error {
			for i, tt := range tests {
				if tt.loadErr && g == guildOf(i) {
					return errors.New("store unreachable")
				}
			}
			return nil
		}, nil)
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guild := guildOf(i)
			if tt.snapshot {
				ctx := context.Background()
				e, err := h.store.Activate(ctx, guild)
				if err != nil {
					t.Fatal(err)
				}
				if err := h.store.SaveSession(ctx, guild, e, []byte("queue")); err != nil {
					t.Fatal(err)
				}
			}
			id := h.sendTo(guild, listener, clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, tt.command, tt.opts...)
			r := h.answer(id)
			if text := renderText(r); !strings.Contains(text, tt.want) {
				t.Fatalf("reply %q, want %q", text, tt.want)
			}
			if n := h.sessions.countFor(guild); n != tt.calls {
				t.Fatalf("session got %d commands, want %d", n, tt.calls)
			}
			if tt.calls == 0 && !r.GetEphemeral() {
				t.Fatalf("local answer is public: %+v", r)
			}
		})
	}
}

// TestIdleGuildMatchesTheSessionsWords: the guild's own answers are the
// replies the session renders when it has nothing.
func TestIdleGuildMatchesTheSessionsWords(t *testing.T) {
	q, _ := music.NewQueue(500)
	page, _ := q.Page(1, 10)
	tests := []struct {
		command string
		want    *clusterpb.Reply
	}{
		{"queue", commands.QueuePage(page, nil)},
		{"nowplaying", commands.Error("Nothing is playing.")},
	}
	for _, tt := range tests {
		if got := idleReply(commands.Name(tt.command), nil); !proto.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.command, got, tt.want)
		}
	}
}

// TestSessionActivityFollowsReplies: the guild learns from each reply
// whether its session has something, and answers itself only when the
// last word was "nothing".
func TestSessionActivityFollowsReplies(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.sessions.active = func(c string) bool { return c != "stop" }
	steps := []struct {
		command string
		calls   int
	}{
		{"queue", 0},
		{"play", 1},
		{"queue", 2},
		{"nowplaying", 3},
		{"stop", 4},
		{"queue", 4},
		{"nowplaying", 4},
	}
	for i, s := range steps {
		inv, opts := listener, []*clusterpb.Option(nil)
		switch s.command {
		case "stop":
			inv = mod
		case "play":
			opts = append(opts, opt("query", "x"))
		}
		h.answer(h.command(inv, s.command, opts...))
		if n := h.sessions.count(); n != s.calls {
			t.Fatalf("step %d (%s): the session got %d commands, want %d", i, s.command, n, s.calls)
		}
	}
}

// TestOverlappingRepliesAreNotTrusted: "nothing" from a reply while
// another command was on its way to the session may be stale; the guild
// asks the session until a reply comes alone.
func TestOverlappingRepliesAreNotTrusted(t *testing.T) {
	h := newHarness(t, nil, nil)
	release, started := make(chan struct{}), make(chan string, 3)
	h.sessions.gate, h.sessions.started = release, started
	h.sessions.active = func(string) bool { return false }
	a, b := h.command(listener, "pause"), h.command(listener, "resume")
	<-started
	<-started
	close(release)
	h.answer(a)
	h.answer(b)
	steps := []struct {
		name  string
		calls int
	}{
		{"after overlapping replies of nothing, /queue asks the session", 3},
		{"after a lone reply of nothing, /queue is answered by the guild", 3},
	}
	for _, s := range steps {
		h.answer(h.command(listener, "queue"))
		if n := h.sessions.count(); n != s.calls {
			t.Fatalf("%s: the session got %d commands, want %d", s.name, n, s.calls)
		}
	}
}

// TestStaleLoadDoesNotHideTheSession: a store read that saw no session is
// not believed if a command reached the session while it ran.
func TestStaleLoadDoesNotHideTheSession(t *testing.T) {
	storeDown := errors.New("store unreachable")
	h := newHarness(t, func(d *Deps) {
		d.LoadRetry = supervisor.Backoff{Base: time.Second, Max: time.Second}
	}, func(h *harness) { h.store.setHooks(failing(storeDown), nil) })
	h.answer(h.command(mod, "skip")) // the first load failed
	sessionGate, started := make(chan struct{}), make(chan string, 4)
	h.sessions.gate, h.sessions.started = sessionGate, started
	play := h.command(listener, "play", opt("query", "x"))
	<-started
	// A reload starts, and reads "no session" before /play is stored.
	loadGate, entered := make(chan struct{}), make(chan struct{}, 1)
	h.store.setHooks(gate(testGuild, loadGate, entered), nil)
	h.clock.advance(time.Second)
	// A refusal: it waits for the load, and tells the guild nothing.
	waiting := h.command(listener, "skip")
	<-entered
	close(sessionGate)
	h.answer(play)
	close(loadGate)
	h.answer(waiting)
	calls := h.sessions.count()
	if h.answer(h.command(listener, "queue")); h.sessions.count() != calls+1 {
		t.Fatal("/queue was answered by the guild while its session plays")
	}
}

// TestRESTStepsKeepTheirOrder: the edit of a deferred reply waits for the
// deferral to complete, however slow Discord is, and the grain does not.
func TestRESTStepsKeepTheirOrder(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.MaxInFlight = 1 }, nil)
	deferGate, sessionGate, started := make(chan struct{}), make(chan struct{}), make(chan string, 1)
	h.replier.deferGate = deferGate
	h.sessions.gate, h.sessions.started = sessionGate, started
	id := h.command(listener, "pause")
	<-started
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, id), "defer") })
	close(sessionGate)
	// The grain goes on while Discord holds the deferral. With one command
	// allowed in flight, a later /queue is "busy" until the grain has
	// handled the session's result for /pause: then its final reply is
	// with the answer goroutine, which must still wait.
	for commands.IsBusy(h.answer(h.command(listener, "queue")).GetContent()) {
	}
	if c := of(h.replier.wait(t, "", func([]call) bool { return true }), id); hasKind(c, "edit") {
		t.Fatalf("edited before the deferral completed: %s", kinds(c))
	}
	close(deferGate)
	if c := h.final(id); kinds(c) != "defer,defer-done,edit" {
		t.Fatalf("calls %s, want defer, defer-done, edit", kinds(c))
	}
}

// TestStoppingGrainAnswersWhatIsOpen: an activation that stops with
// commands in flight answers them instead of leaving them to time out.
func TestStoppingGrainAnswersWhatIsOpen(t *testing.T) {
	h := newHarness(t, nil, nil)
	release, started := make(chan struct{}), make(chan string, 1)
	h.sessions.gate, h.sessions.started = release, started
	defer close(release)
	id := h.command(listener, "pause")
	<-started
	pid := h.c.Get(testGuild, Kind)
	if pid == nil {
		t.Fatal("no activation")
	}
	if err := h.c.ActorSystem.Root.PoisonFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if r := h.answer(id); !strings.Contains(r.GetContent(), "try again") {
		t.Fatalf("open command when the grain stopped: %+v", r)
	}
}

// A replayed interaction (its shard resumed on a new holder) runs only
// once this grain could acknowledge it: one the previous holder handled is
// acknowledged already and is dropped, the others run and their answer
// edits the deferral.
func TestReplayedInteractionRunsOnlyIfItCanBeAcknowledged(t *testing.T) {
	h := newHarness(t, nil, nil)
	replay := func(id, name string, opts ...*clusterpb.Option) *clusterpb.Interaction {
		return &clusterpb.Interaction{Id: id, Token: tokenOf(id), ApplicationId: "42", GuildId: testGuild, ChannelId: "222",
			Invoker: listener, Kind: clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, Name: name, Options: opts,
			ReceivedUnixNano: h.clock.Now().UnixNano(), BotVoiceChannelId: "111", Replayed: true}
	}
	handled, fresh := "900000000000000001", "900000000000000002"
	// Interactions of earlier tests may still be in flight (some wait out
	// their token): count from here.
	base := InFlight()
	h.replier.mu.Lock()
	h.replier.acknowledged = map[string]bool{tokenOf(handled): true}
	h.replier.mu.Unlock()
	h.deliver(replay(handled, "play", opt("query", "twice?")))
	h.deliver(replay(fresh, "play", opt("query", "missed")))
	calls := h.final(fresh)
	if kinds(calls) != "defer,edit" || calls[1].reply.GetContent() != "did play" {
		t.Fatalf("replayed interaction that could be acknowledged: calls %s %+v; want a deferral, then the edit", kinds(calls), calls)
	}
	h.sessions.mu.Lock()
	defer h.sessions.mu.Unlock()
	if len(h.sessions.reqs) != 1 || h.sessions.reqs[0].GetRequestId() != fresh {
		t.Fatalf("session requests %v; want only the one not handled before", h.sessions.reqs)
	}
	h.replier.mu.Lock()
	got := of(h.replier.calls, handled)
	h.replier.mu.Unlock()
	if kinds(got) != "defer" {
		t.Fatalf("handled replay: calls %s; want only the failed acknowledgement", kinds(got))
	}
	// Neither is in flight any more: the answered one ended with its
	// answer, the dropped one when its acknowledgement failed.
	for deadline := time.Now().Add(10 * time.Second); InFlight() > base; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("interactions in flight after both ended: %d, %d before", InFlight(), base)
		}
	}
}

// A session whose member just died (the call fails at once) gets its user
// a "busy, try again" rather than a generic error; any other failure is
// an error.
func TestUnreachableSessionIsAnsweredBusy(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.sessions.mu.Lock()
	h.sessions.fail = fmt.Errorf("Session/%s: %w", testGuild, ecluster.ErrOwnerUnreachable)
	h.sessions.mu.Unlock()
	if r := h.answer(h.command(listener, "pause")); !commands.IsBusy(r.GetContent()) || !r.GetEphemeral() {
		t.Fatalf("reply %+v; want the ephemeral busy answer", r)
	}
	h.sessions.mu.Lock()
	h.sessions.fail = errors.New("request failed")
	h.sessions.mu.Unlock()
	if r := h.answer(h.command(listener, "resume")); commands.IsBusy(r.GetContent()) || !strings.Contains(r.GetContent(), "went wrong") {
		t.Fatalf("reply %+v; want the error answer", r)
	}
}

// metricValue is a counter's value or a histogram's sample count for the
// series with exactly these label values, from reg; -1 if there is none.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestAnswersAreCounted: every interaction's end is counted by how it was
// acknowledged and by command and outcome, with command names from the
// table only (a button's custom ID is never a label).
func TestAnswersAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(d *Deps) { d.Metrics = m }, nil)
	h.final(h.command(listener, "pause"))

	release := make(chan struct{})
	h.sessions.gate = release
	slow := h.command(listener, "play", opt("query", "slow"))
	h.replier.wait(t, "deferral", func(cs []call) bool { return hasKind(of(cs, slow), "defer") })
	close(release)
	h.final(slow)
	foreign := h.send(listener, clusterpb.InteractionKind_INTERACTION_KIND_BUTTON, commands.CustomID(commands.ButtonSkip, otherGuild))
	if r := h.answer(foreign); !commands.IsError(r) {
		t.Fatalf("foreign button: %+v", r)
	}

	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"ensemble_interaction_acks_total", map[string]string{"result": "deferred"}, 1},
		{"ensemble_interaction_acks_total", map[string]string{"result": "direct"}, 2},
		{"ensemble_interaction_acks_total", map[string]string{"result": "late"}, 0},
		{"ensemble_command_duration_seconds", map[string]string{"command": "pause", "outcome": "ok"}, 1},
		{"ensemble_command_duration_seconds", map[string]string{"command": "play", "outcome": "ok"}, 1},
		{"ensemble_command_duration_seconds", map[string]string{"command": "other", "outcome": "error"}, 1},
	}
	// The answers' goroutines count after their last call returns.
	deadline := time.Now().Add(10 * time.Second)
	for _, w := range want {
		for metricValue(reg, w.name, w.labels) != w.value {
			if time.Now().After(deadline) {
				t.Fatalf("%s%v = %v, want %v", w.name, w.labels, metricValue(reg, w.name, w.labels), w.value)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// viewOf is a session view of guild with the given queue and current track.
func viewOf(guild string, epoch, seq uint64, current string, queue ...string) *clusterpb.SessionView {
	v := &clusterpb.SessionView{GuildId: guild, Epoch: epoch, Seq: seq, Volume: 100, Loop: "off"}
	if current != "" {
		v.Current = &clusterpb.SessionSnapshot_Track{Identifier: current, Title: "Song " + current, LengthMs: 180_000}
	}
	for _, q := range queue {
		v.Queue = append(v.Queue, &clusterpb.SessionSnapshot_Track{Identifier: q, Title: "Song " + q, LengthMs: 120_000})
	}
	v.QueueLen = int32(len(queue))
	return v
}

// TestReadsAreAnsweredFromTheSessionsView: after a reply brought the
// session's view, /queue and /nowplaying are answered from it, without a
// call, for ViewTrust; then the next read asks the session again.
func TestReadsAreAnsweredFromTheSessionsView(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.sessions.view = func(req *clusterpb.SessionRequest) *clusterpb.SessionView {
		return viewOf(testGuild, 1, 1, "a", "b", "c")
	}
	h.answer(h.command(listener, "play", opt("query", "x")))
	if n := h.sessions.count(); n != 1 {
		t.Fatalf("session got %d commands, want 1", n)
	}
	text := renderText(h.answer(h.command(listener, "queue")))
	for _, want := range []string{"Song a", "Song b", "Song c"} {
		if !strings.Contains(text, want) {
			t.Fatalf("/queue from the view: %q lacks %q", text, want)
		}
	}
	np := h.answer(h.command(listener, "nowplaying"))
	if text := renderText(np); !strings.Contains(text, "Song a") || !np.GetEphemeral() {
		t.Fatalf("/nowplaying from the view: %q (ephemeral %v)", text, np.GetEphemeral())
	}
	if n := h.sessions.count(); n != 1 {
		t.Fatalf("reads reached the session: %d commands, want 1", n)
	}
	// The view holds the first page only: another page is the session's.
	if text := renderText(h.answer(h.command(listener, "queue", opt("page", "2")))); !strings.Contains(text, "did queue") || h.sessions.count() != 2 {
		t.Fatalf("/queue page 2: %q, %d session commands", text, h.sessions.count())
	}
	// A bad page is refused whatever the queue holds.
	if text := renderText(h.answer(h.command(listener, "queue", opt("page", "x")))); !strings.Contains(text, "whole number") || h.sessions.count() != 2 {
		t.Fatalf("/queue page x: %q, %d session commands", text, h.sessions.count())
	}
	h.clock.advance(ViewTrust)
	h.answer(h.command(listener, "queue"))
	if n := h.sessions.count(); n != 3 {
		t.Fatalf("a read after ViewTrust: the session got %d commands, want 3", n)
	}
	// The request said which view the guild had.
	h.sessions.mu.Lock()
	last := h.sessions.reqs[len(h.sessions.reqs)-1]
	h.sessions.mu.Unlock()
	if last.GetViewEpoch() != 1 || last.GetViewSeq() != 1 {
		t.Fatalf("request's view %d/%d, want 1/1", last.GetViewEpoch(), last.GetViewSeq())
	}
}

// pushView delivers a view push the way a session does (Guild.View).
func (h *harness) pushView(v *clusterpb.SessionView) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := ecluster.Call(ctx, 1, func(o ...pcluster.GrainCallOption) (*clusterpb.Ack, error) {
		return clusterpb.GetGuildGrainClient(h.c, v.GetGuildId()).View(v, o...)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// TestViewsAreOrdered: pushes and replies may overtake each other; the
// guild keeps the newest view (a later activation's first, then the
// higher seq). Pushes change what the guild shows but not how long it
// trusts it; only replies renew that.
func TestViewsAreOrdered(t *testing.T) {
	h := newHarness(t, nil, nil)
	var mu sync.Mutex
	next := viewOf(testGuild, 2, 5, "a")
	h.sessions.view = func(*clusterpb.SessionRequest) *clusterpb.SessionView {
		mu.Lock()
		defer mu.Unlock()
		return next
	}
	setNext := func(v *clusterpb.SessionView) { mu.Lock(); next = v; mu.Unlock() }
	h.answer(h.command(listener, "play", opt("query", "x"))) // view 2/5: a
	shown := func() string {
		t.Helper()
		return renderText(h.answer(h.command(listener, "nowplaying")))
	}
	steps := []struct {
		name string
		push *clusterpb.SessionView
		want string
	}{
		{"an older seq", viewOf(testGuild, 2, 4, "old"), "Song a"},
		{"the same seq", viewOf(testGuild, 2, 5, "dup"), "Song a"},
		{"an older activation", viewOf(testGuild, 1, 9, "old"), "Song a"},
		{"another guild's", viewOf(otherGuild, 3, 1, "other"), "Song a"},
		{"a newer seq", viewOf(testGuild, 2, 6, "b"), "Song b"},
		{"a newer activation", viewOf(testGuild, 3, 1, "c"), "Song c"},
	}
	for _, s := range steps {
		h.pushView(s.push)
		if got := shown(); !strings.Contains(got, s.want) {
			t.Fatalf("after %s: %q, want %q", s.name, got, s.want)
		}
	}
	if n := h.sessions.count(); n != 1 {
		t.Fatalf("reads reached the session: %d commands, want 1", n)
	}
	// Pushes did not renew the trust the reply gave.
	h.clock.advance(ViewTrust)
	setNext(&clusterpb.SessionView{GuildId: testGuild, Epoch: 3, Seq: 1, Same: true})
	h.answer(h.command(listener, "queue"))
	if n := h.sessions.count(); n != 2 {
		t.Fatalf("a read after ViewTrust: the session got %d commands, want 2", n)
	}
	// "Yours is current" renewed it: the next read is the guild's, still c.
	if got := shown(); !strings.Contains(got, "Song c") || h.sessions.count() != 2 {
		t.Fatalf("after a renewal: %q, %d session commands", got, h.sessions.count())
	}
	// A "current" for a view the guild no longer has renews nothing.
	h.clock.advance(ViewTrust)
	setNext(&clusterpb.SessionView{GuildId: testGuild, Epoch: 3, Seq: 7, Same: true})
	h.answer(h.command(listener, "queue"))
	h.answer(h.command(listener, "queue"))
	if n := h.sessions.count(); n != 4 {
		t.Fatalf("after a mismatched renewal: the session got %d commands, want 4", n)
	}
}

// TestQueueFromTheView: /queue from the view (its first page and the
// queue's length) is the page the session renders from the whole queue.
func TestQueueFromTheView(t *testing.T) {
	h := newHarness(t, nil, nil)
	track := func(id string) music.Track {
		uri := "https://www.youtube.com/watch?v=" + id
		enc, err := lavalinkemu.EncodeTrack(lavalinkemu.TrackInfo{Identifier: id, IsSeekable: true, Author: "Artist",
			Length: 150_000, Title: "Song " + id, URI: &uri, SourceName: "youtube"})
		if err != nil {
			t.Fatal(err)
		}
		return music.Track{Encoded: enc, Identifier: id, Title: "Song " + id, Author: "Artist", URI: uri, SourceName: "youtube", Length: 150 * time.Second}
	}
	current := track("a")
	var tracks []music.Track
	for i := range 25 {
		tracks = append(tracks, track(fmt.Sprint("t", i)))
	}
	q, err := music.RestoreQueue(500, tracks)
	if err != nil {
		t.Fatal(err)
	}
	// What the session sends: the first page, without the encoded forms.
	bare := func(t music.Track) *clusterpb.SessionSnapshot_Track {
		pb := commands.TrackToPB(&t)
		pb.Encoded = ""
		return pb
	}
	v := &clusterpb.SessionView{GuildId: testGuild, Epoch: 1, Seq: 1, Current: bare(current), QueueLen: 25, Volume: 100, Loop: "off"}
	for _, t := range tracks[:commands.QueuePageSize] {
		v.Queue = append(v.Queue, bare(t))
	}
	h.sessions.view = func(*clusterpb.SessionRequest) *clusterpb.SessionView { return v }
	h.answer(h.command(listener, "play", opt("query", "x")))
	want := commands.QueueAnswer(q, &current, nil)
	if got := h.answer(h.command(listener, "queue")); !proto.Equal(got, want) {
		t.Fatalf("/queue from the view:\n got %v\nwant %v", got, want)
	}
	if h.sessions.count() != 1 {
		t.Fatalf("the session got %d commands, want 1", h.sessions.count())
	}
}

// TestNowPlayingFromTheView: the guild's /nowplaying from a view is the
// session's rendering, the position moved on by the time since the view
// came (and not while paused).
func TestNowPlayingFromTheView(t *testing.T) {
	h := newHarness(t, nil, nil)
	v := viewOf(testGuild, 1, 1, "a", "b", "c")
	v.PositionMs, v.Volume, v.Loop = 30_000, 40, "queue"
	h.sessions.view = func(*clusterpb.SessionRequest) *clusterpb.SessionView { return v }
	h.answer(h.command(listener, "play", opt("query", "x")))
	h.clock.advance(2 * time.Second)
	track := commands.TrackFromPB(v.GetCurrent())
	next := commands.TrackFromPB(v.GetQueue()[0])
	want := commands.NowPlaying(commands.NowPlayingView{
		Guild: testGuild, Track: track, Position: 32 * time.Second, Volume: 40,
		Loop: music.LoopQueue, QueueLen: 2, Next: &next,
	})
	want.Ephemeral = true
	if got := h.answer(h.command(listener, "nowplaying")); !proto.Equal(got, want) {
		t.Fatalf("/nowplaying from the view:\n got %v\nwant %v", got, want)
	}
	// Paused: the position stays.
	paused := viewOf(testGuild, 1, 2, "a")
	paused.PositionMs, paused.Paused = 30_000, true
	h.pushView(paused)
	h.clock.advance(2 * time.Second)
	want = commands.NowPlaying(commands.NowPlayingView{Guild: testGuild, Track: track, Position: 30 * time.Second, Paused: true, Volume: 100})
	want.Ephemeral = true
	if got := h.answer(h.command(listener, "nowplaying")); !proto.Equal(got, want) {
		t.Fatalf("/nowplaying from a paused view:\n got %v\nwant %v", got, want)
	}
}

// TestRefusalEndsTheViewsTrust: a reply without a view (the session was
// fenced by a newer activation, failed, or is of an older version) means
// the view may be stale: reads go to the session again.
func TestRefusalEndsTheViewsTrust(t *testing.T) {
	h := newHarness(t, nil, nil)
	var mu sync.Mutex
	view := viewOf(testGuild, 1, 1, "a")
	h.sessions.view = func(*clusterpb.SessionRequest) *clusterpb.SessionView {
		mu.Lock()
		defer mu.Unlock()
		return view
	}
	h.answer(h.command(listener, "play", opt("query", "x")))
	h.answer(h.command(listener, "queue"))
	if n := h.sessions.count(); n != 1 {
		t.Fatalf("the session got %d commands, want 1", n)
	}
	mu.Lock()
	view = nil
	mu.Unlock()
	h.answer(h.command(listener, "play", opt("query", "y"))) // refused: no view
	h.answer(h.command(listener, "queue"))
	if n := h.sessions.count(); n != 3 {
		t.Fatalf("a read after a refusal: the session got %d commands, want 3", n)
	}
}
