package discordemu

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// LoadGuild is a guild built for load runs: a text channel where commands are invoked and
// a voice channel every member is already in, so a command that joins voice can.
type LoadGuild struct {
	ID      Snowflake   `json:"id"`
	Text    Snowflake   `json:"text"`
	Voice   Snowflake   `json:"voice"`
	Members []Snowflake `json:"members"`
}

// AddLoadGuilds adds n guilds, spread over Config.Shards round robin, each with a text
// channel, a voice channel and the given number of members (at least 1) sitting in it.
func (e *Emulator) AddLoadGuilds(n, members int) ([]LoadGuild, error) {
	if n < 0 {
		return nil, fmt.Errorf("discordemu: %d load guilds", n)
	}
	members = max(members, 1)
	out := make([]LoadGuild, 0, n)
	for i := range n {
		lg := LoadGuild{ID: SnowflakeForShard(i%e.cfg.Shards, e.cfg.Shards), Text: NewSnowflake(), Voice: NewSnowflake()}
		g := Guild{ID: lg.ID, Name: "load-" + strconv.Itoa(i), Channels: []Channel{
			{ID: lg.Text, Name: "music", Type: ChannelText},
			{ID: lg.Voice, Name: "Lounge", Type: ChannelVoice},
		}}
		for j := range members {
			u := NewSnowflake()
			lg.Members = append(lg.Members, u)
			g.Members = append(g.Members, Member{User: User{ID: u, Username: "listener" + strconv.Itoa(i) + "-" + strconv.Itoa(j)}})
			g.VoiceStates = append(g.VoiceStates, VoiceState{UserID: u, ChannelID: lg.Voice})
		}
		if err := e.AddGuild(g); err != nil {
			return out, fmt.Errorf("discordemu: load guild %d: %w", i, err)
		}
		out = append(out, lg)
	}
	return out, nil
}

// LoadCommand is one slash command of a load mix, drawn with probability Weight/ΣWeight.
type LoadCommand struct {
	Name    string       `json:"name"`
	Weight  int          `json:"weight"`
	Options []LoadOption `json:"options,omitempty"`
}

// LoadOption is an option of a LoadCommand; each interaction carries one of Values, drawn
// at random (so that, say, searches are not all the same query).
type LoadOption struct {
	Name   string `json:"name"`
	Type   int    `json:"type"`
	Values []any  `json:"values"`
}

// LoadSpec describes an open-loop load: interactions are sent on a fixed schedule whether
// or not the bot keeps up, as users do not wait for each other.
type LoadSpec struct {
	// Rate is the number of interactions per second.
	Rate float64 `json:"rate"`
	// Duration of the sending; the run then waits for the last answers.
	Duration time.Duration `json:"duration"`
	// Count, when positive, sends exactly Count interactions (at Rate) instead.
	Count int `json:"count,omitempty"`
	// Mix is the commands to send.
	Mix []LoadCommand `json:"mix"`
	// Sequential takes the guilds in order, round robin, instead of at random (one
	// command per guild: Count = len(guilds)).
	Sequential bool `json:"sequential,omitempty"`
	// Seed makes the draws (guild, member, command, option values) reproducible.
	Seed uint64 `json:"seed,omitempty"`
	// Grace is how long past the interaction deadline the run waits, so an answer that
	// was on its way is seen (and counted late) rather than missed. Default 500 ms.
	Grace time.Duration `json:"grace,omitempty"`
}

// Bounds on one load run: a typo must not start an endless load.
const (
	maxLoadRate         = 100000
	maxLoadDuration     = time.Hour
	maxLoadInteractions = 10_000_000
	maxRecordedContent  = 200
)

// LoadRecord is what happened to one interaction of a load run.
type LoadRecord struct {
	Command string `json:"command"`
	// Guild is the index of the guild in the list the run was given.
	Guild int `json:"guild"`
	// SentUS is when the write of INTERACTION_CREATE to the bot's socket began, in µs
	// after the run started (-1 if it never was).
	SentUS int64 `json:"sent_us"`
	// WriteDelayUS is how long INTERACTION_CREATE waited in the emulator between its
	// creation and its write to the socket (-1 if never written): the latency clock starts
	// at the write, so a long wait here is time a user waited that LatencyUS leaves out.
	WriteDelayUS int64 `json:"write_delay_us"`
	// LatencyUS is the initial response's Response.Latency in µs, -1 if none came
	// within the deadline.
	LatencyUS int64 `json:"latency_us"`
	// Type and Flags of the initial response (0 if none).
	Type  int `json:"type,omitempty"`
	Flags int `json:"flags,omitempty"`
	// Content is the start of the response's content (at most 200 bytes).
	Content string `json:"content,omitempty"`
	// Late is set when the bot answered after the deadline (refused, as on Discord).
	Late bool `json:"late,omitempty"`
}

// LoadResult is the outcome of RunLoad.
type LoadResult struct {
	Started time.Time `json:"started"`
	// SendDuration is how long sending took; MaxSendLag how far behind its schedule the
	// sender ever was (a busy emulator process, not the bot, makes it grow).
	SendDuration time.Duration `json:"send_duration"`
	MaxSendLag   time.Duration `json:"max_send_lag"`
	// SendErrors counts interactions that could not be dispatched (no gateway session),
	// with the first error.
	SendErrors int    `json:"send_errors,omitempty"`
	FirstError string `json:"first_error,omitempty"`
	// Disconnects counts gateway connections dropped during the run because the bot did
	// not read fast enough (Config.GatewayQueue).
	Disconnects int          `json:"disconnects,omitempty"`
	Records     []LoadRecord `json:"records"`
}

