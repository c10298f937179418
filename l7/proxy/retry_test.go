package proxy

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refusedAddr is a loopback port that refuses connections for the whole
// test: a socket bound to it but not listening answers every SYN with a
// reset, and holding the port keeps a later listener of the same process
// (another test's app server) from taking it over.
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// blackholeAddr is a loopback port whose connects time out: a listener
// with a backlog of one that never accepts, filled by one connection, so
// the kernel drops every further SYN.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = filler.Close() })
	return addr
}

// accessRecords parses the JSON access log.
func accessRecords(t *testing.T, tp *testProxy) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(tp.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// countRecords counts access-log records with every key/value of want.
func countRecords(recs []map[string]any, want map[string]any) int {
	n := 0
outer:
	for _, r := range recs {
		for k, v := range want {
			if r[k] != v {
				continue outer
			}
		}
		n++
	}
	return n
}

// redispatchConfig: round robin over a server that refuses connections and
// a good one, passive health off so the dead server keeps being chosen.
const redispatchConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
access_log: {enabled: true, sample: 1}
routes:
  - {name: r, match: {path_prefix: /}, pool: p}
  - {name: dead, match: {path_prefix: /dead}, pool: dead}
pools:
  - name: p
    policy: round_robin
    health: {passive: {disabled: true}}
    servers:
      - {name: refused, addr: "{refused}"}
      - {name: good, addr: "{good}"}
  - name: dead
    health: {passive: {disabled: true}}
    servers:
      - {name: d1, addr: "{refused}"}
      - {name: d2, addr: "{refused2}"}
`

func startRedispatch(t *testing.T, text string, good *appServer) *testProxy {
	t.Helper()
	text = strings.NewReplacer("{refused}", refusedAddr(t), "{refused2}", refusedAddr(t), "{good}", good.addr()).Replace(text)
	return startProxy(t, text, nil)
}

func TestNeverReachedIsRetriedForAnyMethod(t *testing.T) {
	good := newAppServer(t, "good", nil)
	tp := startRedispatch(t, redispatchConfig, good)
	c := client(t)

	const n = 4
	for i := range n {
		resp, body := do(t, c, "GET", tp.url+"/x", nil, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "GET %d: %s", i, body)
		assert.Equal(t, "good", resp.Header.Get("X-Server"))
		resp, body = do(t, c, "POST", tp.url+"/x", strings.NewReader("order=1"), nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "POST %d: %s", i, body)
		assert.Equal(t, "good", resp.Header.Get("X-Server"))
	}
	_, gotBody, hits := good.lastRequest()
	assert.Equal(t, 2*n, hits, "every request answered by the good server, once")
	assert.Equal(t, "order=1", string(gotBody), "a retried POST carries its body")

	recs := accessRecords(t, tp)
	retried := countRecords(recs, map[string]any{"termination": "ok", "tries": float64(2), "backend": "good"})
	assert.Equal(t, n, retried, "round robin sends every other request to the refused server first: %v", recs)
	assert.Equal(t, uint64(n), tp.dir.Pools()[0].Budget.Retries())

	// Every server of the pool refuses: the client's 502 says why.
	resp, _ := do(t, c, "POST", tp.url+"/dead/x", strings.NewReader("y"), nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	recs = accessRecords(t, tp)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/dead/x", "status": float64(502), "termination": "connect_refused", "tries": float64(2)}), "%v", recs)

	// The same in the metrics.
	assert.Equal(t, float64(2*n), metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "r", "cause": "ok"}))
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "dead", "cause": "connect_refused"}))
	assert.Equal(t, float64(n), metricValue(t, tp.reg, "xlb_l7_retries_total", map[string]string{"pool": "p"}))
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_retries_total", map[string]string{"pool": "dead"}))
	resp, _ = do(t, c, "GET", tp.url+"/dead", nil, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "dead", "cause": "connect_refused"}))
}

func TestRetriesDisabledOnRoute(t *testing.T) {
	good := newAppServer(t, "good", nil)
	tp := startRedispatch(t, strings.Replace(redispatchConfig, "pool: p}", "pool: p, retries: {disabled: true}}", 1), good)
	c := client(t)
	var bad int
	for range 4 {
		if resp, _ := do(t, c, "GET", tp.url+"/x", nil, nil); resp.StatusCode == http.StatusBadGateway {
			bad++
		}
	}
	assert.Equal(t, 2, bad, "without retries the refused server's share fails")
	assert.Equal(t, 2, countRecords(accessRecords(t, tp), map[string]any{"status": float64(502), "termination": "connect_refused", "tries": float64(1)}))
}

// stickyRedispatchConfig: a sticky pool of two servers.
const stickyRedispatchConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
access_log: {enabled: true, sample: 1}
sticky:
  keys:
    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}
routes: [{name: checkout, match: {path_prefix: /checkout}, pool: checkout}]
pools:
  - name: checkout
    sticky: {cookie: xlb_checkout}
    servers:
      - {name: c1, addr: "{c1}"}
      - {name: c2, addr: "{c2}"}
`

func TestStickyClientOfDeadServerIsRepinned(t *testing.T) {
	// The servers close every connection after answering, so the proxy
	// keeps no idle connection to the one that dies: its next request is a
	// fresh, refused connect.
	closeConn := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
	}
	servers := map[string]*appServer{
		"c1": newAppServer(t, "c1", closeConn),
		"c2": newAppServer(t, "c2", closeConn),
	}
	tp := startProxy(t, stickyRedispatchConfig, servers)
	c := client(t)

	resp, _ := do(t, c, "POST", tp.url+"/checkout/cart", strings.NewReader("a"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	pinned := resp.Header.Get("X-Server")
	cookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	require.NotEmpty(t, cookie)
	other := map[string]string{"c1": "c2", "c2": "c1"}[pinned]

	servers[pinned].srv.Close() // the pinned server dies: connections are refused

	resp, body := do(t, c, "POST", tp.url+"/checkout/pay", strings.NewReader("b"), map[string]string{"Cookie": cookie})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, other, resp.Header.Get("X-Server"), "redispatched to the live server")
	repin := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	require.NotEmpty(t, repin, "the client is re-pinned with a new cookie")
	assert.NotEqual(t, cookie, repin)

	// The new cookie names the live server: a plain sticky hit, one try.
	resp, _ = do(t, c, "POST", tp.url+"/checkout/done", strings.NewReader("c"), map[string]string{"Cookie": repin})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, other, resp.Header.Get("X-Server"))
	assert.Empty(t, resp.Header.Get("Set-Cookie"), "no re-pin needed")

	recs := accessRecords(t, tp)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/checkout/pay", "termination": "ok", "tries": float64(2), "backend": other}), "%v", recs)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/checkout/done", "tries": float64(1), "backend": other}), "%v", recs)
	assert.Equal(t, uint64(1), tp.dir.StickyStats(0).Repins.Load())
}

