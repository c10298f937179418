package proxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// typicalRequest is what the shop's app sends on a product page.
const typicalRequest = "GET /browse/shoes?page=2 HTTP/1.1\r\nHost: shop.example\r\n" +
	"User-Agent: Dart/3.4 (dart:io)\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n" +
	"Cookie: session=abc123; xlb_checkout=AQEAAAAAawlSxQo4piIy-aRbYQ-76vgDcJRYH4vaBXRF4g\r\n\r\n"

func parseRequest(tb testing.TB, raw string, req *fasthttp.Request) {
	tb.Helper()
	require.NoError(tb, req.Header.Read(bufioReader(raw)))
}

// BenchmarkHeaderRewrite is the engine's own per-request header work: scan,
// hop-by-hop removal, forwarding headers.
func BenchmarkHeaderRewrite(b *testing.B) {
	var req fasthttp.Request
	client := mustAddr("203.0.113.9")
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		req.Reset()
		parseRequest(b, typicalRequest, &req)
		b.StartTimer()
		seen := scanRequestHeaders(&req.Header)
		stripRequestHopByHop(&req.Header, seen)
		buf = setForwarded(&req.Header, seen, client, req.Host(), false, false, buf)
	}
}

// BenchmarkServe runs the whole handler in process: a prepared request
// through director, header rewrite and a HostClient to an in-memory
// fasthttp app server. The kernel is out of the picture, so this is the
// user-space cost of one proxied request, and allocs/op must stay 0.
func BenchmarkServe(b *testing.B) {
	for _, tt := range []struct {
		name    string
		metrics bool
	}{{"metrics", true}, {"no-metrics", false}} {
		b.Run(tt.name, func(b *testing.B) {
			ln := fasthttputil.NewInmemoryListener()
			defer ln.Close()
			app := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hello") }}
			go func() { _ = app.Serve(ln) }()
			defer app.Shutdown()

			text := strings.NewReplacer("{app}", "127.0.0.1:1", "{app2}", "127.0.0.1:2").Replace(benchConfig)
			cfg, err := config.Parse("bench.yaml", []byte(text))
			require.NoError(b, err)
			dir, err := director.New(cfg)
			require.NoError(b, err)
			opts := Options{NoRequestMetrics: !tt.metrics}
			if tt.metrics {
				opts.Registerer = prometheusRegistry()
			}
			p, err := New(cfg, dir, opts)
			require.NoError(b, err)
			defer p.Close()
			for _, c := range p.gen.Load().clients {
				hc := c.(*fasthttp.HostClient)
				hc.Dial = func(string) (net.Conn, error) { return ln.Dial() }
				hc.DialTimeout = nil
			}

			var req fasthttp.Request
			parseRequest(b, typicalRequest, &req)
			serveLoop(b, p, &req)
		})
	}
}

// BenchmarkServeUpstreamConn is BenchmarkServe over a real loopback
// connection, through the proxy's own upstream dial and connection
// (upstreamConn): a GET takes no system call for the kept-alive check, a
// POST one recv(MSG_PEEK); compare their allocations with BenchmarkServe's.
func BenchmarkServeUpstreamConn(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	app := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hello") }}
	go func() { _ = app.Serve(ln) }()
	defer app.Shutdown()

	// Two app servers: a pool holds an address once.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	app2 := &fasthttp.Server{Handler: app.Handler}
	go func() { _ = app2.Serve(ln2) }()
	defer app2.Shutdown()
	text := strings.NewReplacer("{app}", ln.Addr().String(), "{app2}", ln2.Addr().String()).Replace(benchConfig)
	cfg, err := config.Parse("bench.yaml", []byte(text))
	require.NoError(b, err)
	dir, err := director.New(cfg)
	require.NoError(b, err)
	p, err := New(cfg, dir, Options{NoRequestMetrics: true})
	require.NoError(b, err)
	defer p.Close()

	for _, method := range []string{"GET", "POST"} {
		b.Run(method, func(b *testing.B) {
			var req fasthttp.Request
			parseRequest(b, strings.Replace(typicalRequest, "GET", method, 1), &req)
			if method == "POST" {
				req.SetBodyString("order")
			}
			serveLoop(b, p, &req)
		})
	}
}

const benchConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
sticky:
  keys:
    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse}, pool: browse}
  - {name: auth, match: {path_prefix: /auth}, pool: auth}
pools:
  - name: checkout
    sticky: {cookie: xlb_checkout}
    servers: [{name: c1, addr: "{app}"}, {name: c2, addr: "{app2}"}]
  - name: browse
    servers: [{name: b1, addr: "{app}"}, {name: b2, addr: "{app2}"}]
  - name: auth
    servers: [{name: a1, addr: "{app}"}]
`

// BenchmarkObserve is the per-request metrics work: one counter and one
// histogram observation, both resolved at load.
func BenchmarkObserve(b *testing.B) {
	text := strings.NewReplacer("{app}", "127.0.0.1:1", "{app2}", "127.0.0.1:2").Replace(benchConfig)
	cfg, err := config.Parse("bench.yaml", []byte(text))
	require.NoError(b, err)
	dir, err := director.New(cfg)
	require.NoError(b, err)
	m := newRequestMetrics().resolve(dir, seriesSet{})
	dec := director.Decision{Route: dir.Routes()[1], Backend: dir.Backends()[2]}
	res := result{status: 200, answered: true, server: dir.Backends()[2]}
	b.ReportAllocs()
	for b.Loop() {
		m.observe(&dec, res, 1234*time.Microsecond)
	}
}

// serveLoop runs req through p's handler b.N times, from one client
// address, and fails on any answer but 200.
func serveLoop(b *testing.B, p *Proxy, req *fasthttp.Request) {
	var ctx fasthttp.RequestCtx
	remote := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 40000}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(req, remote, nil)
		p.serve(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
}
