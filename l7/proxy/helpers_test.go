package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// appServer is a real net/http app server on loopback that names itself in
// every answer and remembers the last request it saw.
type appServer struct {
	name string
	srv  *httptest.Server

	mu    sync.Mutex
	last  *http.Request
	body  []byte
	nhits int
}

func newAppServer(t *testing.T, name string, h http.HandlerFunc) *appServer {
	t.Helper()
	a := &appServer{name: name}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.last, a.body = r.Clone(context.Background()), body
		a.nhits++
		a.mu.Unlock()
		w.Header().Set("X-Server", name)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprintf(w, "hello from %s", name)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *appServer) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

func (a *appServer) lastRequest() (*http.Request, []byte, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last, a.body, a.nhits
}

// testProxy is a Proxy serving on a real loopback listener, so tests can
// speak raw bytes to it as well as HTTP.
type testProxy struct {
	*Proxy
	dir  *director.Director
	reg  *prometheus.Registry
	addr string
	url  string
	logs *logbuf.Buffer
}

// startProxy parses yamlText (after expanding {name} to app servers'
// addresses), builds director and proxy with a pedantic registry and an
// access log, and serves on 127.0.0.1:0 until the test ends.
func startProxy(t *testing.T, yamlText string, servers map[string]*appServer, opts ...func(*Options)) *testProxy {
	t.Helper()
	for name, s := range servers {
		yamlText = strings.ReplaceAll(yamlText, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse("test.yaml", []byte(yamlText))
	require.NoError(t, err)
	return startProxyConfig(t, cfg, opts...)
}

func startProxyConfig(t *testing.T, cfg *config.Config, opts ...func(*Options)) *testProxy {
	t.Helper()
	dir, err := director.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })

	logs := &logbuf.Buffer{}
	reg := prometheus.NewPedanticRegistry()
	o := Options{
		Registerer: reg,
		Gatherer:   reg,
		AccessLog:  slog.New(slog.NewJSONHandler(logs, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	p, err := New(cfg, dir, o)
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = p.Close()
		<-done
	})
	addr := ln.Addr().String()
	return &testProxy{Proxy: p, dir: dir, reg: reg, addr: addr, url: "http://" + addr, logs: logs}
}

// client is an HTTP client that never shares connections between tests and
// never follows redirects.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// rawExchange writes raw bytes on a fresh connection and returns everything
// the proxy answers until it closes the connection or 5 s pass.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	// A write error is not fatal: the proxy may refuse and close before it
	// has read everything, and its answer is still in our receive queue.
	_, _ = io.WriteString(c, raw)
	b, _ := io.ReadAll(c)
	return string(b)
}

// statusOf parses the status code of the first response in raw.
func statusOf(t *testing.T, raw string) int {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	require.NoError(t, err, "response: %q", raw)
	defer resp.Body.Close()
	return resp.StatusCode
}

// shopConfig is a small config with the example's shape: checkout (sticky),
// browse, auth; {c1} etc. are replaced by app-server addresses.
const shopConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
limits:
  read_header_timeout: 300ms
trusted_proxies: [10.0.0.0/8]
access_log: {enabled: true, sample: 1}
sticky:
  keys:
    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    pool: checkout
    timeouts: {dial: 200ms, response: 300ms}
    max_body_bytes: 1024
  - name: browse
    match: {path_prefix: /browse, methods: [GET, HEAD]}
    pool: browse
  - name: auth
    match: {path_prefix: /auth}
    pool: auth
pools:
  - name: checkout
    sticky: {cookie: xlb_checkout, max_age: 1h}
    health: {passive: {disabled: true}}
    servers:
      - {name: c1, addr: "{c1}"}
      - {name: c2, addr: "{c2}"}
  - name: browse
    servers:
      - {name: b1, addr: "{b1}"}
  - name: auth
    servers:
      - {name: a1, addr: "{a1}"}
`

func shopServers(t *testing.T, h map[string]http.HandlerFunc) map[string]*appServer {
	t.Helper()
	m := map[string]*appServer{}
	for _, n := range []string{"c1", "c2", "b1", "a1"} {
		m[n] = newAppServer(t, n, h[n])
	}
	return m
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func prometheusRegistry() *prometheus.Registry { return prometheus.NewPedanticRegistry() }

// metricValue gathers reg and returns the value of the counter or gauge
// called name whose labels include all of labels; it fails the test when
// there is no such series.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	require.Failf(t, "no such series", "%s%v", name, labels)
	return 0
}

// hits is how many requests the app server has answered.
func (a *appServer) hits() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nhits
}
