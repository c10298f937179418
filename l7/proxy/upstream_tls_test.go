package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/internal/testcert"
	"github.com/xlbproject/xlb/l7/config"
)

// tlsApp is an HTTPS app server on loopback with a certificate for
// 127.0.0.1 from its own CA, that may demand a client certificate from
// clientCA. It counts the TLS connections it accepted and answers with the
// protocol and the client certificate's name it saw.
type tlsApp struct {
	srv   *httptest.Server
	conns atomic.Int64
	hits  atomic.Int64
}

func newTLSApp(t *testing.T, ca *testcert.CA, clientCA *x509.CertPool, h2 bool) *tlsApp {
	t.Helper()
	a := newUnstartedTLSApp(t, ca, clientCA, h2)
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// newUnstartedTLSApp is newTLSApp before its StartTLS (and the cleanup
// that closes it), for a test that changes its listener first.
func newUnstartedTLSApp(t *testing.T, ca *testcert.CA, clientCA *x509.CertPool, h2 bool) *tlsApp {
	t.Helper()
	kp, err := ca.KeyPair(t.TempDir(), "app", "127.0.0.1")
	require.NoError(t, err)
	a := &tlsApp{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		client := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s client=%s path=%s", r.Proto, client, r.URL.Path)
	}))
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	if clientCA != nil {
		a.srv.TLS.ClientCAs, a.srv.TLS.ClientAuth = clientCA, tls.RequireAndVerifyClientCert
	}
	a.srv.EnableHTTP2 = h2
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	a.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.conns.Add(1)
		}
	}
	return a
}

// lingerListener's connections end with a FIN and wait a little for the
// peer's data before they close, where a plain close with unread data
// resets the connection.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return lingerConn{c.(*net.TCPConn)}, nil
}

type lingerConn struct{ *net.TCPConn }

func (c lingerConn) Close() error {
	_ = c.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, c.TCPConn)
	return c.TCPConn.Close()
}

// caDir is a test's config directory holding ca.pem, the certificate of
// a new CA (a pool's tls.ca_file), and that CA.
func caDir(t *testing.T) (string, *testcert.CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o600))
	return dir, ca
}

func (a *tlsApp) addr() string { return strings.TrimPrefix(a.srv.URL, "https://") }

// upstreamTLSConfig is a proxy config with one route to one pool whose
// servers are addrs, with the pool's extra lines (tls and the rest).
func upstreamTLSConfig(poolExtra string, addrs ...string) string {
	var servers strings.Builder
	for i, a := range addrs {
		fmt.Fprintf(&servers, "      - {name: s%d, addr: %q}\n", i+1, a)
	}
	return `listeners:
  - addr: "127.0.0.1:0"
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    pool: checkout
    retries: {max: 2}
pools:
  - name: checkout
    policy: round_robin
    servers:
` + servers.String() + poolExtra
}

func parseIn(t *testing.T, dir, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "proxy.yaml"), []byte(text))
	require.NoError(t, err)
	return cfg
}

// A pool with tls is spoken to over TLS: the server's certificate checked
// against ca_file, the proxy's client certificate presented, the request as
// the client sent it; a reload with the same files keeps the connection.
func TestUpstreamTLS(t *testing.T) {
	dir, ca := caDir(t)
	_, _, err := ca.Leaf(dir, "proxy", "xlb-proxy")
	require.NoError(t, err)
	app := newTLSApp(t, ca, ca.Pool, false)

	text := upstreamTLSConfig("    tls: {ca_file: ca.pem, cert_file: proxy.crt, key_file: proxy.key}\n", app.addr())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	c := client(t)
	for range 3 {
		resp, body := do(t, c, "GET", tp.url+"/checkout/pay", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "HTTP/1.1 client=xlb-proxy path=/checkout/pay", body)
	}
	assert.Equal(t, int64(1), app.conns.Load(), "one kept-alive TLS connection for three requests")

	// A reload with the same files: the connection stays.
	_, err = tp.Apply(parseIn(t, dir, text))
	require.NoError(t, err)
	resp, body := do(t, c, "GET", tp.url+"/checkout/after", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, int64(1), app.conns.Load(), "the same TLS settings keep the open connection")

	// A renewed client certificate: new connections, with the new one.
	_, _, err = ca.Leaf(dir, "proxy", "xlb-proxy-renewed")
	require.NoError(t, err)
	_, err = tp.Apply(parseIn(t, dir, text))
	require.NoError(t, err)
	resp, body = do(t, c, "GET", tp.url+"/checkout/renewed", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "HTTP/1.1 client=xlb-proxy-renewed path=/checkout/renewed", body)
	assert.Equal(t, int64(2), app.conns.Load())
}

