package lavalink

import (
	"testing"

	"github.com/disgoorg/disgolink/v3/disgolink"
)

// closeCounter is a disgolink node that counts its Close calls; the rest of
// the interface is never called here.
type closeCounter struct {
	disgolink.Node
	closes int
}

func (n *closeCounter) Close() { n.closes++ }

// disgolink's own reconnect loop outlives closeLink; when it gets through on
// a link we gave up, the plugin closes that socket at once instead of
// leaving it to hold a Lavalink session nobody uses (TestWebsocketDropResumes
// failed under load when the client closed within disgolink's 2 s retry
// delay after a drop), and neither its opening nor its closing reaches the
// node actor.
func TestNodePluginClosesLeftoverReconnects(t *testing.T) {
	c := &Client{}
	open, gone := &link{name: "n0"}, &link{name: "n0"}
	closeLink(gone)

	n := &closeCounter{}
	nodePlugin{c: c, l: gone}.OnNodeOpen(n)
	if n.closes != 1 {
		t.Fatalf("a leftover reconnect on a closed link: %d Close calls, want 1", n.closes)
	}
	if gone.lastMsg.Load() != 0 {
		t.Fatal("a closed link's leftover socket counted as a live message")
	}

	n = &closeCounter{}
	nodePlugin{c: c, l: open}.OnNodeOpen(n)
	if n.closes != 0 {
		t.Fatalf("the current link's socket closed on open (%d Close calls)", n.closes)
	}
	if open.lastMsg.Load() == 0 {
		t.Fatal("an open on the current link did not stamp it for the silence check")
	}
}
