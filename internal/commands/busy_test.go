package commands

import (
	"testing"
	"time"
)

func TestBusyIsRecognisedAndEphemeral(t *testing.T) {
	r := Busy()
	if !r.GetEphemeral() || !IsBusy(r.GetContent()) {
		t.Fatalf("busy reply %+v", r)
	}
	if IsBusy(Error("Nothing is playing.").GetContent()) {
		t.Fatal("an ordinary refusal counted as busy")
	}
}

func TestRateLimitedMessageSaysWhoAndWhen(t *testing.T) {
	for _, tc := range []struct {
		guild bool
		wait  time.Duration
		want  string
	}{
		{false, 4200 * time.Millisecond, "You're sending commands faster than I take them; please try again in 5 s."},
		{true, 59 * time.Second, "This server is sending commands faster than I take them; please try again in 59 s."},
		{false, 10 * time.Millisecond, "You're sending commands faster than I take them; please try again in 1 s."},
		{false, 0, "You're sending commands faster than I take them; please try again in 1 s."},
	} {
		if got := RateLimitedMessage(tc.guild, tc.wait); got != tc.want {
			t.Errorf("RateLimitedMessage(%v, %s) = %q, want %q", tc.guild, tc.wait, got, tc.want)
		}
	}
}
