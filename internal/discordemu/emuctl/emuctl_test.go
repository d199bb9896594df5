package emuctl

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ensemble-bot/ensemble/internal/discordemu"
)

func TestWorldLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := NewServer(discordemu.Config{MaxRecorded: -1}, nil)
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := &Client{URL: srv.URL}

	w, err := c.NewWorld(ctx, WorldSpec{Guilds: 3, Members: 2})
	if err != nil {
		t.Fatal(err)
	}
	if w.Guilds != 3 || w.Token == "" || !strings.HasPrefix(w.RESTURL, "http://127.0.0.1:") || !strings.HasPrefix(w.GatewayURL, "ws://127.0.0.1:") {
		t.Fatalf("world %+v", w)
	}
	st, err := c.Status(ctx, w.ID)
	if err != nil || st.ReadyShards != 0 || st.Commands != 0 {
		t.Fatalf("status of a fresh world: %+v, %v", st, err)
	}

	// The bot registers its commands with the world's token; the status shows them.
	rq, _ := http.NewRequest("PUT", w.RESTURL+"/applications/"+appID(t, w)+"/commands",
		strings.NewReader(`[{"name":"queue","description":"Queue"}]`))
	rq.Header.Set("Authorization", "Bot "+w.Token)
	rq.Header.Set("Content-Type", "application/json")
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	rs.Body.Close()
	if rs.StatusCode != 200 {
		t.Fatalf("register: %s", rs.Status)
	}
	if st, err := c.Status(ctx, w.ID); err != nil || st.Commands != 1 {
		t.Fatalf("status after registering: %+v, %v", st, err)
	}

	// No bot is connected: every interaction fails to dispatch, and says so.
	mix := []discordemu.LoadCommand{{Name: "queue", Weight: 1}}
	res, err := c.Load(ctx, w.ID, LoadRequest{LoadSpec: discordemu.LoadSpec{Rate: 100, Count: 4, Mix: mix}, From: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.SendErrors != 4 || len(res.Records) != 0 || !strings.Contains(res.FirstError, "no gateway session") {
		t.Fatalf("load without a bot: %+v", res)
	}
	for _, bad := range []LoadRequest{
		{LoadSpec: discordemu.LoadSpec{Rate: 100, Count: 1, Mix: mix}, From: 3},
		{LoadSpec: discordemu.LoadSpec{Rate: 100, Count: 1, Mix: mix}, From: 0, To: 4},
		{LoadSpec: discordemu.LoadSpec{Rate: 0, Count: 1, Mix: mix}},
	} {
		if _, err := c.Load(ctx, w.ID, bad); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("load %+v: %v, want 400", bad, err)
		}
	}

	if err := c.CloseWorld(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx, w.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("status of a closed world: %v, want 404", err)
	}
	if _, err := http.Get(w.RESTURL + "/gateway"); err == nil {
		t.Fatal("closed world's emulator still answers")
	}
}

func TestBadRequests(t *testing.T) {
	s := NewServer(discordemu.Config{}, nil)
	defer s.Close()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/worlds", `{"guilds":1,"colour":"blue"}`},
		{"POST", "/worlds", `{"guilds":1000000}`},
		{"POST", "/worlds", `{"guilds":1,"members":26}`},
		{"POST", "/worlds", `not json`},
	} {
		rs, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		rs.Body.Close()
		if rs.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s %s: %s, want 400", tc.method, tc.path, tc.body, rs.Status)
		}
	}
	rs, err := http.Get(srv.URL + "/worlds/7")
	if err != nil {
		t.Fatal(err)
	}
	rs.Body.Close()
	if rs.StatusCode != http.StatusNotFound {
		t.Errorf("unknown world: %s, want 404", rs.Status)
	}
}

func TestListenOnLoopbackOnly(t *testing.T) {
	s := NewServer(discordemu.Config{}, nil)
	defer s.Close()
	if _, _, err := Listen(context.Background(), "0.0.0.0:0", s); err == nil {
		t.Fatal("listening on every interface was allowed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, done, err := Listen(ctx, "127.0.0.1:0", s)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := http.Get("http://" + addr.String() + "/worlds/1")
	if err != nil {
		t.Fatal(err)
	}
	rs.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// appID is the bot user's ID from /users/@me, which is the application's ID unless the
// emulator is configured otherwise.
func appID(t *testing.T, w World) string {
	t.Helper()
	req, _ := http.NewRequest("GET", w.RESTURL+"/users/@me", nil)
	req.Header.Set("Authorization", "Bot "+w.Token)
	rs, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Body.Close()
	var me struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(rs.Body).Decode(&me); err != nil || me.ID == "" {
		t.Fatalf("/users/@me: %v", err)
	}
	return me.ID
}
