package guild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/actors/session"
	ecluster "github.com/ensemble-bot/ensemble/cluster"
	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/store"
)

// Kind is the cluster kind name of guild grains.
const Kind = "Guild"

// Replier answers interactions (internal/commands.Discord).
type Replier interface {
	Respond(ctx context.Context, interactionID, token string, r *clusterpb.Reply) error
	Defer(ctx context.Context, interactionID, token string, ephemeral bool) error
	EditOriginal(ctx context.Context, appID, token string, r *clusterpb.Reply) error
	DeleteOriginal(ctx context.Context, appID, token string) error
	Followup(ctx context.Context, appID, token string, r *clusterpb.Reply) error
	Autocomplete(ctx context.Context, interactionID, token string, choices []*clusterpb.Choice) error
}

// Sessions calls session grains.
type Sessions interface {
	Execute(ctx context.Context, req *clusterpb.SessionRequest) (*clusterpb.SessionReply, error)
}

// Searcher answers /play autocomplete.
type Searcher interface {
	Load(ctx context.Context, identifier string) (session.Loaded, error)
}

// SettingsStore is the part of internal/store a guild uses.
type SettingsStore interface {
	LoadSettings(ctx context.Context, guildID string) ([]byte, error)
	SaveSettings(ctx context.Context, guildID string, settings []byte) error
}

// Deps is what every guild grain of a member shares.
type Deps struct {
	Store    SettingsStore
	Replier  Replier
	Sessions Sessions
	Search   Searcher
	Log      *slog.Logger
	Now      func() time.Time

	// Cooldown is per user and command.
	Cooldown time.Duration
	// CooldownEntries bounds the cooldown map.
	CooldownEntries int
	// AnswerBudget is how long after the interaction arrived the grain
	// waits for the session before deferring; it must leave room in
	// Discord's 3 s for the deferral itself.
	AnswerBudget time.Duration
	// WorkTimeout bounds the session's work on one command (the deferred
	// reply is edited within Discord's 15 minutes).
	WorkTimeout time.Duration
	// CallTimeout bounds store and Discord calls.
	CallTimeout time.Duration
	// MaxInFlight bounds the commands a guild works on at once; past it
	// users get a "busy" reply rather than an unbounded backlog.
	MaxInFlight int
}

func (d *Deps) defaults() {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.CooldownEntries <= 0 {
		d.CooldownEntries = 1024
	}
	if d.AnswerBudget <= 0 {
		d.AnswerBudget = 1500 * time.Millisecond
	}
	if d.WorkTimeout <= 0 {
		d.WorkTimeout = 30 * time.Second
	}
	if d.CallTimeout <= 0 {
		d.CallTimeout = 5 * time.Second
	}
	if d.MaxInFlight <= 0 {
		d.MaxInFlight = 16
	}
}

// NewKind returns the guild kind; idle grains passivate after idle.
func NewKind(deps Deps, idle time.Duration) *cluster.Kind {
	deps.defaults()
	d := &deps
	return clusterpb.NewGuildKind(func() clusterpb.Guild { return &Grain{deps: d} }, idle)
}

// Grain is one activation of guild/<guildID>.
type Grain struct {
	deps     *Deps
	ctx      cluster.GrainContext
	guildID  string
	log      *slog.Logger
	settings music.Settings
	// settingsLoaded is false while the store could not be read: DJ
	// checks and /settings then retry the load instead of trusting
	// defaults (a change merged onto defaults would wipe the DJ role).
	settingsLoaded bool
	cooldowns      *cooldowns
	inFlight       map[string]*work
	// seen remembers recent interaction IDs: a call retried after a
	// timeout delivers the same interaction twice.
	seen *recentIDs
}

// work is one command routed to the session.
type work struct {
	in       *clusterpb.Interaction
	deferred bool
	// ephemeral deferral: the final reply's visibility is fixed by it.
	ephemeral bool
	button    bool
}

// Self-messages.
type (
	deferNow    struct{ id string }
	sessionDone struct {
		id    string
		reply *clusterpb.SessionReply
		err   error
	}
)

// Init loads the guild's settings.
func (g *Grain) Init(ctx cluster.GrainContext) {
	g.ctx = ctx
	g.guildID = ctx.Identity()
	g.log = g.deps.Log.With("guild", g.guildID)
	g.cooldowns = newCooldowns(g.deps.CooldownEntries)
	g.inFlight = map[string]*work{}
	g.seen = newRecentIDs(256)
	g.settings = music.DefaultSettings()
	g.loadSettings()
}

// loadSettings reads the guild's settings; on a store error the grain
// keeps the safe defaults for now (DJ actions need Manage Server) and
// tries again on the next command.
func (g *Grain) loadSettings() {
	c, cancel := context.WithTimeout(context.Background(), g.deps.CallTimeout)
	defer cancel()
	data, err := g.deps.Store.LoadSettings(c, g.guildID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		g.log.Warn("load settings; will retry", "err", err)
		return
	default:
		var pb clusterpb.GuildSettings
		if err := proto.Unmarshal(data, &pb); err != nil {
			g.log.Warn("decode settings; using defaults", "err", err)
			break
		}
		s, err := music.NewSettings(pb.GetDjRoleId(), int(pb.GetDefaultVolume()), pb.GetAnnounceChannelId())
		if err != nil {
			g.log.Warn("stored settings invalid; using defaults", "err", err)
			break
		}
		g.settings = s
	}
	g.settingsLoaded = true
}

