package main

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ensemble-bot/ensemble/cluster/clustertest"
)

// otlpSpan is what the receiver keeps of an exported span.
type otlpSpan struct {
	trace, id, parent, name, instance string
}

// otlpReceiver is an OTLP/HTTP trace endpoint (protobuf, as the nodes'
// exporter sends it) that keeps every span it is sent.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{url: "http://" + ln.Addr().String() + "/v1/traces"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		b, err := io.ReadAll(body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			var instance string
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.instance.id" {
					instance = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, otlpSpan{trace: hex.EncodeToString(s.GetTraceId()), id: hex.EncodeToString(s.GetSpanId()),
						parent: hex.EncodeToString(s.GetParentSpanId()), name: s.GetName(), instance: instance})
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) all() []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]otlpSpan(nil), r.spans...)
}

// TestOneTraceSpansTwoMembers: with the standard OTEL_* variables set, the
// nodes export spans over OTLP, and an interaction whose shard runs on one
// member and whose guild grain runs on the other is one trace: the guild
// grain's span is a child of the shard's, exported by the other process.
func TestOneTraceSpansTwoMembers(t *testing.T) {
	bin := buildNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rcv := startOTLPReceiver(t)
	cl := startCluster(ctx, t, clustertest.Config{Node: bin, Env: []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + rcv.url, "OTEL_BSP_SCHEDULE_DELAY=100",
	}})
	// Sixteen guilds: the chance that every guild grain sits on its
	// shard's member is 2^-16.
	guilds, err := cl.Discord.AddLoadGuilds(16, 1)
	if err != nil {
		t.Fatal(err)
	}
	startNode(ctx, t, cl)
	startNode(ctx, t, cl)
	answer := answerer(ctx, t, cl)
	for _, g := range guilds {
		answer(g, "queue")
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := rcv.all()
		byID := map[string]otlpSpan{}
		for _, s := range spans {
			byID[s.id] = s
		}
		for _, s := range spans {
			parent, ok := byID[s.parent]
			if s.name == "guild queue" && ok && parent.name == "interaction queue" && parent.trace == s.trace && parent.instance != s.instance {
				t.Logf("trace %s: %q on %s, %q on %s", s.trace, parent.name, parent.instance, s.name, s.instance)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace spans two members among %d spans: %+v", len(spans), spans)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
