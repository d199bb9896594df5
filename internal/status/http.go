package status

import (
	"bytes"
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ensemble-bot/ensemble/internal/secret"
)

// ErrNotRunning: the member has not joined its cluster yet (or has left).
var ErrNotRunning = errors.New("the member is not running in its cluster")

// Handler serves /status (HTML) and /status.json.
type Handler struct {
	// Collect returns the cluster's status, or ErrNotRunning.
	Collect func(ctx context.Context) (Cluster, error)
	// Protected: the admin server is reachable from other hosts, so a
	// request must carry "Authorization: Bearer <Token>". With no Token,
	// a protected status is refused outright: operational data (member
	// addresses, load) is not for the world.
	Protected bool
	// Token is the bearer token (ADMIN_TOKEN).
	Token secret.String
}

// Register adds the two routes to mux.
func (h Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /status", h.page)
	mux.HandleFunc("GET /status.json", h.json)
}

func (h Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	if !h.Protected {
		return true
	}
	if !h.Token.IsSet() {
		http.Error(w, "status is off: the admin server is not on loopback and ADMIN_TOKEN is not set", http.StatusForbidden)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.Token.Reveal())) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ensemble status"`)
		http.Error(w, "a bearer token (ADMIN_TOKEN) is required", http.StatusUnauthorized)
		return false
	}
	return true
}

// askWithin bounds a status request: a member that does not answer is
// shown as such, not waited for.
const askWithin = 2 * time.Second

func (h Handler) collect(w http.ResponseWriter, r *http.Request) (Cluster, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), askWithin)
	defer cancel()
	c, err := h.Collect(ctx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return c, false
	}
	return c, true
}

func (h Handler) json(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	c, ok := h.collect(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(c)
}

func (h Handler) page(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	c, ok := h.collect(w, r)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := Render(&buf, c); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Self-contained: no script, style or image from anywhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(buf.Bytes())
}

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"since": func(t time.Time, now time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Round(time.Second).String()
	},
	"notReady": func(cs []Component) []Component {
		var out []Component
		for _, c := range cs {
			if !c.Ready {
				out = append(out, c)
			}
		}
		return out
	},
}).Parse(pageHTML))

// Render writes the HTML page of c.
func Render(w interface{ Write([]byte) (int, error) }, c Cluster) error {
	return pageTmpl.Execute(w, c)
}
