package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/trace"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

func errorReply(msg string) *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Reply: commands.Error(msg)}
}

func infoReply(msg string) *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Reply: commands.Info(msg)}
}

func nothingPlaying() *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Reply: commands.NothingPlaying()}
}

// done ends a command: its reply, and whether it changed the state (then
// the reply waits until the change is stored).
type done func(reply *clusterpb.SessionReply, changed bool)

// execute takes one command the guild grain allowed. Commands run one at
// a time; a refusal changes nothing; a change is stored before the reply
// says it happened.
func (g *Grain) execute(sender *actor.PID, req *clusterpb.SessionRequest) {
	if r := g.refusal(); r != nil {
		r.Active = true // unknown: the guild keeps asking the session
		g.respond(sender, r)
		return
	}
	// Reads (/queue, /nowplaying) change nothing: they are answered at
	// once, never behind a command that waits for the store or Lavalink.
	if c, ok := commands.Lookup(req.GetCommand()); ok && c.IdleAnswer {
		g.prelude(req)
		g.run(req, func(reply *clusterpb.SessionReply, _ bool) {
			reply.Active = !g.st.empty()
			reply.View = g.replyView(req)
			g.respond(sender, reply)
		})
		return
	}
	id := req.GetRequestId()
	if r, ok := g.replies.Get(id, g.clock(), replyBounds); ok {
		g.respond(sender, r)
		return
	}
	// The same request again while it runs or waits (a retried call
	// whose first attempt only timed out): one run, both answered.
	for _, c := range append([]*command{g.cmd}, g.cmds...) {
		if c != nil && id != "" && c.req.GetRequestId() == id {
			c.senders = append(c.senders, sender)
			return
		}
	}
	c := &command{req: req, senders: []*actor.PID{sender}}
	switch {
	case g.cmd == nil:
		g.start(c)
	case len(g.cmds) >= maxCommands:
		g.respond(sender, &clusterpb.SessionReply{Reply: commands.Busy(), Active: true})
	default:
		g.cmds = append(g.cmds, c)
	}
}

// start runs c; its continuation answers it and starts the next.
func (g *Grain) start(c *command) {
	g.cmd = c
	req := c.req
	g.prelude(req)
	g.run(req, func(reply *clusterpb.SessionReply, changed bool) {
		if !changed {
			g.finish(c, reply)
			return
		}
		g.save(func(stored bool) {
			if !stored && !g.fenced {
				reply.Reply.Content += "\n(Not saved yet: storage is unavailable; retrying.)"
			}
			g.finish(c, reply)
		})
	})
}

// prelude applies what every command brings: the channel of the
// now-playing message, and a new session's default volume.
func (g *Grain) prelude(req *clusterpb.SessionRequest) {
	switch announce := req.GetAnnounceChannelId(); {
	case announce != "" && announce != g.st.textChannelID:
		// The guild set (or changed) its announce channel: the
		// now-playing message moves there.
		g.st.textChannelID, g.st.nowPlayingID = announce, ""
		if g.st.current != nil {
			g.markNowPlaying()
		}
	case g.st.textChannelID == "" && req.GetTextChannelId() != "":
		g.st.textChannelID = req.GetTextChannelId()
	}
	if g.fresh {
		// A new session starts at the guild's default volume.
		g.fresh = false
		if v := int(req.GetDefaultVolume()); v > 0 && v <= int(music.MaxVolume) {
			g.st.volume = v
		}
	}
}

// finish answers c and starts the next waiting command.
func (g *Grain) finish(c *command, reply *clusterpb.SessionReply) {
	if g.cmd != c {
		return // answered already (the grain is stopping)
	}
	if r := g.refusal(); r != nil {
		reply = r
	}
	g.answer(c, reply)
	g.cmd = nil
	if g.stopped {
		return
	}
	g.updateIdle()
	if len(g.cmds) > 0 {
		next := g.cmds[0]
		g.cmds = g.cmds[1:]
		if len(g.cmds) == 0 {
			g.cmds = nil
		}
		g.start(next)
	}
}

