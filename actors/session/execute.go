package session

import (
	"errors"
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
	"github.com/ensemble-bot/ensemble/internal/music"
)

// Commands the session serves besides the slash commands: the buttons
// that toggle or cycle a mode.
const (
	CommandPauseResume    = "pause_resume"
	CommandLoopCycle      = "loop_cycle"
	CommandAutoplayToggle = "autoplay_toggle"
)

func errorReply(msg string) *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Reply: commands.Error(msg)}
}

func infoReply(msg string) *clusterpb.SessionReply {
	return &clusterpb.SessionReply{Reply: commands.Info(msg)}
}

// Execute runs one command the guild grain allowed. A refusal changes
// nothing; a change is stored before the reply says it happened.
func (g *Grain) Execute(req *clusterpb.SessionRequest, _ cluster.GrainContext) (_ *clusterpb.SessionReply, err error) {
	defer g.recoverPanic(&err)
	if r := g.refusal(); r != nil {
		r.Active = true // unknown: the guild keeps asking the session
		return r, nil
	}
	if r, ok := g.replies.get(req.GetRequestId()); ok {
		return r, nil
	}
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
	reply, changed := g.execute(req)
	if changed {
		if !g.save() && g.fenced {
			r := g.refusal()
			r.Active = true
			return r, nil
		}
		if g.unsaved {
			reply.Reply.Content += "\n(Not saved yet: storage is unavailable; retrying.)"
		}
	}
	reply.Active = !g.st.empty()
	g.replies.put(req.GetRequestId(), reply)
	g.updateIdle()
	return reply, nil
}

