package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
	"github.com/ensemble-bot/ensemble/internal/commands"
)

// request sends a raw grain call to pid and returns its future: calls
// sent one after the other from one goroutine reach the grain's mailbox
// in that order.
func (h *harness) request(pid *actor.PID, method int32, m proto.Message) *actor.Future {
	h.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.member.System.Root.RequestFuture(pid, &pcluster.GrainRequest{MethodIndex: method, MessageData: data}, 10*time.Second)
}

// TestEveryCallIsAnswered: no caller of a session is left to its timeout
// (one cluster member, several guilds: each member costs a second to
// start).
//
//   - A call the session cannot decode, or a method it does not have (a
//     member of a newer version calling one added since), is answered
//     with an error, and the session goes on serving.
//   - Calls that reach a session still reading its snapshot wait for it,
//     up to maxPending of them; the next one is told the session is busy
//     at once. The waiting calls are served once the snapshot is read;
//     or, when the member stops the session first, told to try again.
func TestEveryCallIsAnswered(t *testing.T) {
	fs := &faultyStore{loading: make(chan struct{}, 1)}
	h := newHarness(t, withFaultyStore(fs))

	h.exec("play", opt("query", "still here"))
	truncated := []byte{0xff} // a varint that never ends
	for _, tc := range []struct {
		name   string
		method int32
		data   []byte
		want   string
	}{
		{"execute", methodExecute, truncated, "session: bad request"},
		{"voice event", methodVoice, truncated, "session: bad voice event"},
		{"player event", methodPlayer, truncated, "session: bad player event"},
		{"unknown method", 42, nil, "session: unknown method 42"},
	} {
		res, err := h.member.Cluster.Request(testGuild, Kind, &pcluster.GrainRequest{MethodIndex: tc.method, MessageData: tc.data},
			pcluster.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ge, ok := res.(*pcluster.GrainErrorResponse); !ok || !strings.Contains(ge.Error(), tc.want) {
			t.Fatalf("%s: answered %T %v, want an error saying %q", tc.name, res, res, tc.want)
		}
	}
	if got := h.playing(); !strings.Contains(got, "still here") {
		t.Fatalf("after the bad calls the session plays %q", got)
	}

	for i, tc := range []struct {
		name string
		// then ends the wait: the store answers, or the member stops
		// its sessions.
		then func(hold chan struct{})
		// execute checks each waiting Execute's reply; voiceErr says the
		// voice event is answered with an error.
		execute  func(r *clusterpb.SessionReply) bool
		voiceErr bool
	}{
		{
			name: "the snapshot is read",
			then: func(hold chan struct{}) { close(hold) },
			execute: func(r *clusterpb.SessionReply) bool {
				return !commands.IsError(r.GetReply()) && !r.GetActive()
			},
		},
		{
			name: "the member stops",
			then: func(hold chan struct{}) {
				t.Cleanup(func() { close(hold) })
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				// The sessions of the earlier steps are active too.
				if n, err := StopLocal(ctx, h.member.System); n != 3 || err != nil {
					t.Fatalf("StopLocal: %d sessions, %v", n, err)
				}
			},
			execute: func(r *clusterpb.SessionReply) bool {
				return strings.Contains(r.GetReply().GetContent(), "was stopping; please try again") && r.GetActive()
			},
			voiceErr: true,
		},
	} {
		guild := fmt.Sprint(200000000000000000 + i)
		hold := make(chan struct{})
		fs.set(func(fs *faultyStore) { fs.hold = hold })
		pid := h.member.Cluster.Get(guild, Kind)
		if pid == nil {
			t.Fatalf("%s: no session activation", tc.name)
		}
		select {
		case <-fs.loading:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the session never read its snapshot", tc.name)
		}
		// A voice event first, then Executes up to the bound, then one
		// more.
		voice := h.request(pid, methodVoice, &clusterpb.VoiceEvent{GuildId: guild,
			Event: &clusterpb.VoiceEvent_State{State: &clusterpb.VoiceState{ChannelId: "", SessionId: "s"}}})
		var waiting []*actor.Future
		for j := range maxPending - 1 {
			waiting = append(waiting, h.request(pid, methodExecute, &clusterpb.SessionRequest{GuildId: guild, Command: "queue",
				RequestId: fmt.Sprint("wait-", j), Invoker: &clusterpb.Invoker{UserId: "333", VoiceChannelId: "111"}}))
		}
		over := h.request(pid, methodExecute, &clusterpb.SessionRequest{GuildId: guild, Command: "queue", RequestId: "one-too-many"})
		// Its answer comes while the others wait: the store has not
		// answered.
		res, err := over.Result()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r, ok := res.(*clusterpb.SessionReply); !ok || !commands.IsBusy(r.GetReply().GetContent()) || !r.GetActive() {
			t.Fatalf("%s: call past the bound answered %v", tc.name, res)
		}
		fs.set(func(fs *faultyStore) { fs.hold = nil })
		tc.then(hold)
		for j, f := range waiting {
			res, err := f.Result()
			if err != nil {
				t.Fatalf("%s: waiting call %d: %v", tc.name, j, err)
			}
			if r, ok := res.(*clusterpb.SessionReply); !ok || !tc.execute(r) {
				t.Fatalf("%s: waiting call %d answered %T %v", tc.name, j, res, res)
			}
		}
		res, err = voice.Result()
		if err != nil {
			t.Fatalf("%s: voice event: %v", tc.name, err)
		}
		_, isErr := res.(*pcluster.GrainErrorResponse)
		if _, ack := res.(*clusterpb.Ack); isErr != tc.voiceErr || (!isErr && !ack) {
			t.Fatalf("%s: waiting voice event answered %T %v", tc.name, res, res)
		}
	}
}
