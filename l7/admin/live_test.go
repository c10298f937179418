package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/internal/statuspage"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

const liveConfig = `listeners: [{addr: %q}]
admin: {socket: /tmp/unused.sock}
routes:
  - {name: api, match: {path_prefix: /api}, pool: app}
  - {name: web, match: {path_prefix: /}, pool: app}
pools:
  - name: app
    servers:
      - {name: a, addr: %q}
      - {name: b, addr: %q}
      - {name: c, addr: %q}
  - name: spare
    slow_start: 1m
    servers:
      - {name: s1, addr: "127.0.0.1:1"}
`

// liveProxy is a real proxy serving on loopback in front of real app
// servers, with its admin listener (status page included) on another
// loopback port, wired as `xlb proxy` wires it.
type liveProxy struct {
	m         *Manager
	p         *proxy.Proxy
	client    *http.Client
	front     string // client-facing address
	adminURL  string
	appErrors map[string]*bool // server name -> answer 500
}

func startLiveProxy(t *testing.T) *liveProxy {
	t.Helper()
	appErrors := map[string]*bool{}
	var addrs []any
	for _, name := range []string{"a", "b", "c"} {
		fail := new(bool)
		appErrors[name] = fail
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if *fail {
				w.WriteHeader(http.StatusInternalServerError)
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	lp, _ := serveLiveProxy(t, liveConfig, addrs)
	lp.appErrors = appErrors
	return lp
}

// serveLiveProxy writes config — a format whose first verb is the
// client-facing address, args the rest — to a file, opens it with
// openLiveProxy and serves client traffic on a loopback port.
func serveLiveProxy(t *testing.T, config string, args []any, opts ...director.Option) (*liveProxy, *director.Director) {
	t.Helper()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(config, append([]any{front.Addr().String()}, args...)...)), 0o600))
	lp, dir := openLiveProxy(t, path, opts...)
	lp.front = front.Addr().String()
	go func() { _ = lp.p.Serve(front) }()
	return lp, dir
}

