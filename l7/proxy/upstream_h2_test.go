package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h2cApp is a real app server that speaks only HTTP/2 with prior
// knowledge (no HTTP/1.1, no Upgrade), on loopback.
type h2cApp struct {
	addr string
	mu   sync.Mutex
	seen []string // "proto method uri host body" per request
}

func newH2CApp(t *testing.T) *h2cApp {
	t.Helper()
	a := &h2cApp{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.seen = append(a.seen, fmt.Sprintf("%s %s %s %s %s xfp=%s", r.Proto, r.Method, r.RequestURI, r.Host, body, r.Header.Get("X-Forwarded-Proto")))
		a.mu.Unlock()
		if r.URL.Path == "/checkout/slow" {
			time.Sleep(time.Second)
		}
		w.Header().Set("X-Server", "h2c-app")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		fmt.Fprint(w, "hello over h2c")
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

// requests are the requests seen since the last reset, those whose
// target starts with prefix when one is given.
func (a *h2cApp) requests(prefix ...string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.seen {
		if len(prefix) == 0 || strings.Contains(r, " "+prefix[0]) {
			out = append(out, r)
		}
	}
	return out
}

func (a *h2cApp) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = nil
}

func TestUpstreamH2C(t *testing.T) {
	app, app2 := newH2CApp(t), newH2CApp(t) // a pool holds an address once
	requests := func(prefix ...string) []string { return append(app.requests(prefix...), app2.requests(prefix...)...) }
	servers := shopServers(t, nil)
	f := newTLSFixture(t)
	text := strings.Replace(f.config(""), `  - name: checkout
    sticky: {cookie: xlb_checkout, max_age: 1h}
    health: {passive: {disabled: true}}`, `  - name: checkout
    upstream_protocol: h2c
    sticky: {cookie: xlb_checkout, max_age: 1h}
    health: {passive: {disabled: true}, active: {path: /healthz, interval: 200ms, timeout: 200ms}}`, 1)
	text = strings.Replace(text, `{name: c2, addr: "{c2}"}`, `{name: c2, addr: "`+app2.addr+`"}`, 1)
	text = strings.Replace(text, `{name: c1, addr: "{c1}"}`, `{name: c1, addr: "`+app.addr+`"}`, 1)
	tp := startTLSProxy(t, text, servers)
	require.NoError(t, tp.dir.Start(t.Context()))

	// Active health checks speak h2c to the pool too (an HTTP/1.1 probe
	// would find this server down).
	require.Eventually(t, func() bool {
		n := 0
		for _, r := range requests() {
			if strings.HasPrefix(r, "HTTP/2.0 GET /healthz ") {
				n++
			}
		}
		return n >= 4
	}, 30*time.Second, 10*time.Millisecond)
	checkout := tp.director().Pools()[0]
	// A probe may time out on a loaded machine; the next ones pass.
	require.Eventually(t, func() bool { return len(checkout.Available(time.Now())) == 2 }, 30*time.Second, 10*time.Millisecond,
		"both servers pass their h2c health checks")
	app.reset()
	app2.reset()

	// HTTP/1.1 and h2 clients both reach the app server over h2c.
	for _, c := range []*http.Client{h1Client(t, f.clientTLS("shop.example.com")), h2TestClient(t, f.clientTLS("shop.example.com"))} {
		resp, body := do(t, c, "POST", tp.url+"/checkout/pay?x=1&y=%2F", strings.NewReader("card=4242"), map[string]string{"Host": "shop.example.com"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "hello over h2c", body)
		assert.Equal(t, "h2c-app", resp.Header.Get("X-Server"))
		assert.Equal(t, []string{"a", "b"}, resp.Header.Values("X-Multi"))
		require.Len(t, resp.Cookies(), 1, "sticky cookie as for HTTP/1.1 upstreams")
	}
	assert.Equal(t, []string{
		"HTTP/2.0 POST /checkout/pay?x=1&y=%2F shop.example.com card=4242 xfp=https",
		"HTTP/2.0 POST /checkout/pay?x=1&y=%2F shop.example.com card=4242 xfp=https",
	}, requests("/checkout/"))

	// The response timeout holds (the route's is 300ms): 504.
	resp, _ := do(t, h1Client(t, f.clientTLS("shop.example.com")), "GET", tp.url+"/checkout/slow", nil, nil)
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
}

// A refused h2c connection is a connect error, as for HTTP/1.1: the
// request never reached a server, so it is redispatched to another one,
// and passive health ejects the refusing server after consecutive_errors
// of them (a 5xx-like failure would need consecutive_5xx, 5).
func TestUpstreamH2CRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	app := newH2CApp(t)
	text := strings.Replace(shopConfig, `  - name: browse
    servers:
      - {name: b1, addr: "{b1}"}`, `  - name: browse
    upstream_protocol: h2c
    policy: round_robin
    health: {passive: {consecutive_errors: 1}}
    servers:
      - {name: b1, addr: "`+dead+`"}
      - {name: b2, addr: "`+app.addr+`"}`, 1)
	tp := startProxy(t, text, shopServers(t, nil))
	codes := map[int]int{}
	for range 4 {
		resp, _ := do(t, client(t), "GET", tp.url+"/browse/x", nil, nil)
		codes[resp.StatusCode]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: 4}, codes, "the refused try is redispatched")
	var browse = tp.director().Pools()[1]
	assert.Equal(t, uint64(1), browse.ByName("b1").Ejections())
	assert.Equal(t, 1, strings.Count(tp.logs.String(), `"tries":2`), "one request took a second try: %s", tp.logs.String())
}
