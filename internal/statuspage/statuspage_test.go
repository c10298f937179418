package statuspage

import (
	"io"
	"net/http"
	"net/http/httptest"
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