// A server whose certificate does not verify never sees a request: the
// failed handshake is a connect error, retried on the next server for any
// method, and logged with its cause; active checks speak TLS too, so they
// mark that server down and the good one up.
func TestUpstreamTLSVerifyFails(t *testing.T) {
	dir, ca := caDir(t)
	other, err := testcert.NewCA()
	require.NoError(t, err)
	good := newTLSApp(t, ca, nil, false)
	stranger := newTLSApp(t, other, nil, false)
	plain := newAppServer(t, "plain", nil)

	text := upstreamTLSConfig("    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}}\n", stranger.addr(), plain.addr(), good.addr())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	c := client(t)
	for i := range 6 {
		resp, body := do(t, c, "POST", fmt.Sprintf("%s/checkout/%d", tp.url, i), strings.NewReader("order"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, fmt.Sprintf("HTTP/1.1 client=- path=/checkout/%d", i), body)
	}
	assert.Equal(t, int64(6), good.hits.Load(), "every request, POST included, ends on the server that verifies")
	assert.Equal(t, int64(0), stranger.hits.Load(), "a certificate from another CA: no request reaches it")

	// The same stranger without verification: reached, and loudly so.
	var logs logbuf.Buffer
	sp := startProxyConfig(t, parseIn(t, dir, upstreamTLSConfig("    tls: {insecure_skip_verify: true}\n", stranger.addr())),
		func(o *Options) { o.Log = slog.New(slog.NewJSONHandler(&logs, nil)) })
	resp, body := do(t, c, "GET", sp.url+"/checkout/x", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, int64(1), stranger.hits.Load())
	assert.Contains(t, logs.String(), `without checking their certificates (tls.insecure_skip_verify)","pool":"checkout"`)
	_, _, plainHits := plain.lastRequest()
	assert.Equal(t, 0, plainHits, "a server speaking plain HTTP: no request reaches it")
	// Round robin starts two of the six on each server; the four that
	// start on a failing one are retried at least once.
	assert.GreaterOrEqual(t, metricValue(t, tp.reg, "xlb_l7_retries_total", map[string]string{"pool": "checkout"}), 4.0)

	// Active checks over TLS.
	text = upstreamTLSConfig("    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}, active: {path: /health, interval: 500ms, timeout: 500ms}}\n", stranger.addr(), good.addr())
	hp := startProxyConfig(t, parseIn(t, dir, text))
	require.NoError(t, hp.dir.Start(t.Context()))
	pool := hp.director().Pools()[0]
	require.Eventually(t, func() bool {
		avail := pool.Available(time.Now())
		return len(avail) == 1 && avail[0].Name == "s2"
	}, 30*time.Second, 20*time.Millisecond, "the server that verifies is up, the other down")
	require.Eventually(t, func() bool { return good.hits.Load() > 7 }, 30*time.Second, 20*time.Millisecond,
		"the checks reach the good server over TLS")
	assert.Len(t, pool.Available(time.Now()), 1, "and keep the other down")
}

// upstream_protocol h2 speaks HTTP/2 over TLS by ALPN, health checks too;
// a server that does not offer h2 is an error, not HTTP/1.1.
func TestUpstreamH2OverTLS(t *testing.T) {
	dir, ca := caDir(t)
	h2app := newTLSApp(t, ca, nil, true)
	h1app := newTLSApp(t, ca, nil, false)

	text := upstreamTLSConfig("    upstream_protocol: h2\n    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}, active: {path: /health, interval: 500ms, timeout: 500ms}}\n", h2app.addr())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	require.NoError(t, tp.dir.Start(t.Context()))
	pool := tp.director().Pools()[0]
	require.Eventually(t, func() bool { return len(pool.Available(time.Now())) == 1 }, 30*time.Second, 20*time.Millisecond,
		"the h2 health check passes")
	c := client(t)
	for range 3 {
		resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		assert.Equal(t, "HTTP/2.0 client=- path=/checkout/cart", body)
	}

	text = upstreamTLSConfig("    upstream_protocol: h2\n    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}}\n", h1app.addr())
	np := startProxyConfig(t, parseIn(t, dir, text))
	resp, body := do(t, client(t), "GET", np.url+"/checkout/cart", nil, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
	assert.Equal(t, int64(0), h1app.hits.Load(), "no request in HTTP/1.1 behind the operator's back")
}

// A WebSocket to a pool with tls: the upgrade is dialled over TLS (the
// handshake inside the dial's timeout) and the tunnel carries the frames.
func TestUpstreamTLSWebSocket(t *testing.T) {
	dir, ca := caDir(t)
	kp, err := ca.KeyPair(dir, "ws", "127.0.0.1")
	require.NoError(t, err)
	ws := httptest.NewUnstartedServer(wsMux())
	ws.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	ws.StartTLS()
	t.Cleanup(ws.Close)

	text := strings.Replace(upstreamTLSConfig("    tls: {ca_file: ca.pem}\n", strings.TrimPrefix(ws.URL, "https://")),
		"match: {path_prefix: /checkout}", "match: {path_prefix: /ws}", 1)
	tp := startProxyConfig(t, parseIn(t, dir, text))
	conn := dialWS(t, tp, "/ws/echo")
	for i := range 3 {
		require.NoError(t, websocket.Message.Send(conn, fmt.Sprintf("m%d", i)))
		var got string
		require.NoError(t, websocket.Message.Receive(conn, &got))
		assert.Equal(t, fmt.Sprintf("echo: m%d", i), got)
	}
	require.NoError(t, conn.Close())
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_upgrades_total", map[string]string{"route": "checkout"}))
}

// Every certificate the proxy presents has its end in a metric, so an
// alert can ask for renewal well before clients or servers refuse it.
func TestCertificateExpiryMetric(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	shop, err := ca.KeyPair(dir, "shop", "shop.example.com")
	require.NoError(t, err)
	proxyCert, err := ca.KeyPair(dir, "proxy", "xlb-proxy")
	require.NoError(t, err)
	notAfter := func(kp tls.Certificate) float64 { return float64(kp.Leaf.NotAfter.Unix()) }
	text := strings.Replace(upstreamTLSConfig("    tls: {cert_file: proxy.crt, key_file: proxy.key, insecure_skip_verify: true}\n", "127.0.0.1:1"),
		"  - addr: \"127.0.0.1:0\"\n", "  - addr: \"127.0.0.1:0\"\n  - name: https\n    addr: \"127.0.0.1:0\"\n    tls: {certificates: [{cert: shop.crt, key: shop.key}]}\n", 1)
	tp := startProxyConfig(t, parseIn(t, dir, text))
	const name = "xlb_l7_tls_certificate_expiry_timestamp_seconds"
	assert.Equal(t, notAfter(shop), metricValue(t, tp.reg, name, map[string]string{"use": "server", "owner": "https", "subject": "shop.example.com"}))
	assert.Equal(t, notAfter(proxyCert), metricValue(t, tp.reg, name, map[string]string{"use": "client", "owner": "checkout", "subject": "xlb-proxy"}))
}

// The handshake is part of the dial: a server that accepts TCP and never
// answers the ClientHello costs the dial timeout, not the response
// timeout, and the request goes on to the next server; a server that
// refuses the proxy for want of a client certificate (TLS 1.2, where the
// refusal is part of the handshake) never sees a request either; and a
// streamed body is not touched by a handshake that fails, so the next
// server gets all of it.
func TestUpstreamTLSHandshakeInDial(t *testing.T) {
	dir, ca := caDir(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = silent.Close() })
	demanding := newTLSApp(t, ca, ca.Pool, false)
	demanding.srv.TLS.MaxVersion = tls.VersionTLS12
	var got atomic.Int64
	good := newTLSApp(t, ca, nil, false)
	good.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		fmt.Fprintf(w, "%d bytes", n)
	})

	text := upstreamTLSConfig("    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}}\n", silent.Addr().String(), demanding.addr(), good.addr())
	text = strings.Replace(text, "    retries: {max: 2}\n", "    retries: {max: 2}\n    timeouts: {dial: 300ms, response: 20s}\n    stream_request_body_bytes: 4096\n", 1)
	tp := startProxyConfig(t, parseIn(t, dir, text))
	c := client(t)
	body := strings.Repeat("o", 256<<10)
	for i := range 3 {
		resp, answer := do(t, c, "POST", fmt.Sprintf("%s/checkout/%d", tp.url, i), strings.NewReader(body), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, answer)
		assert.Equal(t, fmt.Sprintf("%d bytes", len(body)), answer, "the whole streamed body, after failed handshakes")
	}
	assert.Equal(t, int64(len(body)), got.Load())
	assert.Equal(t, int64(0), demanding.hits.Load(), "no request reaches a server that refused the handshake")
	assert.GreaterOrEqual(t, metricValue(t, tp.reg, "xlb_l7_retries_total", map[string]string{"pool": "checkout"}), 2.0)
}

