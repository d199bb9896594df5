package discordemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// do sends a REST request; auth is "bot" for the bot token, "" for none, or a raw header.
func do(t *testing.T, emu *Emulator, method, path, auth, body string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rq, err := http.NewRequest(method, emu.RESTURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch auth {
	case "":
	case "bot":
		rq.Header.Set("Authorization", "Bot "+emu.Token())
	default:
		rq.Header.Set("Authorization", auth)
	}
	if body != "" {
		rq.Header.Set("Content-Type", "application/json")
	}
	rs, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Body.Close()
	b, _ := io.ReadAll(rs.Body)
	return rs.StatusCode, b, rs.Header
}

func post(t *testing.T, emu *Emulator, path, auth, body string) (int, []byte) {
	st, b, _ := do(t, emu, "POST", path, auth, body)
	return st, b
}

func errCode(t *testing.T, b []byte) int {
	t.Helper()
	var e struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return e.Code
}

func registerCommands(t *testing.T, emu *Emulator, body string) []map[string]any {
	t.Helper()
	st, b, _ := do(t, emu, "PUT", "/applications/"+emu.AppID().String()+"/commands", "bot", body)
	if st != 200 {
		t.Fatalf("register: %d %s", st, b)
	}
	var out []map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func TestRESTGatewayEndpoints(t *testing.T) {
	emu := startEmu(t, Config{Shards: 4, MaxConcurrency: 2})
	st, b, h := do(t, emu, "GET", "/gateway", "", "")
	if st != 200 || !strings.Contains(string(b), `"url":"`+emu.GatewayURL()+`"`) || h.Get("Via") == "" {
		t.Fatalf("GET /gateway: %d %s", st, b)
	}
	if st, b, _ := do(t, emu, "GET", "/gateway/bot", "", ""); st != 401 || errCode(t, b) != 0 || !strings.Contains(string(b), "401: Unauthorized") {
		t.Fatalf("unauthenticated /gateway/bot: %d %s", st, b)
	}
	if st, _, _ := do(t, emu, "GET", "/gateway/bot", "Bot nope", ""); st != 401 {
		t.Fatalf("bad token /gateway/bot: %d", st)
	}
	st, b, _ = do(t, emu, "GET", "/gateway/bot", "bot", "")
	var gb struct {
		URL    string `json:"url"`
		Shards int    `json:"shards"`
		Limit  struct {
			Total, Remaining, MaxConcurrency int
		} `json:"session_start_limit"`
	}
	_ = json.Unmarshal(b, &gb)
	var raw map[string]map[string]int
	_ = json.Unmarshal(b, &raw)
	if st != 200 || gb.Shards != 4 || raw["session_start_limit"]["max_concurrency"] != 2 || raw["session_start_limit"]["total"] != 1000 {
		t.Fatalf("GET /gateway/bot: %d %s", st, b)
	}
	if st, b, _ := do(t, emu, "GET", "/nope", "bot", ""); st != 404 {
		t.Fatalf("unknown route: %d %s", st, b)
	}
}

func TestRESTCommandRegistration(t *testing.T) {
	emu := startEmu(t, Config{})
	app := emu.AppID().String()
	cmds := registerCommands(t, emu, `[{"name":"play","description":"Play a track","options":[{"type":3,"name":"query","description":"q","required":true,"autocomplete":true}]},{"name":"Queue","type":3}]`)
	if len(cmds) != 2 || cmds[0]["id"] == nil || cmds[0]["application_id"] != app || cmds[0]["type"].(float64) != 1 || cmds[0]["version"] == nil {
		t.Fatalf("registered: %+v", cmds)
	}
	again := registerCommands(t, emu, `[{"name":"play","description":"Play it"}]`)
	if again[0]["id"] != cmds[0]["id"] {
		t.Fatal("re-registering a command changed its ID")
	}
	st, b, _ := do(t, emu, "GET", "/applications/"+app+"/commands", "bot", "")
	if st != 200 || !strings.Contains(string(b), `"description":"Play it"`) || strings.Contains(string(b), "Queue") {
		t.Fatalf("GET commands: %d %s", st, b)
	}
	bad := []struct{ name, body string }{
		{"upper-case name", `[{"name":"Play","description":"x"}]`},
		{"no description", `[{"name":"play"}]`},
		{"long description", `[{"name":"play","description":"` + strings.Repeat("x", 101) + `"}]`},
		{"required after optional", `[{"name":"play","description":"x","options":[{"type":3,"name":"a","description":"a"},{"type":3,"name":"b","description":"b","required":true}]}]`},
		{"duplicate names", `[{"name":"play","description":"x"},{"name":"play","description":"y"}]`},
		{"autocomplete with choices", `[{"name":"play","description":"x","options":[{"type":3,"name":"a","description":"a","autocomplete":true,"choices":[{"name":"x","value":"x"}]}]}]`},
		{"bad option type", `[{"name":"play","description":"x","options":[{"type":99,"name":"a","description":"a"}]}]`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			st, b, _ := do(t, emu, "PUT", "/applications/"+app+"/commands", "bot", tc.body)
			if st != 400 || errCode(t, b) != 50035 {
				t.Fatalf("%d %s", st, b)
			}
		})
	}
	if st, _, _ := do(t, emu, "PUT", "/applications/"+app+"/commands", "", `[]`); st != 401 {
		t.Fatalf("unauthenticated registration: %d", st)
	}
	if st, b, _ := do(t, emu, "PUT", "/applications/"+app+"/guilds/123/commands", "bot", `[]`); st != 403 || errCode(t, b) != 50001 {
		t.Fatalf("registration in unknown guild: %d %s", st, b)
	}
	if got := emu.Commands(0); len(got) != 1 || got[0].Name != "play" {
		t.Fatalf("Commands(0) = %+v", got)
	}
}

func TestRESTChannelMessages(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	path := "/channels/" + w.text.String() + "/messages"
	body := `{"content":"now playing","embeds":[{"title":"Song","description":"by X","fields":[{"name":"Length","value":"3:00","inline":true}]}],"components":[{"type":1,"components":[{"type":2,"style":1,"custom_id":"np:pause","label":"Pause"},{"type":2,"style":5,"url":"https://example.com","label":"Open"}]}]}`
	st, b := post(t, emu, path, "bot", body)
	if st != 200 {
		t.Fatalf("create: %d %s", st, b)
	}
	var m struct {
		ID         Snowflake          `json:"id"`
		ChannelID  Snowflake          `json:"channel_id"`
		Author     struct{ Bot bool } `json:"author"`
		Timestamp  string             `json:"timestamp"`
		Embeds     []Embed            `json:"embeds"`
		Components []json.RawMessage  `json:"components"`
	}
	_ = json.Unmarshal(b, &m)
	if m.ID == 0 || m.ChannelID != w.text || !m.Author.Bot || m.Timestamp == "" || len(m.Embeds) != 1 || m.Embeds[0].Fields[0].Value != "3:00" || len(m.Components) != 1 {
		t.Fatalf("created message: %s", b)
	}
	st, b, _ = do(t, emu, "PATCH", path+"/"+m.ID.String(), "bot", `{"content":"paused"}`)
	if st != 200 || !strings.Contains(string(b), `"content":"paused"`) || !strings.Contains(string(b), `"np:pause"`) || !strings.Contains(string(b), `"edited_timestamp":"`) {
		t.Fatalf("edit: %d %s", st, b)
	}
	st, b, _ = do(t, emu, "GET", path+"/"+m.ID.String(), "bot", "")
	if st != 200 || !strings.Contains(string(b), `"title":"Song"`) {
		t.Fatalf("get: %d %s", st, b)
	}
	msgs := emu.Messages(w.text)
	if len(msgs) != 1 || msgs[0].Content != "paused" || msgs[0].Embeds[0].Title != "Song" || strings.Join(msgs[0].CustomIDs(), ",") != "np:pause" {
		t.Fatalf("Messages = %+v", msgs)
	}

	bad := []struct {
		name, path, body string
		status, code     int
	}{
		{"empty", path, `{"content":""}`, 400, 50006},
		{"too long", path, `{"content":"` + strings.Repeat("a", 2001) + `"}`, 400, 50035},
		{"duplicate custom_id", path, `{"components":[{"type":1,"components":[{"type":2,"style":1,"custom_id":"a","label":"A"},{"type":2,"style":1,"custom_id":"a","label":"B"}]}]}`, 400, 50035},
		{"button without custom_id", path, `{"components":[{"type":1,"components":[{"type":2,"style":1,"label":"A"}]}]}`, 400, 50035},
		{"eleven embeds", path, `{"embeds":[` + strings.TrimSuffix(strings.Repeat(`{"title":"x"},`, 11), ",") + `]}`, 400, 50035},
		{"unknown channel", "/channels/42/messages", `{"content":"x"}`, 404, 10003},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			st, b := post(t, emu, tc.path, "bot", tc.body)
			if st != tc.status || errCode(t, b) != tc.code {
				t.Fatalf("%d %s", st, b)
			}
		})
	}
	if st, _ := post(t, emu, path, "", `{"content":"x"}`); st != 401 {
		t.Fatalf("unauthenticated create: %d", st)
	}
	if st, b, _ := do(t, emu, "PATCH", path+"/"+m.ID.String(), "bot", `{"content":"","embeds":[],"components":[]}`); st != 400 || errCode(t, b) != 50006 {
		t.Fatalf("edit to empty: %d %s", st, b)
	}
	if st, b, _ := do(t, emu, "GET", path+"/12345", "bot", ""); st != 404 || errCode(t, b) != 10008 {
		t.Fatalf("unknown message: %d %s", st, b)
	}
}

