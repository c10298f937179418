package statuspage

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSamplerPicksAboutASecond checks which earlier snapshot rates are
// computed against: the newest one at least a window old, else the oldest.
func TestSamplerPicksAboutASecond(t *testing.T) {
	var s Sampler[int]
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	_, _, ok := s.Add(at(0), 0)
	assert.False(t, ok, "no earlier snapshot on the first call")
	for _, c := range []struct{ now, want int }{
		{300, 0},    // nothing a second old yet: the oldest
		{1200, 0},   // 0 is 1.2 s old, 300 only 0.9 s
		{1500, 300}, // 300 is now 1.2 s old
		{2600, 1500},
	} {
		prev, prevAt, ok := s.Add(at(c.now), c.now)
		require.True(t, ok, "at %d ms", c.now)
		assert.Equal(t, c.want, prev, "at %d ms", c.now)
		assert.Equal(t, at(c.want), prevAt)
	}
	_, _, ok = s.Add(at(2600), 2600)
	assert.True(t, ok, "same clock as the last one still has an older snapshot")

	var many Sampler[int]
	for i := range 3 * maxSnapshots {
		many.Add(at(i), i)
	}
	assert.Len(t, many.snaps, maxSnapshots, "history is bounded")
}

// TestMountLeavesOtherPathsAlone checks that the page takes "/" itself and
// nothing else of the mux it shares with /metrics and friends.
func TestMountLeavesOtherPathsAlone(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") })
	Mount(mux, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, map[string]string{"kind": KindEdge}) }))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]int{"/": 200, "/metrics": 200, "/api/status": 200, "/static/app.js": 200, "/static/style.css": 200,
		"/static/": 404, "/static/../statuspage.go": 404, "/other": 404} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, path)
		switch {
		case path == "/api/status":
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		case want == 200 && path != "/metrics":
			assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'", "%s: nothing from elsewhere", path)
		}
	}
}

// TestReadOnlyAndSelfContained: the page and its JSON answer only GET (and
// HEAD): no method of the page's paths changes anything, and the embedded
// assets name nothing outside the binary (no CDN, no other host), and the
// script's only request is its GET of /api/status.
func TestReadOnlyAndSelfContained(t *testing.T) {
	mux := http.NewServeMux()
	called := 0
	Mount(mux, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		called++
		WriteJSON(w, map[string]string{"kind": KindEdge})
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{"/", "/api/status", "/static/app.js"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s", method, path)
		}
	}
	assert.Zero(t, called, "no write reached the status handler")

	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|<script[^>]+src="(https?:)?//`)
	require.NoError(t, fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		require.NoError(t, err)
		assert.Empty(t, external.FindAllString(string(b), -1), "%s refers to something outside the binary", p)
		if strings.HasSuffix(p, ".js") {
			assert.Equal(t, 1, strings.Count(string(b), "fetch("), "%s: one request, the status poll", p)
			assert.NotContains(t, string(b), "XMLHttpRequest", p)
			assert.NotRegexp(t, `(?i)method\s*:`, string(b), "%s: the poll is a plain GET", p)
		}
		return nil
	}))
}
