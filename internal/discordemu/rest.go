package discordemu

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const apiPrefix = "/api/v10"

type route struct {
	method  string
	pattern string
	botAuth bool
	handle  func(w http.ResponseWriter, r *http.Request, p params, body []byte)
}

type params map[string]string

func (p params) id(k string) Snowflake {
	v, _ := ParseSnowflake(p[k])
	return v
}

func (e *Emulator) routes() http.Handler {
	rs := []route{
		{"GET", "/gateway", false, e.getGateway},
		{"GET", "/gateway/bot", true, e.getGatewayBot},
		{"POST", "/interactions/{id}/{token}/callback", false, e.postCallback},
		{"GET", "/webhooks/{app}/{token}/messages/{msg}", false, e.getWebhookMessage},
		{"PATCH", "/webhooks/{app}/{token}/messages/{msg}", false, e.patchWebhookMessage},
		{"DELETE", "/webhooks/{app}/{token}/messages/{msg}", false, e.deleteWebhookMessage},
		{"POST", "/webhooks/{app}/{token}", false, e.postFollowup},
		{"GET", "/applications/{app}/commands", true, e.getCommands},
		{"PUT", "/applications/{app}/commands", true, e.putCommands},
		{"POST", "/applications/{app}/commands", true, e.postCommand},
		{"GET", "/applications/{app}/guilds/{guild}/commands", true, e.getCommands},
		{"PUT", "/applications/{app}/guilds/{guild}/commands", true, e.putCommands},
		{"POST", "/applications/{app}/guilds/{guild}/commands", true, e.postCommand},
		{"GET", "/channels/{channel}/messages", true, e.listMessages},
		{"POST", "/channels/{channel}/messages", true, e.postMessage},
		{"GET", "/channels/{channel}/messages/{msg}", true, e.getMessage},
		{"PATCH", "/channels/{channel}/messages/{msg}", true, e.patchMessage},
		{"DELETE", "/channels/{channel}/messages/{msg}", true, e.deleteMessage},
		{"GET", "/users/@me", true, e.getMe},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gateway" || r.URL.Path == "/gateway/" {
			e.serveGateway(w, r)
			return
		}
		e.serveREST(w, r, rs)
	})
}

// statusRecorder records the request when the status is written, before the client can
// see the response: a test that inspects the Recorder after a call returns sees the call.
type statusRecorder struct {
	http.ResponseWriter
	status   int
	record   func(status int)
	recorded bool
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	if !s.recorded {
		s.recorded = true
		s.record(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (e *Emulator) serveREST(w http.ResponseWriter, r *http.Request, rs []route) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 25<<20))
	raw := body
	body = jsonPart(r.Header.Get("Content-Type"), body)
	at := time.Now()
	path := strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix)
	sw := &statusRecorder{ResponseWriter: w, status: 200, record: func(status int) {
		e.rec.addRequest(RecordedRequest{At: at, Method: r.Method, Path: path, Query: r.URL.RawQuery,
			Header: redactHeader(r.Header), Body: raw, Status: status})
	}}
	defer func() {
		if !sw.recorded {
			sw.WriteHeader(200)
		}
	}()
	// Discord's responses come through Google's front end; disgo treats a 429 without
	// "Via" as a Cloudflare ban and stalls every route.
	w.Header().Set("Via", "1.1 google")
	if !strings.HasPrefix(r.URL.EscapedPath(), apiPrefix+"/") {
		writeError(sw, &formError{status: 404, code: 0, message: "404: Not Found"})
		return
	}
	var matched *route
	var p params
	pathMatched := false
	for i := range rs {
		if pp, ok := matchParams(rs[i].pattern, path); ok {
			pathMatched = true
			if rs[i].method == r.Method {
				matched, p = &rs[i], pp
				break
			}
		}
	}
	if matched == nil {
		if pathMatched {
			writeError(sw, &formError{status: 405, code: 0, message: "405: Method Not Allowed"})
			return
		}
		writeError(sw, &formError{status: 404, code: 0, message: "404: Not Found"})
		return
	}
	if e.takeRateLimit(sw, r.Method, path, matched.botAuth) {
		return
	}
	if matched.botAuth && r.Header.Get("Authorization") != "Bot "+e.token {
		writeError(sw, &formError{status: 401, code: 0, message: "401: Unauthorized"})
		return
	}
	if matched.botAuth && e.overGlobalLimit(at) {
		writeRateLimited(sw, RateLimit{RetryAfter: time.Second, Global: true, Scope: "global", Bucket: "global"})
		return
	}
	if se := e.takeServerError(r.Method, path); se != nil {
		if se.AfterHandling {
			matched.handle(&discardWriter{h: http.Header{}}, r, p, body)
		}
		writeServerError(sw, se.Status)
		return
	}
	matched.handle(sw, r, p, body)
}