func TestRESTRateLimitHeaders(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	emu.RateLimitNext(RateLimit{Method: "POST", Path: "/channels/{id}/messages", RetryAfter: 1500 * time.Millisecond})
	path := "/channels/" + w.text.String() + "/messages"
	st, b, h := do(t, emu, "POST", path, "bot", `{"content":"x"}`)
	if st != 429 {
		t.Fatalf("status %d", st)
	}
	for k, want := range map[string]string{"Retry-After": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.500", "X-RateLimit-Scope": "user"} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	if h.Get("X-RateLimit-Limit") == "" || h.Get("X-RateLimit-Reset") == "" || h.Get("X-RateLimit-Bucket") == "" || h.Get("X-RateLimit-Global") != "" {
		t.Errorf("headers: %v", h)
	}
	var body struct {
		Message    string  `json:"message"`
		RetryAfter float64 `json:"retry_after"`
		Global     *bool   `json:"global"`
	}
	_ = json.Unmarshal(b, &body)
	if body.RetryAfter != 1.5 || body.Global == nil || *body.Global || body.Message == "" {
		t.Fatalf("body %s", b)
	}
	if st, _, h := do(t, emu, "POST", path, "bot", `{"content":"x"}`); st != 200 || h.Get("X-RateLimit-Bucket") != "" {
		t.Fatalf("second request: %d %v (normal answers carry no rate-limit headers)", st, h)
	}
	emu.RateLimitNext(RateLimit{Global: true})
	if st, _, h := do(t, emu, "GET", "/gateway/bot", "bot", ""); st != 429 || h.Get("X-RateLimit-Global") != "true" || h.Get("X-RateLimit-Scope") != "global" ||
		h.Get("Retry-After") != "1" || h.Get("X-RateLimit-Bucket") != "" || h.Get("X-RateLimit-Remaining") != "" {
		t.Fatalf("global 429 (Discord's has Retry-After and no bucket headers): %d %v", st, h)
	}
}