// Terminate does nothing: settings are stored when they change.
func (g *Grain) Terminate(cluster.GrainContext) {}

// ReceiveDefault handles deferral timers and session results.
func (g *Grain) ReceiveDefault(ctx cluster.GrainContext) {
	defer g.recoverPanic(nil)
	switch msg := ctx.Message().(type) {
	case deferNow:
		w := g.inFlight[msg.id]
		if w == nil || w.deferred {
			return
		}
		c, cancel := g.callCtx()
		defer cancel()
		if err := g.deps.Replier.Defer(c, w.in.GetId(), w.in.GetToken(), w.ephemeral); err != nil {
			g.log.Warn("defer interaction", "err", err, "command", w.in.GetName())
		}
		w.deferred = true
	case sessionDone:
		w := g.inFlight[msg.id]
		if w == nil {
			return
		}
		delete(g.inFlight, msg.id)
		reply := msg.reply.GetReply()
		if msg.err != nil {
			g.log.Warn("session call failed", "err", msg.err, "command", w.in.GetName())
			reply = commands.Error("Something went wrong while handling that; please try again.")
		}
		if reply == nil {
			reply = commands.Info("Done.")
		}
		if w.button {
			reply.Ephemeral = true
		}
		g.answer(w, reply)
	}
}

func (g *Grain) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.deps.CallTimeout)
}

// answer sends the reply: as the first response, or as an edit of the
// deferred one.
func (g *Grain) answer(w *work, r *clusterpb.Reply) {
	c, cancel := g.callCtx()
	defer cancel()
	var err error
	switch {
	case w.deferred && !w.ephemeral && r.GetEphemeral():
		// A public deferral cannot become ephemeral: replace the
		// "thinking" message with an ephemeral follow-up, so an error
		// stays between the bot and the user (DESIGN.md §1).
		if err = g.deps.Replier.DeleteOriginal(c, w.in.GetApplicationId(), w.in.GetToken()); err == nil {
			err = g.deps.Replier.Followup(c, w.in.GetApplicationId(), w.in.GetToken(), r)
		}
	case w.deferred:
		err = g.deps.Replier.EditOriginal(c, w.in.GetApplicationId(), w.in.GetToken(), r)
	default:
		err = g.deps.Replier.Respond(c, w.in.GetId(), w.in.GetToken(), r)
	}
	if err != nil {
		g.log.Warn("answer interaction", "err", err, "command", w.in.GetName(), "deferred", w.deferred)
	}
}

// reply answers at once (refusals, local commands), off the mailbox: a
// slow or rate-limited Discord must not delay this guild's other commands.
func (g *Grain) reply(in *clusterpb.Interaction, r *clusterpb.Reply) {
	replier, log, timeout := g.deps.Replier, g.log, g.deps.CallTimeout
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := replier.Respond(c, in.GetId(), in.GetToken(), r); err != nil {
			log.Warn("answer interaction", "err", err, "command", in.GetName())
		}
	}()
}

// Handle takes one interaction from the shard.
func (g *Grain) Handle(in *clusterpb.Interaction, _ cluster.GrainContext) (_ *clusterpb.HandleReply, err error) {
	defer g.recoverPanic(&err)
	if in.GetGuildId() != g.guildID {
		return nil, fmt.Errorf("interaction for guild %s sent to guild %s", in.GetGuildId(), g.guildID)
	}
	if !g.seen.add(in.GetId()) {
		return &clusterpb.HandleReply{}, nil // a retried delivery
	}
	if !g.settingsLoaded {
		g.loadSettings()
	}
	switch in.GetKind() {
	case clusterpb.InteractionKind_INTERACTION_KIND_AUTOCOMPLETE:
		g.autocomplete(in)
	case clusterpb.InteractionKind_INTERACTION_KIND_BUTTON:
		action, err := commands.ParseCustomID(in.GetName(), g.guildID)
		if err != nil {
			g.reply(in, commands.Error("That button is not valid here."))
			break
		}
		g.command(in, buttonCommand(action), true)
	case clusterpb.InteractionKind_INTERACTION_KIND_COMMAND:
		g.command(in, in.GetName(), false)
	default:
		g.reply(in, commands.Error("Unsupported interaction."))
	}
	return &clusterpb.HandleReply{}, nil
}

// buttonCommand maps a button's action to the session command it runs.
func buttonCommand(action string) string {
	switch action {
	case "pause_resume":
		return session.CommandPauseResume
	case "loop":
		return session.CommandLoopCycle
	case "autoplay":
		return session.CommandAutoplayToggle
	}
	return action
}

