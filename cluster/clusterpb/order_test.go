package clusterpb

import (
	"fmt"
	"strings"
	"testing"
)

// grainMethods is the frozen order of every rpc. Generated grain clients
// call methods by index, so a reordered or removed rpc makes mixed-version
// members call the wrong method: this list may only grow at the end of a
// service.
var grainMethods = []string{
	"Guild.0 Handle(Interaction) HandleReply",
	"Guild.1 View(SessionView) Ack",
	"Session.0 Execute(SessionRequest) SessionReply",
	"Session.1 Voice(VoiceEvent) Ack",
	"Session.2 Player(PlayerEvent) Ack",
	"Session.3 Wake(Ack) Ack",
	"Shard.0 UpdateVoice(VoiceRequest) Ack",
	"Shard.1 Ensure(Ack) ShardStatus",
}

func TestRPCOrderIsAppendOnly(t *testing.T) {
	var got []string
	services := File_cluster_clusterpb_ensemble_proto.Services()
	for i := 0; i < services.Len(); i++ {
		s := services.Get(i)
		for j := 0; j < s.Methods().Len(); j++ {
			m := s.Methods().Get(j)
			got = append(got, fmt.Sprintf("%s.%d %s(%s) %s", s.Name(), j, m.Name(), m.Input().Name(), m.Output().Name()))
		}
	}
	if len(got) < len(grainMethods) {
		t.Fatalf("rpcs removed:\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(grainMethods, "\n"))
	}
	byService := map[string][]string{}
	for _, g := range got {
		svc := g[:strings.Index(g, ".")]
		byService[svc] = append(byService[svc], g)
	}
	for _, want := range grainMethods {
		svc := want[:strings.Index(want, ".")]
		found := false
		for _, g := range byService[svc] {
			if g == want {
				found = true
			}
		}
		if !found {
			t.Errorf("rpc %q moved, renamed or removed; append new rpcs instead", want)
		}
	}
}
