//go:build !race

package node

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

// TestDiscordLimitsAndLostAnswers: Discord's global limit and its front
// end's 5xx during a session. The now-playing post answered by a global
// 429 is sent again once Retry-After has passed, not before; a callback
// whose answer was lost (502 after Discord took it) is not reported as a
// failure, and the user sees one answer; a now-playing edit answered 503
// is retried. Every interaction is answered in time and the channel holds
// one now-playing message.
func TestDiscordLimitsAndLostAnswers(t *testing.T) {
	w := newWorld(t, worldOpts{})
	dc := w.discord
	w.join(w.listener, w.voice)

	dc.RateLimitNext(discordemu.RateLimit{Method: "POST", Path: "/channels/{c}/messages", Global: true, RetryAfter: 2 * time.Second})
	dc.FailNext(discordemu.ServerError{Method: "POST", Path: "/interactions/{id}/{token}/callback", AfterHandling: true})
	wantContains(t, w.run(w.listener, "play", discordemu.StringOption("query", "lofi beats")), "lofi beats")
	w.player(playing("lofi beats"))

	posts := func() []discordemu.RecordedRequest {
		return dc.Recorder().RequestsMatching("POST", "/channels/"+w.text.String()+"/messages")
	}
	waitFor(t, "the now-playing message posted", func() bool {
		ps := posts()
		return len(ps) == 2 && ps[1].Status == http.StatusOK
	})
	ps := posts()
	if ps[0].Status != http.StatusTooManyRequests {
		t.Fatalf("first post: %d, want the injected 429", ps[0].Status)
	}
	if gap := ps[1].At.Sub(ps[0].At); gap < 2*time.Second {
		t.Fatalf("posted again %v after a global 429 with Retry-After 2", gap)
	}
	var posted []discordemu.Message
	for _, m := range dc.Messages(w.text) {
		if m.InteractionID == 0 {
			posted = append(posted, m)
		}
	}
	if len(posted) != 1 {
		t.Fatalf("%d now-playing messages in the channel, want 1", len(posted))
	}

	edits := func(status int) int {
		n := 0
		for _, r := range dc.Recorder().RequestsMatching("PATCH", "/channels/*/messages/"+posted[0].ID.String()) {
			if r.Status == status {
				n++
			}
		}
		return n
	}
	dc.FailNext(discordemu.ServerError{Method: "PATCH", Path: "/channels/{c}/messages/{m}", Status: http.StatusServiceUnavailable})
	wantContains(t, w.run(w.listener, "pause"), "paused")
	waitFor(t, "the now-playing edit through the 503", func() bool {
		return edits(http.StatusServiceUnavailable) == 1 && edits(http.StatusOK) >= 1
	})
	m, _ := dc.Message(posted[0].ID)
	if len(m.Components) == 0 || !strings.Contains(string(m.Components[0]), "Resume") {
		t.Fatalf("the now-playing message does not show the pause: %s", m.Components)
	}

	if late := dc.ErrorsOfKind(discordemu.ErrLateInteraction); len(late) != 0 {
		t.Fatalf("interactions answered after Discord's deadline: %v", late)
	}
	// The one retried callback, refused by Discord as the second answer.
	if errs := dc.Errors(); len(errs) != 1 || len(dc.ErrorsOfKind(discordemu.ErrDoubleAck)) != 1 {
		t.Fatalf("protocol errors: %v", errs)
	}
	if logs := w.logs.String(); strings.Contains(logs, "answer interaction") || strings.Contains(logs, "defer interaction") {
		t.Fatalf("the lost answer was reported as a failure:\n%s", w.logs.String())
	}
}
