package lavalink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/disgoorg/disgolink/v3/disgolink"
	"github.com/disgoorg/disgolink/v3/lavalink"

	"github.com/ensemble-bot/ensemble/internal/audio"
	"github.com/ensemble-bot/ensemble/internal/config"
	"github.com/ensemble-bot/ensemble/internal/telemetry"
)

// TakeOver reads and destroys the guild's player that from holds: the
// player of a previous activation of the guild's session, created through
// another member's (or a dead process's) Lavalink session, which Lavalink
// keeps playing (a dropped session's players play on until its resume
// timeout). The new activation stops it rather than play beside it, and
// starts where it was.
//
// Lavalink's REST API addresses the players of any connected session with
// the node's password, so a live member's player is read and destroyed
// through this member's own link. A session waiting for a resume (its
// member died) is not addressable: Lavalink answers 404 "Session not
// found" until a websocket resumes it. TakeOver then resumes it itself
// (claim): a websocket of its own with the session's ID, held while the
// player is read and destroyed and shared by the takeovers of the
// session's other guilds, then closed, so that Lavalink keeps the session
// waiting (its other players play on for their own takeovers) until its
// timeout. A claim answered with a new session found the session gone,
// or held by another member's claim that may end before the next call:
// the session counts as gone only after claimTries such claims.
//
// from naming this member's own current session on the node is not a
// takeover (the player is this client's, and Play replaces it): ok is
// false. So is a player already gone (its session timed out, the node
// restarted, the player was destroyed). A node that is not configured, or
// whose websocket is not up for this member, fails with audio.ErrNoNode:
// this member cannot reach it now. The old player is never tracked by
// this client, so its events (a TrackEnd "stopped" from the destroy) go to
// the session's own websocket, never to this client's listeners.
func (c *Client) TakeOver(ctx context.Context, guild string, from audio.Holder) (audio.PlayerState, bool, error) {
	if err := c.enter(); err != nil {
		return audio.PlayerState{}, false, err
	}
	gid, err := guildID(guild)
	if err != nil {
		return audio.PlayerState{}, false, err
	}
	if from.Session == "" {
		return audio.PlayerState{}, false, nil
	}
	cfg, known := c.nodeConfig(from.Node)
	if !known {
		return audio.PlayerState{}, false, fmt.Errorf("lavalink: take over on node %q: not configured: %w", from.Node, audio.ErrNoNode)
	}
	l, up := c.liveLink(from.Node)
	if !up {
		return audio.PlayerState{}, false, fmt.Errorf("lavalink: take over on %s: not connected: %w", from.Node, audio.ErrNoNode)
	}
	if l.sessionID() == from.Session {
		return audio.PlayerState{}, false, nil
	}
	failed := func(what string, err error) error {
		c.m.takeovers.WithLabelValues(from.Node, "failed").Inc()
		return fmt.Errorf("lavalink: %s on %s: %w", what, from.Node, refused(err))
	}
	// A session that is not connected is claimed (once, held until the
	// takeover ends) and the call made again. That can happen between the
	// read and the destroy too: a member that drains closes its websocket
	// (keeping its players for their takeovers) at any moment, and a
	// destroy answered "Session not found" then would leave the player
	// playing beside the new one.
	var held *sessionClaim
	defer func() {
		if held != nil {
			c.unclaim(held)
		}
	}()
	onSession := func(call func() error) error {
		err := call()
		for tries := 0; sessionNotFound(err) && tries < claimTries; tries++ {
			if held != nil && held.resumed {
				return err // ours, and still not found: gone
			}
			// Not claimed yet, or a claim that did not resume it: held
			// by another member's claim then (addressable while it
			// lasts), or gone. Another member's claim can end between
			// that claim and this call, and the session waits again:
			// claim it anew rather than take it for gone, which would
			// leave its player playing beside ours.
			cl, cerr := c.claim(ctx, cfg, from.Session, held)
			if held != nil {
				c.unclaim(held)
			}
			held = cl
			if cerr != nil {
				return fmt.Errorf("resume the old session to reach its player: %w", cerr)
			}
			err = call()
		}
		return err
	}
	var pl *lavalink.Player
	err = onSession(func() (err error) {
		pl, err = l.api.SessionPlayer(ctx, from.Session, gid)
		return err
	})
	c.report(from.Node, err)
	if notFound(err) {
		c.m.takeovers.WithLabelValues(from.Node, "gone").Inc()
		return audio.PlayerState{}, false, nil
	}
	if err != nil {
		return audio.PlayerState{}, false, failed("read the old player", err)
	}
	var st audio.PlayerState
	ok := pl != nil && pl.Track != nil
	if ok {
		st.PlayID, st.Identifier = playOf(*pl.Track)
		st.Position, st.Paused, st.At = time.Duration(pl.State.Position)*time.Millisecond, pl.Paused, time.Now()
	}
	err = onSession(func() error { return l.api.DestroySessionPlayer(ctx, from.Session, gid) })
	c.report(from.Node, err)
	if err != nil && !notFound(err) {
		return st, ok, failed("destroy the old player", err)
	}
	c.m.takeovers.WithLabelValues(from.Node, "taken").Inc()
	return st, ok, nil
}

func (c *Client) nodeConfig(name string) (config.LavalinkNode, bool) {
	for _, n := range c.o.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return config.LavalinkNode{}, false
}

// notFound reports Lavalink's 404: no such session, or no such player.
func notFound(err error) bool {
	var le lavalink.Error
	return errors.As(err, &le) && le.Status == http.StatusNotFound
}

