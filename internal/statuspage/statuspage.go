// Package statuspage serves the live status page of xlb's daemon, proxy
// and DNS server:
// one HTML page, its stylesheet and script, embedded in the binary (edge
// hosts have no internet, so nothing comes from a CDN), and the helpers
// both status JSON endpoints share. The page polls /api/status once a
// second and renders whichever kind of status it gets ("edge", "proxy" or
// "dns"), so the look and the table code exist once.
//
// The page is read-only: it only ever issues GET /api/status.
package statuspage

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// Kinds of status document; the page picks its views by Kind.
const (
	KindEdge  = "edge"
	KindProxy = "proxy"
	KindDNS   = "dns"
)

// APIPath is where the status JSON is served, next to the page at "/".
const APIPath = "/api/status"

// Mount registers the page on mux: GET / (the page), GET /static/... (its
// assets) and GET /api/status (status, the JSON the page renders). Other
// paths on mux (/metrics, /ready, ...) are left alone: "/" matches only
// the root itself.
func Mount(mux *http.ServeMux, status http.Handler) {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, r, files, "index.html")
	})
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) {
		serveFile(w, r, files, path.Base(r.PathValue("file")))
	})
	mux.Handle("GET "+APIPath, status)
}

func serveFile(w http.ResponseWriter, r *http.Request, files fs.FS, name string) {
	if name == "index.html" && r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	// The page only reads; it never embeds anything from elsewhere.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, files, name)
}

// WriteJSON answers v as JSON, uncached.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}

// WriteError answers a JSON error object with the given status code; the
// page shows Error in its banner.
func WriteError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{err.Error()})
}

// Sampler keeps recent snapshots of cumulative counters so that a status
// request can turn its fresh snapshot into per-second rates server-side:
// Add returns the newest earlier snapshot at least Window old (or the
// oldest one it has, when none is that old yet). Several pages polling at
// once share the same history; each gets a window of about Window.
type Sampler[T any] struct {
	// Window is the preferred rate interval; 0 means one second.
	Window time.Duration

	mu    sync.Mutex
	snaps []snapshot[T]
}

type snapshot[T any] struct {
	at time.Time
	v  T
}

// maxSnapshots bounds the history when many clients poll fast.
const maxSnapshots = 64

// Add records v taken at at and returns the snapshot to compute rates
// against and its time; ok is false on the first call (no rates yet) or
// when the clock did not advance.
func (s *Sampler[T]) Add(at time.Time, v T) (prev T, prevAt time.Time, ok bool) {
	win := s.Window
	if win <= 0 {
		win = time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := -1
	for i, sn := range s.snaps {
		if at.Sub(sn.at) >= win {
			idx = i
		}
	}
	if idx < 0 && len(s.snaps) > 0 {
		idx = 0
	}
	if idx >= 0 && at.After(s.snaps[idx].at) {
		prev, prevAt, ok = s.snaps[idx].v, s.snaps[idx].at, true
	}
	if idx > 0 {
		s.snaps = s.snaps[idx:]
	}
	if len(s.snaps) >= maxSnapshots {
		s.snaps = s.snaps[1:]
	}
	s.snaps = append(s.snaps, snapshot[T]{at: at, v: v})
	return prev, prevAt, ok
}