func (s *LoadSpec) count(guilds int) (int, error) {
	switch {
	case s.Rate <= 0 || s.Rate > maxLoadRate:
		return 0, fmt.Errorf("discordemu: load rate %v/s out of (0, %d]", s.Rate, maxLoadRate)
	case len(s.Mix) == 0:
		return 0, errors.New("discordemu: empty load mix")
	case guilds == 0:
		return 0, errors.New("discordemu: no guilds to load")
	}
	n := s.Count
	if n <= 0 {
		if s.Duration <= 0 || s.Duration > maxLoadDuration {
			return 0, fmt.Errorf("discordemu: load duration %v out of (0, %v]", s.Duration, maxLoadDuration)
		}
		n = int(s.Rate * s.Duration.Seconds())
	}
	if n < 1 || n > maxLoadInteractions {
		return 0, fmt.Errorf("discordemu: %d interactions out of [1, %d]", n, maxLoadInteractions)
	}
	for _, c := range s.Mix {
		if c.Weight <= 0 {
			return 0, fmt.Errorf("discordemu: /%s has weight %d", c.Name, c.Weight)
		}
		for _, o := range c.Options {
			if len(o.Values) == 0 {
				return 0, fmt.Errorf("discordemu: /%s option %q has no values", c.Name, o.Name)
			}
		}
	}
	return n, nil
}

// RunLoad invokes the mix's commands on the guilds at spec.Rate, from their members, in
// their text channels, then waits until each interaction is answered or its deadline
// (plus spec.Grace) has passed, and reports each one. Every command of the mix must be
// registered. It returns early with ctx's error.
func (e *Emulator) RunLoad(ctx context.Context, guilds []LoadGuild, spec LoadSpec) (LoadResult, error) {
	n, err := spec.count(len(guilds))
	if err != nil {
		return LoadResult{}, err
	}
	if spec.Grace <= 0 {
		spec.Grace = 500 * time.Millisecond
	}
	e.mu.Lock()
	for _, c := range spec.Mix {
		if e.findCommandLocked(guilds[0].ID, c.Name) == nil {
			e.mu.Unlock()
			return LoadResult{}, fmt.Errorf("%w: /%s", ErrNoCommand, c.Name)
		}
	}
	e.mu.Unlock()
	total := 0
	for _, c := range spec.Mix {
		total += c.Weight
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))

	type sent struct {
		ix    *Interaction
		cmd   string
		guild int
	}
	ixs := make([]sent, 0, n)
	res := LoadResult{Started: time.Now()}
	disconnects := e.SlowDisconnects()
	interval := float64(time.Second) / spec.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	opts := make([]Option, 0, 4)
	for i := range n {
		due := res.Started.Add(time.Duration(float64(i) * interval))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.MaxSendLag = max(res.MaxSendLag, time.Since(due))
		gi := i % len(guilds)
		if !spec.Sequential {
			gi = rng.IntN(len(guilds))
		}
		g := guilds[gi]
		cmd := pickCommand(spec.Mix, rng.IntN(total))
		opts = opts[:0]
		for _, o := range cmd.Options {
			opts = append(opts, Option{Name: o.Name, Type: o.Type, Value: o.Values[rng.IntN(len(o.Values))]})
		}
		ix, err := e.InvokeCommand(g.ID, g.Members[rng.IntN(len(g.Members))], g.Text, cmd.Name, opts...)
		if err != nil {
			if res.SendErrors == 0 {
				res.FirstError = err.Error()
			}
			res.SendErrors++
			continue
		}
		ixs = append(ixs, sent{ix, cmd.Name, gi})
	}
	res.SendDuration = time.Since(res.Started)

	deadline := e.cfg.InteractionDeadline + spec.Grace
	for _, s := range ixs {
		wctx, cancel := context.WithDeadline(ctx, s.ix.Created.Add(deadline))
		_, _ = s.ix.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}

	res.Records = make([]LoadRecord, 0, len(ixs))
	e.mu.Lock()
	defer e.mu.Unlock()
	res.Disconnects = e.slowDisconnects - disconnects
	for _, s := range ixs {
		ix := s.ix
		r := LoadRecord{Command: s.cmd, Guild: s.guild, SentUS: -1, WriteDelayUS: -1, LatencyUS: -1, Late: ix.late}
		if !ix.sentAt.IsZero() {
			r.SentUS = ix.sentAt.Sub(res.Started).Microseconds()
			r.WriteDelayUS = ix.sentAt.Sub(ix.Created).Microseconds()
		}
		if resp := ix.response; resp != nil {
			r.LatencyUS = resp.Latency.Microseconds()
			r.Type, r.Flags, r.Content = resp.Type, resp.Flags, truncateUTF8(resp.Content, maxRecordedContent)
		}
		res.Records = append(res.Records, r)
	}
	return res, nil
}

func pickCommand(mix []LoadCommand, r int) LoadCommand {
	for _, c := range mix {
		if r < c.Weight {
			return c
		}
		r -= c.Weight
	}
	return mix[len(mix)-1]
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
