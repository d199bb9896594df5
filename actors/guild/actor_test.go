package guild

import (
	"strings"
	"testing"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clusterpb"
)

// TestActorRequests: the guild actor answers every request, a malformed
// one or one for an rpc it lacks with an error, and a grain error as the
// caller's error; a good request reaches the grain as Handle.
func TestActorRequests(t *testing.T) {
	h := newHarness(t, nil, nil)
	valid, err := proto.Marshal(&clusterpb.Interaction{Id: "900000000000000001", GuildId: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *pcluster.GrainRequest
		want string // in the error; "" for a HandleReply
	}{
		{"unknown rpc", &pcluster.GrainRequest{MethodIndex: 7}, "no rpc 7"},
		{"bad data", &pcluster.GrainRequest{MethodIndex: 0, MessageData: []byte{0xff, 0xff}}, "INVALID_ARGUMENT"},
		{"grain error", &pcluster.GrainRequest{MethodIndex: 0, MessageData: valid}, "sent to guild 77"},
	} {
		res, err := h.c.Request("77", Kind, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e, ok := res.(*pcluster.GrainErrorResponse)
		if !ok || !strings.Contains(e.Reason+" "+e.Message, tc.want) {
			t.Fatalf("%s: answered %T %v, want an error with %q", tc.name, res, res, tc.want)
		}
	}
	// And the grain still serves its guild.
	id := h.sendTo("77", listener, clusterpb.InteractionKind_INTERACTION_KIND_COMMAND, "queue")
	if r := h.answer(id); len(r.GetEmbeds()) == 0 || r.GetEmbeds()[0].GetTitle() != "Queue" {
		t.Fatalf("answer after the bad requests: %v", r)
	}
}