func redactHeader(h http.Header) http.Header {
	c := h.Clone()
	if c.Get("Authorization") != "" {
		c.Set("Authorization", "[redacted]")
	}
	return c
}

// matchParams matches a path against a pattern with {name} segments.
func matchParams(pattern, path string) (params, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var out params
	for i, seg := range ps {
		if strings.HasPrefix(seg, "{") {
			if out == nil {
				out = params{}
			}
			out[seg[1:len(seg)-1]] = xs[i]
			continue
		}
		if seg != xs[i] {
			return nil, false
		}
	}
	return out, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = 500
		buf.Reset()
		buf.WriteString(`{"code":0,"message":"500: Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, fe *formError) {
	body := map[string]any{"code": fe.code, "message": fe.message}
	if fe.errors != nil {
		body["errors"] = fe.errors
	}
	writeJSON(w, fe.status, body)
}

func (e *Emulator) getGateway(w http.ResponseWriter, _ *http.Request, _ params, _ []byte) {
	writeJSON(w, 200, map[string]any{"url": e.GatewayURL()})
}

func (e *Emulator) getGatewayBot(w http.ResponseWriter, _ *http.Request, _ params, _ []byte) {
	e.mu.Lock()
	remaining := e.startLimitRemaining
	e.mu.Unlock()
	writeJSON(w, 200, map[string]any{
		"url": e.GatewayURL(), "shards": e.cfg.Shards,
		"session_start_limit": map[string]any{
			"total": e.cfg.SessionStartTotal, "remaining": remaining,
			"reset_after": 86400000, "max_concurrency": e.cfg.MaxConcurrency,
		},
	})
}

func (e *Emulator) getMe(w http.ResponseWriter, _ *http.Request, _ params, _ []byte) {
	writeJSON(w, 200, readyUser(e.botUser()))
}

func (e *Emulator) postCallback(w http.ResponseWriter, r *http.Request, p params, body []byte) {
	withResponse, _ := strconv.ParseBool(r.URL.Query().Get("with_response"))
	status, resp, fe := e.callback(p.id("id"), p["token"], body, withResponse)
	if fe != nil {
		writeError(w, fe)
		return
	}
	if status == 204 {
		w.WriteHeader(204)
		return
	}
	writeJSON(w, status, resp)
}

func (e *Emulator) getWebhookMessage(w http.ResponseWriter, _ *http.Request, p params, _ []byte) {
	m, fe := e.webhookGet(p.id("app"), p["token"], p["msg"])
	if fe != nil {
		writeError(w, fe)
		return
	}
	writeJSON(w, 200, m)
}

func (e *Emulator) patchWebhookMessage(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	m, fe := e.webhookEdit(p.id("app"), p["token"], p["msg"], body)
	if fe != nil {
		writeError(w, fe)
		return
	}
	writeJSON(w, 200, m)
}

func (e *Emulator) deleteWebhookMessage(w http.ResponseWriter, _ *http.Request, p params, _ []byte) {
	if fe := e.webhookDelete(p.id("app"), p["token"], p["msg"]); fe != nil {
		writeError(w, fe)
		return
	}
	w.WriteHeader(204)
}

func (e *Emulator) postFollowup(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	m, fe := e.webhookFollowup(p.id("app"), p["token"], body)
	if fe != nil {
		writeError(w, fe)
		return
	}
	writeJSON(w, 200, m)
}

var errMissingAccess = &formError{status: 403, code: 50001, message: "Missing Access"}

// commandScopeLocked checks the application and guild of a command route.
func (e *Emulator) commandScopeLocked(p params) (Snowflake, *formError) {
	if p.id("app") != e.cfg.AppID {
		return 0, errMissingAccess
	}
	if g, ok := p["guild"]; ok {
		id := p.id("guild")
		if _, known := e.guilds[id]; !known || g == "" {
			return 0, errMissingAccess
		}
		return id, nil
	}
	return 0, nil
}

func (e *Emulator) getCommands(w http.ResponseWriter, _ *http.Request, p params, _ []byte) {
	e.mu.Lock()
	g, fe := e.commandScopeLocked(p)
	if fe != nil {
		e.mu.Unlock()
		writeError(w, fe)
		return
	}
	list := e.globalCmds
	if g != 0 {
		list = e.guildCmds[g]
	}
	out := e.commandsPayload(list)
	e.mu.Unlock()
	writeJSON(w, 200, out)
}

func (e *Emulator) putCommands(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	e.mu.Lock()
	g, fe := e.commandScopeLocked(p)
	var out []any
	if fe == nil {
		out, fe = e.setCommandsLocked(g, body)
	}
	e.mu.Unlock()
	if fe != nil {
		writeError(w, fe)
		return
	}
	writeJSON(w, 200, out)
}

func (e *Emulator) postCommand(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	e.mu.Lock()
	g, fe := e.commandScopeLocked(p)
	var out any
	created := false
	if fe == nil {
		out, created, fe = e.upsertCommandLocked(g, body)
	}
	e.mu.Unlock()
	if fe != nil {
		writeError(w, fe)
		return
	}
	status := 200
	if created {
		status = 201
	}
	writeJSON(w, status, out)
}

var errUnknownChannel = &formError{status: 404, code: 10003, message: "Unknown Channel"}

// channelLocked finds a channel in any guild the bot is in.
func (e *Emulator) channelLocked(id Snowflake) (*guildState, *Channel) {
	if g, ok := e.channelGuild[id]; ok {
		if c, ok := g.channels[id]; ok {
			return g, c
		}
	}
	return nil, nil
}

func (e *Emulator) postMessage(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	gs, ch := e.channelLocked(p.id("channel"))
	if ch == nil || ch.Type == ChannelCategory {
		writeError(w, errUnknownChannel)
		return
	}
	mb, err := parseMessageBody(body)
	if err != nil {
		writeError(w, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."})
		return
	}
	if fe := validateMessage(mb.content(), mb.list("embeds"), mb.list("components"), mb.flags(), mb.has("attachments") || mb.has("sticker_ids") || mb.has("poll")); fe != nil {
		writeError(w, fe)
		return
	}
	nonce := mb.nonce()
	if nonce != "" && mb.enforceNonce() {
		// The same nonce in the channel within a few minutes returns the
		// message it created instead of creating another.
		if m := e.messageByNonceLocked(ch.ID, nonce); m != nil {
			writeJSON(w, 200, e.messagePayloadLocked(m))
			return
		}
	}
	m := e.newMessageLocked(ch.ID, gs.g.ID, nil, 0)
	m.nonce = nonce
	applyMessageBody(m, mb, true)
	m.Flags &^= FlagEphemeral // ephemeral only exists for interaction responses
	if mb.has("message_reference") {
		m.messageType = 19
	}
	e.publishLocked(m)
	writeJSON(w, 200, e.messagePayloadLocked(m))
}

// nonceWindow is how long an enforced nonce keeps a message from being created twice
// ("the past few minutes" in Discord's docs).
const nonceWindow = 5 * time.Minute

func (e *Emulator) messageByNonceLocked(channel Snowflake, nonce string) *storedMessage {
	ids := e.channelMsgs[channel]
	for i := len(ids) - 1; i >= 0; i-- {
		m := e.messages[ids[i]]
		if m == nil {
			continue
		}
		if time.Since(m.Timestamp) > nonceWindow {
			return nil
		}
		if m.nonce == nonce {
			return m
		}
	}
	return nil
}

// channelMessageLocked finds a visible message in a channel.
func (e *Emulator) channelMessageLocked(p params) (*storedMessage, *formError) {
	if _, ch := e.channelLocked(p.id("channel")); ch == nil {
		return nil, errUnknownChannel
	}
	m, ok := e.messages[p.id("msg")]
	if !ok || m.Deleted || m.ChannelID != p.id("channel") || m.Flags&FlagEphemeral != 0 {
		return nil, errUnknownMessage
	}
	return m, nil
}

func (e *Emulator) getMessage(w http.ResponseWriter, _ *http.Request, p params, _ []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, fe := e.channelMessageLocked(p)
	if fe != nil {
		writeError(w, fe)
		return
	}
	writeJSON(w, 200, e.messagePayloadLocked(m))
}

func (e *Emulator) listMessages(w http.ResponseWriter, r *http.Request, p params, _ []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ch := e.channelLocked(p.id("channel")); ch == nil {
		writeError(w, errUnknownChannel)
		return
	}
	limit := 50
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l >= 1 && l <= 100 {
		limit = l
	}
	ids := e.channelMsgs[p.id("channel")]
	out := []any{}
	for i := len(ids) - 1; i >= 0 && len(out) < limit; i-- {
		if m := e.messages[ids[i]]; m != nil && !m.Deleted {
			out = append(out, e.messagePayloadLocked(m))
		}
	}
	writeJSON(w, 200, out)
}

func (e *Emulator) patchMessage(w http.ResponseWriter, _ *http.Request, p params, body []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, fe := e.channelMessageLocked(p)
	if fe != nil {
		writeError(w, fe)
		return
	}
	mb, err := parseMessageBody(body)
	if err != nil {
		writeError(w, &formError{status: 400, code: 50109, message: "The request body contains invalid JSON."})
		return
	}
	next := *m
	applyMessageBody(&next, mb, false)
	if fe := validateMessage(next.Content, next.rawEmbeds, next.Components, next.Flags, false); fe != nil {
		writeError(w, fe)
		return
	}
	*m = next
	m.EditedTimestamp = time.Now().UTC()
	if m.interaction != nil && m.interaction.original == m {
		m.interaction.edits = append(m.interaction.edits, m.view())
		m.interaction.notifyLocked()
	}
	e.notifyLocked()
	writeJSON(w, 200, e.messagePayloadLocked(m))
}

func (e *Emulator) deleteMessage(w http.ResponseWriter, _ *http.Request, p params, _ []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, fe := e.channelMessageLocked(p)
	if fe != nil {
		writeError(w, fe)
		return
	}
	m.Deleted = true
	e.notifyLocked()
	w.WriteHeader(204)
}

// jsonPart returns the JSON of a request: the body itself, or the payload_json part of a
// multipart body (how disgo sends messages with files). Files are not kept; a message
// with files is marked as having attachments so it is not "empty".
func jsonPart(contentType string, body []byte) []byte {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return body
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var payload []byte
	files := 0
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p)
		if p.FormName() == "payload_json" {
			payload = b
		} else if p.FileName() != "" {
			files++
		}
	}
	if files == 0 {
		return payload
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	if _, ok := m["attachments"]; !ok {
		list := make([]map[string]int, files)
		for i := range list {
			list[i] = map[string]int{"id": i}
		}
		b, _ := json.Marshal(list)
		m["attachments"] = b
	}
	out, _ := json.Marshal(m)
	return out
}