// A pool that asks for h2 is never spoken to in HTTP/1.1, also by a TLS
// server that negotiates no protocol at all by ALPN.
func TestUpstreamH2NeedsALPN(t *testing.T) {
	dir, ca := caDir(t)
	kp, err := ca.KeyPair(dir, "app", "127.0.0.1")
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}}) // no NextProtos: no ALPN
	require.NoError(t, err)
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	text := upstreamTLSConfig("    upstream_protocol: h2\n    tls: {ca_file: ca.pem}\n    health: {passive: {disabled: true}}\n", ln.Addr().String())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	resp, body := do(t, client(t), "GET", tp.url+"/checkout/cart", nil, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
	assert.Equal(t, int64(0), hits.Load(), "no request in HTTP/1.1 behind the operator's back")
}

// With TLS 1.3 the proxy's side of the handshake is over before the
// server has checked the proxy's client certificate: a server that refuses
// it says so with an alert on the first read, after the request went out.
// It never handed the request to its application, so the refusal is a
// failed handshake like any other: a POST goes on to the next server,
// passive health counts connect errors (two eject the refusing server,
// where 5xx would need a hundred), and with no other server the answer is
// 502 connect_error, not a reset. Only a streamed body, already read, is
// not sent again.
func TestUpstreamTLS13ClientCertRefused(t *testing.T) {
	dir, refusing, accepting := certRefusalApps(t, false, nil)
	const poolTLS = "    tls: {ca_file: ca.pem, cert_file: proxy.crt, key_file: proxy.key}\n"
	logged := func(text string) string {
		return "access_log: {enabled: true, sample: 1}\n" + text
	}

	text := logged(upstreamTLSConfig(poolTLS+"    health: {passive: {consecutive_errors: 2, consecutive_5xx: 100, max_ejected_percent: 50}}\n",
		refusing.addr(), accepting.addr()))
	tp := startProxyConfig(t, parseIn(t, dir, text))
	c := client(t)
	for i := range 4 {
		resp, body := do(t, c, "POST", fmt.Sprintf("%s/checkout/%d", tp.url, i), strings.NewReader("order"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "POST %d: %s", i, body)
		assert.Equal(t, fmt.Sprintf("HTTP/1.1 client=xlb-proxy path=/checkout/%d", i), body)
	}
	assert.Equal(t, int64(4), accepting.hits.Load(), "every POST ends on the server that accepts the certificate")
	assert.Equal(t, int64(0), refusing.hits.Load(), "the refusing server's application sees none")
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_ejections_total", map[string]string{"pool": "checkout", "server": "s1"}),
		"two refused handshakes eject the server as connect errors")
	recs := accessRecords(t, tp)
	assert.Equal(t, 2, countRecords(recs, map[string]any{"termination": "ok", "tries": float64(2), "backend": "s2"}), "%v", recs)

	text = logged(upstreamTLSConfig(poolTLS+"    health: {passive: {disabled: true}}\n", refusing.addr()))
	sp := startProxyConfig(t, parseIn(t, dir, text))
	resp, body := do(t, c, "POST", sp.url+"/checkout/alone", strings.NewReader("order"), nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
	recs = accessRecords(t, sp)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/checkout/alone", "status": float64(502), "termination": "connect_error"}), "%v", recs)
	assert.Equal(t, 1.0, metricValue(t, sp.reg, "xlb_l7_terminations_total", map[string]string{"route": "checkout", "cause": "connect_error"}))
	assert.Equal(t, int64(0), refusing.hits.Load())

	// A streamed body has gone out by the time the refusal is read: the
	// request is not sent again (the next server would get a truncated
	// one).
	text = logged(upstreamTLSConfig(poolTLS+"    health: {passive: {disabled: true}}\n", refusing.addr(), accepting.addr()))
	text = strings.Replace(text, "    retries: {max: 2}\n", "    retries: {max: 2}\n    stream_request_body_bytes: 4096\n", 1)
	before := accepting.hits.Load()
	stp := startProxyConfig(t, parseIn(t, dir, text))
	resp, body = do(t, c, "POST", stp.url+"/checkout/upload", strings.NewReader(strings.Repeat("o", 20000)), nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode, body)
	assert.Equal(t, before, accepting.hits.Load(), "no retry with what is left of the body")
	recs = accessRecords(t, stp)
	assert.Equal(t, 1, countRecords(recs, map[string]any{"path": "/checkout/upload", "termination": "connect_error", "tries": float64(1)}), "%v", recs)
}

// The same refusal on an h2 pool: the HTTP/2 client reads the alert with
// the server's first frames, after it sent the request's HEADERS. A
// server that refused the handshake processed nothing, so a POST goes on
// to the next server.
func TestUpstreamH2TLS13ClientCertRefused(t *testing.T) {
	// The refusing server ends its connections with a FIN after the alert:
	// one that resets them at once may fail the client's write of the
	// request before the alert is read, and that write error (which says
	// nothing of a refusal) stays a failure after sending.
	dir, refusing, accepting := certRefusalApps(t, true, func(l net.Listener) net.Listener { return lingerListener{l} })
	text := "access_log: {enabled: true, sample: 1}\n" + upstreamTLSConfig(
		"    upstream_protocol: h2\n    tls: {ca_file: ca.pem, cert_file: proxy.crt, key_file: proxy.key}\n    health: {passive: {disabled: true}}\n",
		refusing.addr(), accepting.addr())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	c := client(t)
	for i := range 4 {
		resp, body := do(t, c, "POST", fmt.Sprintf("%s/checkout/%d", tp.url, i), strings.NewReader("order"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "POST %d: %s", i, body)
		assert.Equal(t, fmt.Sprintf("HTTP/2.0 client=xlb-proxy path=/checkout/%d", i), body)
	}
	assert.Equal(t, int64(4), accepting.hits.Load(), "every POST ends on the server that accepts the certificate")
	assert.Equal(t, int64(0), refusing.hits.Load(), "the refusing server's application sees none")
	recs := accessRecords(t, tp)
	assert.Equal(t, 2, countRecords(recs, map[string]any{"termination": "ok", "tries": float64(2), "backend": "s2"}), "%v", recs)
}

// certRefusalApps starts two TLS 1.3 app servers (HTTP/2 too if h2) and
// writes the proxy's client certificate into dir (proxy.crt, proxy.key,
// with ca.pem): signed by a CA that refusing does not trust and accepting
// does. wrap, if not nil, wraps the refusing server's listener.
func certRefusalApps(t *testing.T, h2 bool, wrap func(net.Listener) net.Listener) (dir string, refusing, accepting *tlsApp) {
	t.Helper()
	dir, ca := caDir(t)
	other, err := testcert.NewCA()
	require.NoError(t, err)
	_, _, err = other.Leaf(dir, "proxy", "xlb-proxy")
	require.NoError(t, err)
	start := func(clientCA *x509.CertPool, wrap func(net.Listener) net.Listener) *tlsApp {
		a := newUnstartedTLSApp(t, ca, clientCA, h2)
		if wrap != nil {
			a.srv.Listener = wrap(a.srv.Listener)
		}
		a.srv.TLS.MinVersion = tls.VersionTLS13
		a.srv.StartTLS()
		t.Cleanup(a.srv.Close)
		return a
	}
	return dir, start(ca.Pool, wrap), start(other.Pool, nil)
}
