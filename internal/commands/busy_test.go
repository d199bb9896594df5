package commands

import "testing"

func TestBusyIsRecognisedAndEphemeral(t *testing.T) {
	r := Busy()
	if !r.GetEphemeral() || !IsBusy(r.GetContent()) {
		t.Fatalf("busy reply %+v", r)
	}
	if IsBusy(Error("Nothing is playing.").GetContent()) {
		t.Fatal("an ordinary refusal counted as busy")
	}
}