func (g *Grain) command(in *clusterpb.Interaction, name string, button bool) {
	action, ok := commands.ActionFor(name)
	if !ok {
		g.reply(in, commands.Error(fmt.Sprintf("Unknown command %q.", name)))
		return
	}
	inv := in.GetInvoker()
	member := music.Member{
		RoleIDs:           inv.GetRoleIds(),
		Permissions:       inv.GetPermissions(),
		VoiceChannelID:    inv.GetVoiceChannelId(),
		BotVoiceChannelID: in.GetBotVoiceChannelId(),
	}
	if err := music.Authorize(member, g.settings, action); err != nil {
		g.reply(in, commands.Error(err.Error()))
		return
	}
	if name != "settings" && len(g.inFlight) >= g.deps.MaxInFlight {
		g.reply(in, commands.Busy())
		return
	}
	now := g.deps.Now()
	if wait := g.cooldowns.take(inv.GetUserId()+"/"+name, now, g.deps.Cooldown); wait > 0 {
		g.reply(in, commands.Error(fmt.Sprintf("Slow down: you can use that again in %.1fs.", wait.Seconds())))
		return
	}
	if name == "settings" {
		g.settingsCommand(in)
		return
	}
	g.route(in, name, button)
}

// route sends the command to the session without blocking the mailbox,
// and arms the deferral for when the session is slower than the budget.
func (g *Grain) route(in *clusterpb.Interaction, name string, button bool) {
	req := &clusterpb.SessionRequest{
		GuildId:           g.guildID,
		Command:           name,
		Options:           in.GetOptions(),
		Invoker:           in.GetInvoker(),
		TextChannelId:     in.GetChannelId(),
		AnnounceChannelId: g.settings.AnnounceChannelID,
		DefaultVolume:     int32(g.settings.DefaultVolume),
		ReceivedUnixNano:  in.GetReceivedUnixNano(),
		RequestId:         in.GetId(),
	}
	// /play's answer is for everyone in the channel; other deferred
	// answers, and every button answer, are for the invoker (the
	// now-playing message shows the rest of the channel what changed).
	w := &work{in: in, ephemeral: name != "play" || button, button: button}
	g.inFlight[in.GetId()] = w

	received := time.Unix(0, in.GetReceivedUnixNano())
	if in.GetReceivedUnixNano() == 0 {
		received = g.deps.Now()
	}
	budget := g.deps.AnswerBudget - g.deps.Now().Sub(received)
	self, root := g.ctx.Self(), g.ctx.ActorSystem().Root
	if budget <= 0 {
		root.Send(self, deferNow{id: in.GetId()})
	} else {
		time.AfterFunc(budget, func() { root.Send(self, deferNow{id: in.GetId()}) })
	}
	sessions, timeout := g.deps.Sessions, g.deps.WorkTimeout
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		res, err := sessions.Execute(c, req)
		root.Send(self, sessionDone{id: in.GetId(), reply: res, err: err})
	}()
}

// autocomplete answers /play suggestions off the mailbox: a search per
// keystroke must not hold up this guild's commands.
func (g *Grain) autocomplete(in *clusterpb.Interaction) {
	var typed string
	for _, o := range in.GetOptions() {
		if o.GetFocused() {
			typed = o.GetValue()
		}
	}
	search, replier, log, timeout := g.deps.Search, g.deps.Replier, g.log, g.deps.CallTimeout
	go func() {
		var choices []*clusterpb.Choice
		if q, err := music.ValidateQuery(typed); err == nil && q.Search && search != nil {
			// Autocomplete must answer within the deadline or not at all.
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			loaded, err := search.Load(c, q.Identifier)
			cancel()
			if err == nil {
				for i, t := range loaded.Tracks {
					if i == 10 {
						break
					}
					name := t.Title
					if t.Author != "" {
						name = t.Author + " - " + t.Title
					}
					value := t.URI
					if value == "" {
						value = typed
					}
					choices = append(choices, &clusterpb.Choice{Name: name, Value: value})
				}
			}
		}
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := replier.Autocomplete(c, in.GetId(), in.GetToken(), choices); err != nil {
			log.Warn("autocomplete", "err", err)
		}
	}()
}

// recentIDs is a bounded set of the last IDs seen.
type recentIDs struct {
	order []string
	set   map[string]struct{}
	limit int
}

func newRecentIDs(limit int) *recentIDs {
	return &recentIDs{set: make(map[string]struct{}, limit), limit: limit}
}

// add reports whether id is new, remembering it.
func (r *recentIDs) add(id string) bool {
	if _, ok := r.set[id]; ok {
		return false
	}
	if len(r.order) == r.limit {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
	r.order = append(r.order, id)
	r.set[id] = struct{}{}
	return true
}

// recoverPanic, deferred by every handler, stops the activation on a
// panic; settings reload on the next activation.
func (g *Grain) recoverPanic(err *error) {
	if r := recover(); r != nil {
		ecluster.GrainPanicked(g.ctx, g.log, "guild "+g.guildID, r, err)
	}
}