// answer sends reply to every caller of c and caches it for repeats.
func (g *Grain) answer(c *command, reply *clusterpb.SessionReply) {
	reply.Active = g.fenced || g.failed != nil || g.st == nil || !g.st.empty()
	if g.refusal() == nil && !g.stopped {
		if id := c.req.GetRequestId(); id != "" {
			// Cached without the view: a repeat needs the answer, and a
			// view per cached reply would hold a copy of the queue each.
			cached := &clusterpb.SessionReply{Reply: reply.GetReply(), Choices: reply.GetChoices(), Active: reply.GetActive()}
			g.replies.Add(id, cached, g.clock(), replyBounds)
		}
	}
	reply.View = g.replyView(c.req)
	for _, s := range c.senders {
		g.respond(s, reply)
	}
}

// run executes one command and calls k with its outcome. The command's
// span, a child of the guild grain's, is the parent of the effects it
// starts.
func (g *Grain) run(req *clusterpb.SessionRequest, k done) {
	h, ok := handlers[commands.Name(req.GetCommand())]
	if !ok {
		k(&clusterpb.SessionReply{Reply: commands.UnknownCommand(req.GetCommand())}, false)
		return
	}
	if req.GetTraceparent() == "" {
		g.trace = trace.SpanContext{}
		h(g, req, k)
		return
	}
	_, span := g.deps.tracer().Start(telemetry.WithTraceparent(context.Background(), req.GetTraceparent()), "session "+req.GetCommand())
	g.trace = span.SpanContext()
	h(g, req, func(reply *clusterpb.SessionReply, changed bool) {
		span.End()
		k(reply, changed)
	})
}

// handler runs one command of the table and calls k with its outcome.
type handler func(g *Grain, req *clusterpb.SessionRequest, k done)

// handlers are the session's handlers of the command table
// (internal/commands): one for each commands.InSession command, which
// TestHandlersMatchTheTable checks both ways.
var handlers = map[commands.Name]handler{
	commands.CmdPlay:           (*Grain).play,
	commands.CmdPause:          func(g *Grain, _ *clusterpb.SessionRequest, k done) { g.pause(pauseOn, k) },
	commands.CmdResume:         func(g *Grain, _ *clusterpb.SessionRequest, k done) { g.pause(pauseOff, k) },
	commands.CmdPauseResume:    func(g *Grain, _ *clusterpb.SessionRequest, k done) { g.pause(pauseToggle, k) },
	commands.CmdSkip:           (*Grain).skipCommand,
	commands.CmdStop:           (*Grain).stopCommand,
	commands.CmdQueue:          (*Grain).queueCommand,
	commands.CmdNowPlaying:     (*Grain).nowPlayingCommand,
	commands.CmdVolume:         (*Grain).volumeCommand,
	commands.CmdLoop:           (*Grain).loopCommand,
	commands.CmdLoopCycle:      (*Grain).loopCycle,
	commands.CmdAutoplay:       (*Grain).autoplayCommand,
	commands.CmdAutoplayToggle: (*Grain).autoplayToggle,
	commands.CmdShuffle:        (*Grain).shuffleCommand,
	commands.CmdRemove:         (*Grain).removeCommand,
	commands.CmdMove:           (*Grain).moveCommand,
	commands.CmdSeek:           (*Grain).seekCommand,
	commands.CmdClear:          (*Grain).clearCommand,
	commands.CmdLeave:          (*Grain).leaveCommand,
}