// execute returns the reply and whether state changed.
func (g *Grain) execute(req *clusterpb.SessionRequest) (*clusterpb.SessionReply, bool) {
	st := g.st
	opts := req.GetOptions()
	switch req.GetCommand() {
	case "play":
		return g.play(req)
	case "pause", "resume", CommandPauseResume:
		if st.current == nil {
			return errorReply("Nothing is playing."), false
		}
		pause := req.GetCommand() == "pause" || (req.GetCommand() == CommandPauseResume && !st.paused)
		if pause == st.paused {
			if pause {
				return errorReply("Already paused."), false
			}
			return errorReply("Already playing."), false
		}
		now := g.deps.Now()
		st.position, st.positionAt = st.positionNow(now), now
		c, cancel := g.callCtx()
		defer cancel()
		if err := g.deps.Audio.Pause(c, g.guildID, pause); err != nil {
			return audioError(err), false
		}
		st.paused = pause
		g.markNowPlaying()
		if pause {
			return infoReply("Paused."), true
		}
		return infoReply("Resumed."), true
	case "skip":
		n, err := commands.ParseSkip(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		if st.current == nil {
			return errorReply("Nothing is playing."), false
		}
		skipped := st.current.Title
		next, ok, err := st.queue.Skip(st.current, n, st.modes.Loop)
		if err != nil {
			return errorReply(err.Error()), false
		}
		g.moveTo(next, ok)
		if n == 1 {
			return infoReply(fmt.Sprintf("Skipped **%s**.", commands.Escape(skipped))), true
		}
		return infoReply(fmt.Sprintf("Skipped %d tracks.", n)), true
	case "stop":
		// A pick autoplay is waiting to make counts as playing: /stop
		// cancels it.
		if st.current == nil && st.queue.Len() == 0 && !g.autoplayPending {
			return errorReply("Nothing is playing."), false
		}
		st.queue.Clear()
		st.current = nil
		g.moveTo(music.Track{}, false)
		return infoReply("Stopped and cleared the queue."), true
	case "queue":
		page, err := commands.ParseQueuePage(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		p, err := st.queue.Page(page, 10)
		if err != nil {
			return errorReply(err.Error()), false
		}
		return &clusterpb.SessionReply{Reply: commands.QueuePage(p, st.current)}, false
	case "nowplaying":
		if st.current == nil {
			return errorReply("Nothing is playing."), false
		}
		r := commands.NowPlaying(g.view())
		r.Ephemeral = true
		return &clusterpb.SessionReply{Reply: r}, false
	case "volume":
		v, err := commands.ParseVolume(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		if st.current != nil {
			c, cancel := g.callCtx()
			defer cancel()
			if err := g.deps.Audio.Volume(c, g.guildID, int(v)); err != nil {
				return audioError(err), false
			}
		}
		st.volume = int(v)
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Volume set to %d%%.", v)), true
	case "loop", CommandLoopCycle:
		mode := st.modes.Loop.Cycle()
		if req.GetCommand() == "loop" {
			m, err := commands.ParseLoop(opts)
			if err != nil {
				return errorReply(err.Error()), false
			}
			mode = m
		}
		if err := st.modes.SetLoop(mode); err != nil {
			return errorReply(err.Error()), false
		}
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Loop: %s.", mode)), true
	case "autoplay", CommandAutoplayToggle:
		on := !st.modes.Autoplay
		if req.GetCommand() == "autoplay" {
			v, err := commands.ParseAutoplay(opts)
			if err != nil {
				return errorReply(err.Error()), false
			}
			on = v
		}
		if err := st.modes.SetAutoplay(on); err != nil {
			return errorReply(err.Error()), false
		}
		g.markNowPlaying()
		if on {
			return infoReply("Autoplay on."), true
		}
		return infoReply("Autoplay off."), true
	case "shuffle":
		if st.queue.Len() < 2 {
			return errorReply("There must be at least two tracks in the queue to shuffle."), false
		}
		st.queue.Shuffle(g.deps.Rand)
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Shuffled %d tracks.", st.queue.Len())), true
	case "remove":
		pos, err := commands.ParseRemove(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		t, err := st.queue.Remove(pos)
		if err != nil {
			return errorReply(err.Error()), false
		}
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Removed **%s**.", commands.Escape(t.Title))), true
	case "move":
		from, to, err := commands.ParseMove(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		t, err := st.queue.Move(from, to)
		if err != nil {
			return errorReply(err.Error()), false
		}
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Moved **%s** to position %d.", commands.Escape(t.Title), to)), true
	case "seek":
		pos, err := commands.ParseSeek(opts)
		if err != nil {
			return errorReply(err.Error()), false
		}
		if st.current == nil {
			return errorReply("Nothing is playing."), false
		}
		if err := music.ValidateSeek(*st.current, pos); err != nil {
			return errorReply(err.Error()), false
		}
		c, cancel := g.callCtx()
		defer cancel()
		if err := g.deps.Audio.Seek(c, g.guildID, pos); err != nil {
			return audioError(err), false
		}
		st.position, st.positionAt = pos, g.deps.Now()
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Seeked to %s.", music.FormatDuration(pos))), true
	case "clear":
		n := st.queue.Clear()
		g.markNowPlaying()
		return infoReply(fmt.Sprintf("Cleared %d tracks from the queue.", n)), n > 0
	case "leave":
		if st.voice.ChannelID == "" && st.current == nil {
			return errorReply("I'm not in a voice channel."), false
		}
		g.leave()
		// leave cleared the state; Execute stores it (an empty session
		// deletes its snapshot) before the user is told.
		return infoReply("Left the voice channel and cleared the queue."), true
	}
	return errorReply(fmt.Sprintf("Unknown command %q.", req.GetCommand())), false
}

// play loads the query, queues the result, joins the member's channel if
// needed and starts playing when idle.
func (g *Grain) play(req *clusterpb.SessionRequest) (*clusterpb.SessionReply, bool) {
	st := g.st
	args, err := commands.ParsePlay(req.GetOptions())
	if err != nil {
		return errorReply(err.Error()), false
	}
	member := req.GetInvoker().GetVoiceChannelId()
	switch {
	case st.voice.ChannelID == "" && member == "":
		return errorReply("Join a voice channel first, then use /play."), false
	case st.voice.ChannelID != "" && member != st.voice.ChannelID:
		return errorReply(fmt.Sprintf("I'm playing in <#%s>: join that channel to add music.", st.voice.ChannelID)), false
	}
	c, cancel := g.callCtx()
	defer cancel()
	loaded, err := g.deps.Audio.Load(c, args.Query.Identifier)
	if err != nil {
		return audioError(err), false
	}
	tracks := loaded.Tracks
	if len(tracks) == 0 {
		return errorReply(noResults(args.Query)), false
	}
	if loaded.Search || loaded.Playlist == "" {
		tracks = tracks[:1]
	}
	for i := range tracks {
		tracks[i].RequesterID = req.GetInvoker().GetUserId()
	}
	if st.queue.Remaining() == 0 {
		return errorReply(fmt.Sprintf("The queue is full (%d tracks); remove some or wait.", st.queue.Max())), false
	}
	// Join before touching the queue: a failed join must change nothing.
	if st.voice.ChannelID == "" {
		if err := g.deps.Gateway.UpdateVoice(c, g.guildID, member); err != nil {
			g.log.Warn("join voice", "err", err)
			return errorReply("I couldn't join your voice channel; please try again."), false
		}
		st.voice = Voice{ChannelID: member}
		g.voiceGen++
		g.after(g.deps.VoiceTimeout, voiceDeadline{gen: g.voiceGen})
	}
	var added int
	if args.Next {
		added, err = st.queue.InsertNextAll(tracks)
	} else {
		added, err = st.queue.AppendAll(tracks)
	}
	if added == 0 {
		if err == nil {
			err = errors.New("nothing could be queued")
		}
		return errorReply(err.Error()), true
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
		_ = g.startTrack(next)
		position--
	}
	g.markNowPlaying()
	if loaded.Playlist != "" && len(tracks) > 1 {
		return &clusterpb.SessionReply{Reply: commands.AddedPlaylist(loaded.Playlist, added, len(tracks)-added)}, true
	}
	if started && position == 0 {
		return &clusterpb.SessionReply{Reply: commands.Added(*st.current, 0)}, true
	}
	return &clusterpb.SessionReply{Reply: commands.Added(tracks[0], position)}, true
}

// audioError says what went wrong in the user's terms: the server's own
// reason when it gave one, and "did not answer" only when it did not.
func audioError(err error) *clusterpb.SessionReply {
	var lf *LoadFailedError
	switch {
	case errors.As(err, &lf):
		return errorReply(fmt.Sprintf("Couldn't load that track: %s", commands.Escape(reason(lf.Message))))
	case errors.Is(err, ErrNoAudioNode):
		return errorReply("No audio node is available right now; please try again in a moment.")
	case errors.Is(err, ErrAudioRefused):
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
