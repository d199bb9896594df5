package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadinessReport(t *testing.T) {
	r := NewReadiness("discord", "lavalink", "cluster")
	if rep := r.Snapshot(); rep.Ready || len(rep.Unready) != 3 || rep.Components["discord"].Detail != "starting" {
		t.Fatalf("initial report %+v", rep)
	}
	r.Set("cluster", true, "")
	r.Set("discord", false, "not configured")
	rep := r.Snapshot()
	if rep.Ready || strings.Join(rep.Unready, ",") != "discord,lavalink" || rep.Components["discord"].Detail != "not configured" {
		t.Fatalf("report %+v", rep)
	}
	r.Set("discord", true, "")
	r.Set("lavalink", true, "")
	if rep := r.Snapshot(); !rep.Ready || len(rep.Unready) != 0 {
		t.Fatalf("all ready: %+v", rep)
	}
}

func TestReadinessConcurrentUse(t *testing.T) {
	r := NewReadiness("a")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				r.Set("a", j%2 == 0, "x")
				_ = r.Snapshot()
			}
		}(i)
	}
	wg.Wait()
}

func TestServerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "admin_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(2)
	ready := NewReadiness("discord", "cluster")
	ready.Set("cluster", true, "")
	ready.Set("discord", false, "not configured")

	srv, err := Serve("127.0.0.1:0", Handler(reg, ready), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := get("/readyz")
	var rep Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if code != 503 || rep.Ready || len(rep.Unready) != 1 || rep.Unready[0] != "discord" || rep.Components["discord"].Detail != "not configured" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	ready.Set("discord", true, "")
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz when ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "admin_test_total 2") {
		t.Fatalf("/metrics = %d %q", code, body)
	}
	res, err := http.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz = %d", res.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after Shutdown")
	}
}