// sessionNotFound reports the 404 of a session that is not connected:
// unknown, gone, or waiting for a resume (util.socketContext).
func sessionNotFound(err error) bool {
	var le lavalink.Error
	return errors.As(err, &le) && le.Status == http.StatusNotFound && le.Message == "Session not found"
}

// sessionClaim is another session on a node that this client resumed (or
// tried to) so that its players can be read and destroyed. The takeovers
// of its guilds share it; it is closed ClaimLinger after the last one, at
// once if the attempt failed, and at Close.
type sessionClaim struct {
	key     string        // node name/session ID
	done    chan struct{} // closed once the attempt is over; then:
	resumed bool          // the server resumed the session for us
	err     error
	close   func() // closes the claim's websocket
	// Guarded by Client.claimMu:
	users  int
	linger *time.Timer
}

// claimTries bounds the claims one takeover makes of a session that
// REST does not find: each claim that does not resume it may have met
// another member's claim, which can end before the next call.
const claimTries = 3

// claim resumes session sid on cfg's node for a takeover, or joins a
// claim of it that is held or being made; unclaim ends this user's part
// (the caller's, also when claim fails). stale, if not nil, is a claim
// that did not resume the session: claim then makes a new attempt
// instead of joining it (its users keep it until they unclaim). A claim
// the server answered with a new session (sid is gone, or held by another
// member's claim) is no error: the caller's next REST call tells.
func (c *Client) claim(ctx context.Context, cfg config.LavalinkNode, sid string, stale *sessionClaim) (*sessionClaim, error) {
	key := cfg.Name + "/" + sid
	c.claimMu.Lock()
	if c.closing.Load() {
		c.claimMu.Unlock()
		return nil, errClosed
	}
	cl := c.claims[key]
	if cl != nil && cl == stale {
		// The stale claim's last user (our caller) ends it.
		delete(c.claims, key)
		cl = nil
	}
	first := cl == nil
	if first {
		cl = &sessionClaim{key: key, done: make(chan struct{})}
		c.claims[key] = cl
	} else if cl.linger != nil {
		cl.linger.Stop() // a timer that fired meanwhile finds a user and keeps it
		cl.linger = nil
	}
	cl.users++
	c.claimMu.Unlock()
	if first {
		dctx, cancel := context.WithTimeout(ctx, c.t.ConnectTimeout)
		cl.close, cl.resumed, cl.err = c.resume(dctx, cfg, sid)
		cancel()
		close(cl.done)
		if cl.err == nil {
			c.log.Info("lavalink: resumed another session to take over its players", "node", cfg.Name, "resumed", cl.resumed)
		}
	} else {
		select {
		case <-cl.done:
		case <-ctx.Done():
			return cl, ctx.Err()
		}
	}
	return cl, cl.err
}

// unclaim ends one user's part of cl; the last one's starts the linger
// (or closes it, after a failed attempt, once the client closes, or if a
// newer claim replaced it). The first user unclaims only after its
// attempt, so cl.done is closed when the users run out.
func (c *Client) unclaim(cl *sessionClaim) {
	key := cl.key
	c.claimMu.Lock()
	cl.users--
	if cl.users > 0 {
		c.claimMu.Unlock()
		return
	}
	if cl.err == nil && !c.closing.Load() && c.claims[key] == cl {
		cl.linger = time.AfterFunc(c.t.ClaimLinger, func() {
			c.claimMu.Lock()
			if cl.users > 0 || c.claims[key] != cl {
				c.claimMu.Unlock()
				return
			}
			delete(c.claims, key)
			c.claimMu.Unlock()
			cl.close()
		})
		c.claimMu.Unlock()
		return
	}
	if c.claims[key] == cl {
		delete(c.claims, key)
	}
	c.claimMu.Unlock()
	if cl.close != nil {
		cl.close()
	}
}

// closeClaims closes the claims no takeover uses (at Close; the others
// close when their last user is done).
func (c *Client) closeClaims() {
	c.claimMu.Lock()
	var closers []func()
	for key, cl := range c.claims {
		if cl.users == 0 {
			if cl.linger != nil {
				cl.linger.Stop()
			}
			delete(c.claims, key)
			if cl.close != nil {
				closers = append(closers, cl.close)
			}
		}
	}
	c.claimMu.Unlock()
	for _, f := range closers {
		f()
	}
}

// resumeSession resumes session sid on node over a websocket of its own
// (Client.resume; tests replace it): a disgolink client with no listener,
// so the events Lavalink replays and sends to it are dropped. resumed
// reports whether the server resumed it (otherwise it made a new session,
// which close ends: it does not resume). close leaves a resumed session
// waiting for a resume again, its resuming setting unchanged, with a fresh
// timeout.
func (c *Client) resumeSession(ctx context.Context, cfg config.LavalinkNode, sid string) (close func(), resumed bool, err error) {
	// disgolink's Open retries a failed dial until the context ends; a
	// plain TCP dial fails fast.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, false, err
	}
	_ = conn.Close()
	// Quieter than libLogger: disgolink warns of every resume that fails,
	// which here only means the session is gone.
	lib := slog.New(telemetry.WithMinLevel(c.log.Handler(), slog.LevelError)).With("lib", "disgolink", "node", cfg.Name, "claim", true)
	dl := disgolink.New(c.uid, disgolink.WithLogger(lib), disgolink.WithHTTPClient(c.http))
	n, err := dl.AddNode(ctx, disgolink.NodeConfig{
		Name: cfg.Name, Address: cfg.Address, Password: cfg.Password.Reveal(), Secure: cfg.Secure, SessionID: sid,
	})
	if err != nil {
		dl.Close()
		return nil, false, err
	}
	return dl.Close, n.SessionID() == sid, nil
}