// openLiveProxy opens the config at path as `xlb proxy` does: a Manager,
// its director (returned too), and a proxy attached to the Manager with
// the status page on its admin listener, which it serves on a loopback
// port. The caller serves the traffic listeners; all is closed when the
// test ends.
func openLiveProxy(t *testing.T, path string, opts ...director.Option) (*liveProxy, *director.Director) {
	t.Helper()
	m, err := Open(path, nil)
	require.NoError(t, err)
	dir, err := director.New(m.Config(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	reg := prometheus.NewRegistry()
	p, err := proxy.New(m.Config(), dir, proxy.Options{
		Registerer: reg, Gatherer: reg,
		AdminMount: func(mux *http.ServeMux) { statuspage.Mount(mux, m.LiveHandler(reg, "test")) },
	})
	require.NoError(t, err)
	m.Attach(p)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lp := &liveProxy{m: m, p: p, client: &http.Client{Timeout: 5 * time.Second}, adminURL: "http://" + adminLn.Addr().String()}
	go func() { _ = p.ServeAdmin(adminLn) }()
	t.Cleanup(func() { _ = p.Close() })
	return lp, dir
}

func (lp *liveProxy) status(t *testing.T) LiveStatus {
	t.Helper()
	resp, err := lp.client.Get(lp.adminURL + statuspage.APIPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var st LiveStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func (lp *liveProxy) get(t *testing.T, path string) int {
	t.Helper()
	resp, err := lp.client.Get("http://" + lp.front + path)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func serverByName(p LivePool, name string) LiveServer {
	for _, s := range p.Servers {
		if s.Name == name {
			return s
		}
	}
	return LiveServer{}
}

// TestLiveStatusRatesFromRealTraffic sends counted requests through a real
// proxy to real app servers and checks that /api/status turns the proxy's
// own counters and histograms into rates whose product with the interval
// is exactly the number of requests sent, and that state changes (5xx
// ejection, drain, health down) show up in the servers and the summary.
func TestLiveStatusRatesFromRealTraffic(t *testing.T) {
	lp := startLiveProxy(t)
	require.Eventually(t, func() bool { return lp.get(t, "/api/x") == http.StatusOK }, 30*time.Second, 20*time.Millisecond)

	first := lp.status(t)
	assert.Equal(t, "proxy", first.Kind)
	assert.Equal(t, "test", first.Version)
	assert.True(t, first.Ready, first.ReadyReason)
	require.Len(t, first.Pools, 2)
	require.Len(t, first.Routes, 2)
	assert.Equal(t, LiveSummary{Pools: 2, Servers: 4, Up: 4}, first.Summary)

	const n = 60
	for range n {
		require.Equal(t, http.StatusOK, lp.get(t, "/api/x"))
	}
	*lp.appErrors["a"] = true
	var fromA int
	for range n {
		if lp.get(t, "/other") == http.StatusInternalServerError {
			fromA++
		}
	}
	*lp.appErrors["a"] = false
	require.Positive(t, fromA, "round robin over three servers sends some requests to a")

	st := lp.status(t)
	require.Positive(t, st.RateSeconds)
	counted := func(rate float64) float64 { return rate * st.RateSeconds }
	routes := map[string]LiveRoute{}
	for _, r := range st.Routes {
		routes[r.Name] = r
	}
	assert.InDelta(t, n, counted(routes["api"].RequestsPerSecond), 0.01)
	assert.InDelta(t, 0, counted(routes["api"].ErrorsPerSecond), 0.01)
	assert.InDelta(t, n, counted(routes["web"].RequestsPerSecond), 0.01)
	assert.InDelta(t, fromA, counted(routes["web"].ErrorsPerSecond), 0.01)
	app := st.Pools[0]
	require.Equal(t, "app", app.Name)
	assert.Equal(t, []string{"api", "web"}, app.Routes)
	assert.InDelta(t, 2*n, counted(app.RequestsPerSecond), 0.01)
	var perServer float64
	for _, s := range app.Servers {
		perServer += counted(s.RequestsPerSecond)
		require.NotNil(t, s.P50Ms, "server %s answered requests in the interval", s.Name)
		require.NotNil(t, s.P99Ms)
		assert.LessOrEqual(t, *s.P50Ms, *s.P99Ms)
		assert.Positive(t, *s.P50Ms)
	}
	assert.InDelta(t, 2*n, perServer, 0.01)
	assert.InDelta(t, fromA, counted(serverByName(app, "a").ErrorsPerSecond), 0.01)
	// Its consecutive 5xx got a passively ejected.
	assert.Equal(t, LiveEjected, serverByName(app, "a").State)
	assert.Positive(t, serverByName(app, "a").Ejections)
	assert.Equal(t, 2, app.Available)

	// A drain and a failed health check show up without any request.
	require.NoError(t, lp.m.SetDrain("app", "b", true, false))
	_, dir := lp.p.Running()
	dir.SetStatus("app/c", false)
	st = lp.status(t)
	app = st.Pools[0]
	assert.Equal(t, LiveDraining, serverByName(app, "b").State)
	assert.NotNil(t, serverByName(app, "b").DrainDeadline)
	assert.Equal(t, LiveDown, serverByName(app, "c").State)
	assert.Equal(t, 0, app.Available)
	assert.Equal(t, LiveSummary{Pools: 2, Servers: 4, Up: 1, Draining: 1, Ejected: 1, Down: 1, PoolsEmpty: 1}, st.Summary)
	assert.Equal(t, http.StatusServiceUnavailable, lp.get(t, "/api/x"), "an empty pool answers 503")
}

// TestLiveStatusSlowStart checks that a server back from a failed health
// check is reported in slow start with the fraction of its weight in
// effect.
func TestLiveStatusSlowStart(t *testing.T) {
	lp := startLiveProxy(t)
	spare := func() LiveServer {
		st := lp.status(t)
		require.Len(t, st.Pools, 2)
		return serverByName(st.Pools[1], "s1")
	}
	assert.Equal(t, LiveUp, spare().State, "up from the start: no ramp")
	_, dir := lp.p.Running()
	dir.SetStatus("spare/s1", false)
	assert.Equal(t, LiveDown, spare().State)
	dir.SetStatus("spare/s1", true)
	s := spare()
	assert.Equal(t, LiveSlowStart, s.State)
	assert.Less(t, s.EffectiveWeight, 0.2, "it ramps from 10 %% over a minute")
	assert.Equal(t, 1, lp.status(t).Summary.SlowStart)
}

// TestLiveStatusPageServed checks the page and its assets come from the
// binary on the admin listener, next to the proxy's own endpoints.
func TestLiveStatusPageServed(t *testing.T) {
	lp := startLiveProxy(t)
	for path, want := range map[string]string{
		"/":                 `<script src="/static/app.js"`,
		"/static/app.js":    `fetch("/api/status"`,
		"/static/style.css": "tr.st-down td",
		"/healthz":          "ok",
	} {
		resp, err := lp.client.Get(lp.adminURL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, string(body), want, path)
	}
	for _, path := range []string{"/nope", "/static/nope.js", "/index.html"} {
		resp, err := lp.client.Get(lp.adminURL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
	resp, err := lp.client.Post(lp.adminURL+statuspage.APIPath, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "the status API is read-only")
}

// TestHistogramQuantile checks the bucket interpolation on a histogram
// whose answer is known.
func TestHistogramQuantile(t *testing.T) {
	h := histo{count: 100, bounds: []float64{0.001, 0.01, 0.1}, cum: []float64{50, 90, 100}}
	p50, p99 := h.quantileMs(0.5), h.quantileMs(0.99)
	require.NotNil(t, p50)
	assert.InDelta(t, 1.0, *p50, 1e-9)  // exactly at the first bound
	assert.InDelta(t, 91.0, *p99, 1e-9) // 10 % into (10 ms, 100 ms]
	assert.InDelta(t, 5.5, *h.quantileMs(0.7), 1e-9)
	assert.Nil(t, histo{}.quantileMs(0.5))
	over := histo{count: 10, bounds: []float64{0.001}, cum: []float64{5}}
	assert.InDelta(t, 1.0, *over.quantileMs(0.99), 1e-9, "above the last bound reports the bound")

	d := h.minus(histo{count: 50, bounds: h.bounds, cum: []float64{40, 45, 50}})
	assert.Equal(t, histo{count: 50, bounds: h.bounds, cum: []float64{10, 45, 50}}, d)
	assert.Equal(t, histo{}, h.minus(histo{count: 200, bounds: h.bounds, cum: []float64{1, 2, 3}}), "a reset histogram gives nothing")
}

// TestLiveStatusFailingOpen: a real proxy whose pool fails open (every
// server failing its checks, health.all_down: fail_open) keeps answering
// from those servers; /api/status, the metrics and the pool listing say so,
// and it is not counted as an empty pool.
func TestLiveStatusFailingOpen(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "a") }))
	t.Cleanup(app.Close)
	lp, dir := serveLiveProxy(t, `listeners: [{addr: %q}]
admin: {socket: /tmp/unused.sock}
routes: [{name: web, match: {path_prefix: /}, pool: app}]
pools:
  - name: app
    servers: [{name: a, addr: %q}]
    health: {all_down: fail_open}
`, []any{app.Listener.Addr().String()})
	require.Eventually(t, func() bool { return lp.get(t, "/") == http.StatusOK }, 30*time.Second, 20*time.Millisecond)

	dir.SetStatus("app/a", false)
	assert.Equal(t, http.StatusOK, lp.get(t, "/"), "the pool fails open to its one server")
	st := lp.status(t)
	require.Len(t, st.Pools, 1)
	assert.True(t, st.Pools[0].FailingOpen)
	assert.Zero(t, st.Pools[0].Available)
	assert.Contains(t, st.Pools[0].Problem, "failing open")
	assert.Equal(t, 1, st.Summary.PoolsFailingOpen)
	assert.Zero(t, st.Summary.PoolsEmpty)
	pools := lp.m.Pools(DefaultQuiet)
	require.Len(t, pools, 1)
	assert.True(t, pools[0].FailingOpen)
	resp, err := lp.client.Get(lp.adminURL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(metrics), `xlb_l7_pool_failing_open{pool="app"} 1`)
	assert.Contains(t, string(metrics), `xlb_l7_pool_available_servers{pool="app"} 0`)
	resp, err = lp.client.Get(lp.adminURL + "/ready")
	require.NoError(t, err)
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the host still serves")
	assert.Contains(t, string(ready), "route web: pool app has no healthy server (failing open: sent to servers that fail their checks)")

	dir.SetStatus("app/a", true)
	st = lp.status(t)
	assert.False(t, st.Pools[0].FailingOpen)
	assert.Equal(t, 1, st.Pools[0].Available)
	assert.Empty(t, st.Pools[0].Problem)
}

// TestLiveFailOpenBelow: a real proxy whose pool of four real app servers
// has health.fail_open_below: 50% and whose active checks fail on three of
// them fails open: requests go to all four instead of piling onto the one
// left, and /api/status, the metrics and the pool listing say so. Failing
// open starts and ends with one log line each; at 2 of 4 passing the pool
// is ordinary again and only those two answer.
func TestLiveFailOpenBelow(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	healthy := map[string]*atomic.Bool{}
	var servers strings.Builder
	for _, n := range names {
		ok := &atomic.Bool{}
		ok.Store(true)
		healthy[n] = ok
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" && !ok.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, n)
		}))
		t.Cleanup(app.Close)
		fmt.Fprintf(&servers, "{name: %s, addr: %q}, ", n, app.Listener.Addr().String())
	}
	var logs logbuf.Buffer
	lp, dir := serveLiveProxy(t, `listeners: [{addr: %q}]
admin: {socket: /tmp/unused.sock}
routes: [{name: web, match: {path_prefix: /}, pool: app}]
pools:
  - name: app
    servers: [%s]
    health:
      active: {path: /health, interval: 50ms, timeout: 40ms, rise: 1, fall: 1}
      all_down: fail_open
      fail_open_below: 50%%
`, []any{servers.String()}, director.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, dir.Start(ctx))
	// answers sends n requests and counts which server answered each.
	answers := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			resp, err := lp.client.Get("http://" + lp.front + "/")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			got[string(body)]++
		}
		return got
	}
	available := func() int { return lp.status(t).Pools[0].Available }
	require.Eventually(t, func() bool { return available() == 4 }, 30*time.Second, 20*time.Millisecond)
	const (
		enter = "too few servers pass their health checks: failing open, new clients go to every server not draining"
		leave = "pool no longer failing open"
	)

	for _, n := range []string{"a", "b", "c"} {
		healthy[n].Store(false)
	}
	require.Eventually(t, func() bool { return available() == 1 }, 30*time.Second, 20*time.Millisecond)
	st := lp.status(t)
	require.Len(t, st.Pools, 1)
	assert.True(t, st.Pools[0].FailingOpen, "1 of 4 passing is below 50%")
	assert.Equal(t, "failing open: 1 of 4 servers pass their health checks, new clients go to every server not draining", st.Pools[0].Problem)
	assert.Equal(t, 1, st.Summary.PoolsFailingOpen)
	got := answers(80)
	for _, n := range names {
		assert.Positive(t, got[n], "every server answers, not only d: %v", got)
	}
	pools := lp.m.Pools(DefaultQuiet)
	require.Len(t, pools, 1)
	assert.True(t, pools[0].FailingOpen)
	assert.Equal(t, &FailOpen{Below: 50}, pools[0].FailOpen)
	resp, err := lp.client.Get(lp.adminURL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(metrics), `xlb_l7_pool_failing_open{pool="app"} 1`)
	assert.Contains(t, string(metrics), `xlb_l7_pool_available_servers{pool="app"} 1`)
	assert.Equal(t, 1, logs.Count(enter), "%s", logs.String())
	resp, err = lp.client.Get(lp.adminURL + "/ready")
	require.NoError(t, err)
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a server still passes: the host serves")
	assert.Equal(t, "ready\nroute web: pool app is failing open: 1 of 4 servers pass their checks (sent to all of them)\n", string(ready))

	healthy["b"].Store(true)
	require.Eventually(t, func() bool { return available() == 2 }, 30*time.Second, 20*time.Millisecond)
	st = lp.status(t)
	assert.False(t, st.Pools[0].FailingOpen)
	assert.Empty(t, st.Pools[0].Problem)
	got = answers(40)
	assert.Equal(t, 40, got["b"]+got["d"], "only the two passing servers: %v", got)
	assert.Equal(t, 1, logs.Count(enter), "one warning for one episode:\n%s", logs.String())
	assert.Equal(t, 1, logs.Count(leave), "%s", logs.String())
	resp, err = lp.client.Get(lp.adminURL + "/ready")
	require.NoError(t, err)
	ready, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "ready\n", string(ready))
}