func TestRESTServerErrors(t *testing.T) {
	emu := startEmu(t, Config{})
	w := addWorld(t, emu, SnowflakeForShard(0, 1))
	path := "/channels/" + w.text.String() + "/messages"
	count := func() int {
		st, b, _ := do(t, emu, "GET", path, "bot", "")
		var ms []json.RawMessage
		if st != 200 || json.Unmarshal(b, &ms) != nil {
			t.Fatalf("list: %d %s", st, b)
		}
		return len(ms)
	}

	emu.FailNext(ServerError{Method: "POST", Path: "/channels/{c}/messages", Status: 503})
	if st, b, _ := do(t, emu, "POST", path, "bot", `{"content":"x"}`); st != 503 || !strings.Contains(string(b), "503: Service Unavailable") {
		t.Fatalf("injected 503: %d %s", st, b)
	}
	if n := count(); n != 0 {
		t.Fatalf("a 503 before handling created %d messages", n)
	}
	// A 502 after handling: the message exists though the answer was lost.
	emu.FailNext(ServerError{Method: "POST", Path: "/channels/{c}/messages", AfterHandling: true})
	if st, _, _ := do(t, emu, "POST", path, "bot", `{"content":"a","nonce":"n-1","enforce_nonce":true}`); st != 502 {
		t.Fatalf("injected 502: %d", st)
	}
	if n := count(); n != 1 {
		t.Fatalf("a 502 after handling left %d messages, want 1", n)
	}
	// The retry with the same enforced nonce gets that message back.
	st, b, _ := do(t, emu, "POST", path, "bot", `{"content":"a","nonce":"n-1","enforce_nonce":true}`)
	if st != 200 || count() != 1 || !strings.Contains(string(b), `"content":"a"`) {
		t.Fatalf("retry with the nonce: %d %s, %d messages", st, b, count())
	}
	// Without enforce_nonce the nonce does not deduplicate.
	if st, _, _ := do(t, emu, "POST", path, "bot", `{"content":"a","nonce":"n-1"}`); st != 200 || count() != 2 {
		t.Fatalf("unenforced nonce: %d, %d messages", st, count())
	}
	if st, _, _ := do(t, emu, "POST", path, "bot", `{"content":"a","nonce":"n-2","enforce_nonce":true}`); st != 200 || count() != 3 {
		t.Fatalf("new nonce: %d, %d messages", st, count())
	}
}