// flakyConfig: round robin (first pick is the first server) over a flaky
// server and a good one.
const flakyConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
access_log: {enabled: true, sample: 1}
routes:
  - name: r
    match: {path_prefix: /}
    pool: p
    timeouts: {response: 5s}
    retries: {per_try_timeout: 200ms}
  - name: strict
    match: {path_prefix: /strict}
    pool: p
    retries: {idempotent: false}
pools:
  - name: p
    policy: round_robin
    health: {passive: {disabled: true}}
    servers:
      - {name: flaky, addr: "{flaky}"}
      - {name: good, addr: "{good}"}
`

// flakyHandler fails by path: /close closes the connection without a
// response byte, /partial sends half a status line and closes, /slow
// answers only when release is closed.
func flakyHandler(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/close"), strings.HasSuffix(r.URL.Path, "/partial"):
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			if strings.HasSuffix(r.URL.Path, "/partial") {
				_, _ = conn.Write([]byte("HTTP/1.1 200 O"))
			}
			_ = conn.Close()
		case strings.HasSuffix(r.URL.Path, "/slow"):
			<-release
		}
	}
}

func TestRetryOnlyWhenSafe(t *testing.T) {
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantCause          string
		wantTries          float64
		// wantFlaky is how often the flaky server saw the request: an
		// idempotent request whose connection closed before a response
		// byte is reconnected once to the same server (what a keep-alive
		// connection closed while idle looks like) before forward moves on.
		wantFlaky int
	}{
		{"GET closed before answering: retried", "GET", "/close", 200, "ok", 2, 2},
		{"HEAD closed before answering: retried", "HEAD", "/close", 200, "ok", 2, 2},
		{"PUT closed before answering: retried", "PUT", "/close", 200, "ok", 2, 2},
		{"POST that reached the server: not retried", "POST", "/close", 502, "upstream_reset", 1, 1},
		{"PATCH that reached the server: not retried", "PATCH", "/close", 502, "upstream_reset", 1, 1},
		{"GET after response bytes: not retried", "GET", "/partial", 502, "upstream_error", 1, 1},
		{"GET per-try timeout: retried", "GET", "/slow", 200, "ok", 2, 1},
		{"POST per-try timeout: not retried", "POST", "/slow", 504, "response_timeout", 1, 1},
		{"GET on a route without idempotent retries", "GET", "/strict/close", 502, "upstream_reset", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			flaky := newAppServer(t, "flaky", flakyHandler(release))
			t.Cleanup(func() { close(release) }) // before the server's Close
			good := newAppServer(t, "good", nil)
			tp := startProxy(t, flakyConfig, map[string]*appServer{"flaky": flaky, "good": good})

			resp, body := do(t, client(t), tt.method, tp.url+tt.path, strings.NewReader("body"), nil)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, body)
			_, _, flakyHits := flaky.lastRequest()
			_, _, goodHits := good.lastRequest()
			assert.Equal(t, tt.wantFlaky, flakyHits, "the first try went to the flaky server")
			assert.Equal(t, int(tt.wantTries)-1, goodHits, "a retry went to the good server")
			recs := accessRecords(t, tp)
			assert.Equal(t, 1, countRecords(recs, map[string]any{"termination": tt.wantCause, "tries": tt.wantTries}), "%v", recs)
		})
	}
}

func TestRetryBudgetStopsRetries(t *testing.T) {
	good := newAppServer(t, "good", nil)
	// Floor 1/s over 10 s: 10 retries; 10 % of 60 requests is only 6, so
	// the floor is the cap for the whole run.
	text := strings.Replace(redispatchConfig, "    policy: round_robin\n", "    policy: round_robin\n    retry_budget: {percent: 10, min_per_second: 1, window: 10s}\n", 1)
	tp := startRedispatch(t, text, good)
	c := client(t)

	const n = 60 // round robin sends 30 of them to the refused server first
	failed := 0
	for range n {
		resp, _ := do(t, c, "GET", tp.url+"/x", nil, nil)
		if resp.StatusCode != http.StatusOK {
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
			failed++
		}
	}
	b := tp.dir.Pools()[0].Budget
	assert.Equal(t, uint64(10), b.Retries(), "retries capped by the budget")
	assert.Equal(t, uint64(20), b.Exhausted(), "the other 20 refused")
	assert.Equal(t, 20, failed)
	recs := accessRecords(t, tp)
	assert.Equal(t, 20, countRecords(recs, map[string]any{"status": float64(502), "termination": "budget_exhausted", "tries": float64(1), "backend": "refused"}))
	assert.Equal(t, 10, countRecords(recs, map[string]any{"status": float64(200), "tries": float64(2)}))
	assert.Equal(t, 20.0, metricValue(t, tp.reg, "xlb_l7_retry_budget_exhausted_total", map[string]string{"pool": "p"}))
	assert.Equal(t, 20.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "r", "cause": "budget_exhausted"}))
	assert.Equal(t, 40.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "r", "cause": "ok"}))
}

func TestDialTimeoutIsRetriedForAnyMethod(t *testing.T) {
	good := newAppServer(t, "good", nil)
	text := strings.NewReplacer("{refused}", blackholeAddr(t), "{refused2}", blackholeAddr(t), "{good}", good.addr()).Replace(redispatchConfig)
	text = strings.Replace(text, "pool: p}", "pool: p, timeouts: {dial: 100ms}}", 1)
	text = strings.Replace(text, "pool: dead}", "pool: dead, timeouts: {dial: 100ms}}", 1)
	tp := startProxy(t, text, nil)
	c := client(t)

	// Round robin: the first request is decided for the black hole.
	resp, body := do(t, c, "POST", tp.url+"/x", strings.NewReader("order=2"), nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "good", resp.Header.Get("X-Server"))
	_, gotBody, _ := good.lastRequest()
	assert.Equal(t, "order=2", string(gotBody))

	resp, _ = do(t, c, "POST", tp.url+"/dead/x", strings.NewReader("y"), nil)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	recs := accessRecords(t, tp)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/x", "termination": "ok", "tries": float64(2), "backend": "good"}), "%v", recs)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/dead/x", "status": float64(504), "termination": "connect_timeout", "tries": float64(2)}), "%v", recs)
}