func (g *Grain) skipCommand(req *clusterpb.SessionRequest, k done) {
	st := g.st
	n, err := commands.ParseSkip(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	if st.current == nil {
		k(nothingPlaying(), false)
		return
	}
	skipped := st.current.Title
	next, ok, err := st.queue.Skip(st.current, n, st.modes.Loop)
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.moveTo(next, ok)
	if n == 1 {
		k(infoReply(fmt.Sprintf("Skipped **%s**.", commands.Escape(skipped))), true)
		return
	}
	k(infoReply(fmt.Sprintf("Skipped %d tracks.", n)), true)
}

func (g *Grain) stopCommand(_ *clusterpb.SessionRequest, k done) {
	st := g.st
	// A pick autoplay is waiting to make counts as playing: /stop cancels
	// it.
	if st.current == nil && st.queue.Len() == 0 && !g.autoplayPending {
		k(nothingPlaying(), false)
		return
	}
	st.queue.Clear()
	st.current = nil
	g.moveTo(music.Track{}, false)
	k(infoReply("Stopped and cleared the queue."), true)
}

func (g *Grain) queueCommand(req *clusterpb.SessionRequest, k done) {
	k(&clusterpb.SessionReply{Reply: commands.QueueAnswer(g.st.queue, g.st.current, req.GetOptions())}, false)
}

func (g *Grain) nowPlayingCommand(_ *clusterpb.SessionRequest, k done) {
	if g.st.current == nil {
		k(nothingPlaying(), false)
		return
	}
	r := commands.NowPlaying(g.view())
	r.Ephemeral = true
	k(&clusterpb.SessionReply{Reply: r}, false)
}

func (g *Grain) volumeCommand(req *clusterpb.SessionRequest, k done) {
	v, err := commands.ParseVolume(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.volume(int(v), k)
}

func (g *Grain) loopCommand(req *clusterpb.SessionRequest, k done) {
	mode, err := commands.ParseLoop(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.setLoop(mode, k)
}

func (g *Grain) loopCycle(_ *clusterpb.SessionRequest, k done) {
	g.setLoop(g.st.modes.Loop.Cycle(), k)
}

func (g *Grain) setLoop(mode music.LoopMode, k done) {
	if err := g.st.modes.SetLoop(mode); err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.markNowPlaying()
	k(infoReply(fmt.Sprintf("Loop: %s.", mode)), true)
}

func (g *Grain) autoplayCommand(req *clusterpb.SessionRequest, k done) {
	on, err := commands.ParseAutoplay(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.setAutoplay(on, k)
}

func (g *Grain) autoplayToggle(_ *clusterpb.SessionRequest, k done) {
	g.setAutoplay(!g.st.modes.Autoplay, k)
}

func (g *Grain) setAutoplay(on bool, k done) {
	if err := g.st.modes.SetAutoplay(on); err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.markNowPlaying()
	if on {
		k(infoReply("Autoplay on."), true)
		return
	}
	k(infoReply("Autoplay off."), true)
}

func (g *Grain) shuffleCommand(_ *clusterpb.SessionRequest, k done) {
	st := g.st
	if st.queue.Len() < 2 {
		k(errorReply("There must be at least two tracks in the queue to shuffle."), false)
		return
	}
	st.queue.Shuffle(g.deps.Rand)
	g.markNowPlaying()
	k(infoReply(fmt.Sprintf("Shuffled %d tracks.", st.queue.Len())), true)
}

func (g *Grain) removeCommand(req *clusterpb.SessionRequest, k done) {
	pos, err := commands.ParseRemove(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	t, err := g.st.queue.Remove(pos)
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.markNowPlaying()
	k(infoReply(fmt.Sprintf("Removed **%s**.", commands.Escape(t.Title))), true)
}

func (g *Grain) moveCommand(req *clusterpb.SessionRequest, k done) {
	from, to, err := commands.ParseMove(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	t, err := g.st.queue.Move(from, to)
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.markNowPlaying()
	k(infoReply(fmt.Sprintf("Moved **%s** to position %d.", commands.Escape(t.Title), to)), true)
}

func (g *Grain) seekCommand(req *clusterpb.SessionRequest, k done) {
	pos, err := commands.ParseSeek(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	g.seek(pos, k)
}

func (g *Grain) clearCommand(_ *clusterpb.SessionRequest, k done) {
	n := g.st.queue.Clear()
	g.markNowPlaying()
	k(infoReply(fmt.Sprintf("Cleared %d tracks from the queue.", n)), n > 0)
}

func (g *Grain) leaveCommand(_ *clusterpb.SessionRequest, k done) {
	st := g.st
	if st.voice.ChannelID == "" && st.current == nil {
		k(errorReply("I'm not in a voice channel."), false)
		return
	}
	g.leave()
	// leave cleared the state; the save deletes the (now empty) snapshot
	// before the user is told.
	k(infoReply("Left the voice channel and cleared the queue."), true)
}

// audioCall runs an Audio call that a command's answer depends on, and
// calls then with its error back on the grain.
func (g *Grain) audioCall(call func(ctx context.Context, a Audio, guild string) error, then func(error)) {
	a, guild := g.deps.Audio, g.guildID
	g.do(laneAudio, func(c context.Context) any { return call(c, a, guild) }, func(res any) {
		err, _ := res.(error)
		then(err)
	})
}

// pauseWant is what a pause command asks for.
type pauseWant uint8

const (
	pauseOn pauseWant = iota
	pauseOff
	pauseToggle
)

// pause pauses or resumes. The state changes at once, so that whatever
// follows (a track that ends meanwhile, a move) carries it; if Lavalink
// refuses, it is put back, as long as nobody changed it since.
func (g *Grain) pause(want pauseWant, k done) {
	st := g.st
	if st.current == nil {
		k(nothingPlaying(), false)
		return
	}
	pause := want == pauseOn || (want == pauseToggle && !st.paused)
	if pause == st.paused {
		if pause {
			k(errorReply("Already paused."), false)
			return
		}
		k(errorReply("Already playing."), false)
		return
	}
	now := g.deps.Now()
	oldPos, oldAt := st.position, st.positionAt
	st.position, st.positionAt = st.positionNow(now), now
	st.paused = pause
	g.audioCall(func(c context.Context, a Audio, guild string) error { return a.Pause(c, guild, pause) }, func(err error) {
		if err != nil {
			if st.paused == pause {
				st.paused, st.position, st.positionAt = !pause, oldPos, oldAt
			}
			k(audioError(err), false)
			return
		}
		g.markNowPlaying()
		if pause {
			k(infoReply("Paused."), true)
			return
		}
		k(infoReply("Resumed."), true)
	})
}

// volume sets the volume, on the player too when one plays.
func (g *Grain) volume(v int, k done) {
	st := g.st
	old := st.volume
	st.volume = v
	ok := func() {
		g.markNowPlaying()
		k(infoReply(fmt.Sprintf("Volume set to %d%%.", v)), true)
	}
	if st.current == nil {
		ok()
		return
	}
	g.audioCall(func(c context.Context, a Audio, guild string) error { return a.Volume(c, guild, v) }, func(err error) {
		if err != nil {
			if st.volume == v {
				st.volume = old
			}
			k(audioError(err), false)
			return
		}
		ok()
	})
}

// seek moves the current track.
func (g *Grain) seek(pos time.Duration, k done) {
	st := g.st
	if st.current == nil {
		k(nothingPlaying(), false)
		return
	}
	if err := music.ValidateSeek(*st.current, pos); err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	play := g.playID
	oldPos, oldAt := st.position, st.positionAt
	st.position, st.positionAt = pos, g.deps.Now()
	g.audioCall(func(c context.Context, a Audio, guild string) error { return a.Seek(c, guild, pos) }, func(err error) {
		if err != nil {
			if g.playID == play && st.position == pos {
				st.position, st.positionAt = oldPos, oldAt
			}
			k(audioError(err), false)
			return
		}
		g.markNowPlaying()
		k(infoReply(fmt.Sprintf("Seeked to %s.", music.FormatDuration(pos))), true)
	})
}

// play loads the query, joins the member's channel if needed, queues the
// result and starts playing when idle. The search and the join run off
// the mailbox; each step checks the state as it is when it resumes.
func (g *Grain) play(req *clusterpb.SessionRequest, k done) {
	args, err := commands.ParsePlay(req.GetOptions())
	if err != nil {
		k(errorReply(err.Error()), false)
		return
	}
	if r := g.voiceRefusal(req); r != nil {
		k(r, false)
		return
	}
	a, identifier := g.deps.Audio, args.Query.Identifier
	type loadResult struct {
		loaded audio.Loaded
		err    error
	}
	g.do(laneSearch, func(c context.Context) any {
		l, err := a.Load(c, identifier)
		return loadResult{l, err}
	}, func(res any) {
		r := res.(loadResult)
		switch {
		case r.err != nil:
			k(audioError(r.err), false)
		case len(r.loaded.Tracks) == 0:
			k(errorReply(noResults(args.Query)), false)
		default:
			g.join(req, func(reply *clusterpb.SessionReply) {
				if reply != nil {
					k(reply, false)
					return
				}
				g.enqueue(req, args, r.loaded, k)
			})
		}
	})
}

// voiceRefusal is the reply when the member cannot add music from where
// they are.
func (g *Grain) voiceRefusal(req *clusterpb.SessionRequest) *clusterpb.SessionReply {
	member, bot := req.GetInvoker().GetVoiceChannelId(), g.st.voice.ChannelID
	switch {
	case bot == "" && member == "":
		return errorReply("Join a voice channel first, then use /play.")
	case bot != "" && member != bot:
		return errorReply(fmt.Sprintf("I'm playing in <#%s>: join that channel to add music.", bot))
	}
	return nil
}

// join asks the shard to join the member's channel unless the bot is in
// voice already, and calls then with nil once it may queue, or with the
// refusal. Nothing changes before the join succeeded: a failed join must
// change nothing.
func (g *Grain) join(req *clusterpb.SessionRequest, then func(*clusterpb.SessionReply)) {
	if r := g.voiceRefusal(req); r != nil {
		then(r) // the bot joined elsewhere meanwhile
		return
	}
	if g.st.queue.Remaining() == 0 {
		then(errorReply(fmt.Sprintf("The queue is full (%d tracks); remove some or wait.", g.st.queue.Max())))
		return
	}
	if g.st.voice.ChannelID != "" {
		then(nil)
		return
	}
	member, gw, guild, log := req.GetInvoker().GetVoiceChannelId(), g.deps.Gateway, g.guildID, g.log
	g.do(laneGateway, func(c context.Context) any { return gw.UpdateVoice(c, guild, member) }, func(res any) {
		if err, _ := res.(error); err != nil {
			log.Warn("join voice", "err", err)
			then(errorReply("I couldn't join your voice channel; please try again."))
			return
		}
		if g.st.voice.ChannelID == "" {
			g.st.voice = audio.Voice{ChannelID: member}
			g.voiceGen++
			g.after(g.deps.VoiceTimeout, voiceDeadline{gen: g.voiceGen})
		}
		then(nil)
	})
}

// enqueue queues what /play loaded and starts it when nothing plays.
func (g *Grain) enqueue(req *clusterpb.SessionRequest, args commands.PlayArgs, loaded audio.Loaded, k done) {
	st := g.st
	tracks := loaded.Tracks
	if loaded.Search || loaded.Playlist == "" {
		tracks = tracks[:1]
	}
	for i := range tracks {
		tracks[i].RequesterID = req.GetInvoker().GetUserId()
	}
	var added int
	var err error
	if args.Next {
		added, err = st.queue.InsertNextAll(tracks)
	} else {
		added, err = st.queue.AppendAll(tracks)
	}
	if added == 0 {
		if err == nil {
			err = errors.New("nothing could be queued")
		}
		k(errorReply(err.Error()), true)
		return
	}
	position := 1
	if !args.Next {
		position = st.queue.Len() - added + 1
	}
	started := st.current == nil
	if started {
		// Whatever is at the head plays now: the new track, or one that
		// was already waiting (requeued when the bot was disconnected).
		next, _ := st.queue.Pop()
		g.startTrack(next)
		position--
	}
	g.markNowPlaying()
	switch {
	case loaded.Playlist != "" && len(tracks) > 1:
		k(&clusterpb.SessionReply{Reply: commands.AddedPlaylist(loaded.Playlist, added, len(tracks)-added)}, true)
	case started && position == 0:
		k(&clusterpb.SessionReply{Reply: commands.Added(*st.current, 0)}, true)
	default:
		k(&clusterpb.SessionReply{Reply: commands.Added(tracks[0], position)}, true)
	}
}

// audioError says what went wrong in the user's terms: the server's own
// reason when it gave one, and "did not answer" only when it did not.
func audioError(err error) *clusterpb.SessionReply {
	var lf *audio.LoadFailedError
	switch {
	case errors.As(err, &lf):
		return errorReply(fmt.Sprintf("Couldn't load that track: %s", commands.Escape(reason(lf.Message))))
	case errors.Is(err, audio.ErrNoNode):
		return errorReply("No audio node is available right now; please try again in a moment.")
	case errors.Is(err, audio.ErrRefused):
		return errorReply("The audio server couldn't do that right now; please try again.")
	}
	return errorReply("The audio server did not answer; please try again.")
}

// noResults names what was searched for (without a search prefix), so the
// user sees which query found nothing.
func noResults(q music.Query) string {
	what := q.Identifier
	if q.Search {
		if _, rest, ok := strings.Cut(what, ":"); ok {
			what = rest
		}
	}
	return fmt.Sprintf("No results for “%s”.", commands.Escape(what))
}

// reason is a server's message for a reply (Escape keeps it to one
// bounded line).
func reason(s string) string {
	if strings.TrimSpace(s) == "" {
		return "no reason given"
	}
	return s
}