func TestRESTGlobalRateLimit(t *testing.T) {
	emu := startEmu(t, Config{GlobalRateLimit: 3})
	for i := 0; i < 3; i++ {
		if st, _, _ := do(t, emu, "GET", "/gateway/bot", "bot", ""); st != 200 {
			t.Fatalf("request %d: %d", i, st)
		}
	}
	st, b, h := do(t, emu, "GET", "/gateway/bot", "bot", "")
	if st != 429 || h.Get("X-RateLimit-Global") != "true" || h.Get("X-RateLimit-Scope") != "global" || !strings.Contains(string(b), `"global":true`) {
		t.Fatalf("fourth request in a second: %d %s %v", st, b, h)
	}
	// Interaction callbacks and webhook-token routes are exempt from the global limit.
	if st, _ := post(t, emu, "/interactions/1/x/callback", "", `{"type":4,"data":{"content":"x"}}`); st != 404 {
		t.Fatalf("callback under the global limit: %d", st)
	}
	emu.RateLimitNext(RateLimit{Global: true})
	if st, _ := post(t, emu, "/interactions/1/x/callback", "", `{"type":4,"data":{"content":"x"}}`); st != 404 {
		t.Fatalf("injected global 429 hit a callback: %d", st)
	}
	if emu.PendingRateLimits() != 1 {
		t.Fatal("the injected global 429 was consumed by an exempt route")
	}
}
