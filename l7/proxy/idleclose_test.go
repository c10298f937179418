package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// An app server that closes an idle keep-alive connection costs a GET
// nothing: the request goes again on a new connection, as HTTP clients
// do. Both ways a server ends such a connection: a full close, and a
// half-close that keeps draining what the client sends (Apache's
// lingering close), which draws no reset — only the FIN, queued while the
// connection was idle, tells the proxy (an upstream read that skipped it
// would wait for the whole response timeout).
func TestServerClosedIdleConnection(t *testing.T) {
	t.Run("full close", func(t *testing.T) {
		var closed atomic.Int64
		var addrs [2]string
		for i := range addrs {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			srv.Config.IdleTimeout = 20 * time.Millisecond
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			addrs[i] = srv.Listener.Addr().String()
		}
		idleClosedGets(t, closed.Load, addrs)
	})
	t.Run("half close, draining", func(t *testing.T) {
		a, b := newIdleClosingApp(t, nil, endHalfClose), newIdleClosingApp(t, nil, endHalfClose)
		idleClosedGets(t, func() int64 { return a.ended.Load() + b.ended.Load() }, [2]string{a.addr, b.addr})
	})
}

// idleClosedGets sends GETs through a proxy to the two servers at addrs
// (the checkout pool's), each after a server ended the previous one's
// connection (closed counts the connections both ended), and requires
// every one to succeed well within the route's response timeout (30 s: a
// hang would be a 504 after it, not a slow success).
func idleClosedGets(t *testing.T, closed func() int64, addrs [2]string) {
	t.Helper()
	text := strings.NewReplacer("{c1}", addrs[0], "{c2}", addrs[1], "response: 300ms", "response: 30s").Replace(shopConfig)
	tp := startProxy(t, text, shopServers(t, nil))
	c := client(t)
	c.Timeout = 20 * time.Second
	for i := range 4 {
		n := closed()
		resp, body := do(t, c, "GET", fmt.Sprintf("%s/checkout/%d", tp.url, i), nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
		require.Eventually(t, func() bool { return closed() > n }, 30*time.Second, 5*time.Millisecond, "the server ended the idle connection")
	}
}

// A POST cannot be sent again once it may have reached a server, so it
// must not go out on a kept-alive connection that the server has already
// ended while it sat idle: the proxy checks such a connection before it
// writes a non-idempotent request on it, and sends the request on a new
// one instead. The server sees every POST exactly once and answers it;
// nothing is retried on another server (there is none). Each way a server
// ends an idle connection, in cleartext and over TLS: a full close, a
// half-close that keeps draining (and never answers what it drains), and
// an unsolicited response (a 408 some servers send before they give up on
// an idle connection), which must not be taken for the POST's answer.
func TestPostAfterServerClosedIdleConnection(t *testing.T) {
	ends := []struct {
		name string
		end  idleEnd
	}{
		{"full close", endFullClose},
		{"half close, draining", endHalfClose},
		{"unsolicited 408", endUnsolicited},
	}
	for _, secure := range []bool{false, true} {
		for _, e := range ends {
			t.Run(transport(secure)+"/"+e.name, func(t *testing.T) {
				dir, tc, poolExtra := idleAppTLS(t, secure)
				app := newIdleClosingApp(t, tc, e.end)
				text := upstreamTLSConfig(poolExtra, app.addr)
				tp := startProxyConfig(t, parseIn(t, dir, text))
				c := client(t)

				resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
				require.Equal(t, http.StatusOK, resp.StatusCode, body)
				for i := range 2 {
					// The server's end of the idle connection has reached
					// the proxy's socket before the POST is sent.
					requireUpstreamReadable(t, app.addr)
					resp, body = do(t, c, "POST", fmt.Sprintf("%s/checkout/pay/%d", tp.url, i), strings.NewReader("order"), nil)
					require.Equal(t, http.StatusOK, resp.StatusCode, "POST %d: %s", i, body)
					assert.Equal(t, "ok POST /checkout/pay/"+strconv.Itoa(i)+" order", body)
				}
				assert.Equal(t, map[string]int{"GET": 1, "POST": 2}, app.answered(), "every request answered once")
				assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
			})
		}
	}
}

// A GET written on a kept-alive connection over which the server has
// already sent its unsolicited 408 (Request Timeout) for the idle
// connection reads that 408 first. It is not the GET's answer: the
// connection is dropped and the GET sent again on a new one, so the
// client gets the server's real answer, in cleartext and over TLS.
func TestGetAfterUnsolicited408(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(transport(secure), func(t *testing.T) {
			dir, tc, poolExtra := idleAppTLS(t, secure)
			app := newIdleClosingApp(t, tc, endUnsolicited)
			tp := startProxyConfig(t, parseIn(t, dir, upstreamTLSConfig(poolExtra, app.addr)))
			c := client(t)
			resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			for i := range 2 {
				requireUpstreamReadable(t, app.addr) // the 408 is queued
				path := fmt.Sprintf("/checkout/cart/%d", i)
				resp, body = do(t, c, "GET", tp.url+path, nil, nil)
				require.Equal(t, http.StatusOK, resp.StatusCode, "GET %d: %s", i, body)
				assert.Equal(t, "ok GET "+path+" ", body)
			}
			assert.Equal(t, map[string]int{"GET": 3}, app.answered(), "every GET answered once")
			assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
		})
	}
}

// A TLS server that sends its close_notify right behind an answer has
// both read by the proxy's TLS layer at once: the socket holds nothing
// more, but the connection is over all the same. A POST is not written
// on it: it goes on a new connection and is answered once.
func TestPostAfterCloseNotifyWithAnswer(t *testing.T) {
	dir, tc, poolExtra := idleAppTLS(t, true)
	app := newIdleClosingApp(t, tc, endNotifyWithAnswer)
	tp := startProxyConfig(t, parseIn(t, dir, "access_log: {enabled: true, sample: 1}\n"+upstreamTLSConfig(poolExtra, app.addr)))
	c := client(t)
	resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", body, tp.logs.String())
	require.Eventually(t, func() bool { return app.ended.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	for i := range 2 {
		path := fmt.Sprintf("/checkout/pay/%d", i)
		resp, body = do(t, c, "POST", tp.url+path, strings.NewReader("order"), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "POST %d: %s", i, body)
		assert.Equal(t, "ok POST "+path+" order", body)
	}
	assert.Equal(t, map[string]int{"GET": 1, "POST": 2}, app.answered(), "every request answered once")
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
}

// A server times its idle connections out together. With two kept-alive
// connections both ended — each holding a 408, or closed (fully, or
// half-closed and draining) — the GET's first try finds one ended, and the
// one resend fasthttp makes takes the other, oldest idle connection. That
// one is checked first, found ended and replaced by a new connection: the
// GET is answered, in cleartext and over TLS.
func TestGetAfterEveryIdleConnectionEnded(t *testing.T) {
	ends := []struct {
		name     string
		end      idleEnd
		replaced float64 // a 408 drop counts too; a close is seen as the close
	}{
		{"unsolicited 408", endUnsolicited, 2},
		{"full close", endFullClose, 1},
		{"half close, draining", endHalfClose, 1},
	}
	for _, secure := range []bool{false, true} {
		for _, e := range ends {
			t.Run(transport(secure)+"/"+e.name, func(t *testing.T) {
				dir, tc, poolExtra := idleAppTLS(t, secure)
				app := newIdleClosingApp(t, tc, e.end)
				app.pair() // the first two requests come on two connections
				tp := startProxyConfig(t, parseIn(t, dir, upstreamTLSConfig(poolExtra, app.addr)))
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						resp, err := client(t).Get(fmt.Sprintf("%s/checkout/open/%d", tp.url, i))
						if assert.NoError(t, err) {
							_ = resp.Body.Close()
							assert.Equal(t, http.StatusOK, resp.StatusCode)
						}
					})
				}
				wg.Wait()
				require.Eventually(t, func() bool { return app.ended.Load() == 2 }, 30*time.Second, 5*time.Millisecond)
				requireUpstreamsReadable(t, app.addr, 2) // both ends have reached the proxy
				resp, body := do(t, client(t), "GET", tp.url+"/checkout/cart", nil, nil)
				require.Equal(t, http.StatusOK, resp.StatusCode, body)
				assert.Equal(t, "ok GET /checkout/cart ", body)
				assert.Equal(t, map[string]int{"GET": 3}, app.answered())
				assert.Equal(t, e.replaced, metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
			})
		}
	}
}

// The check before a POST works on a connection that sat idle for longer
// than the route's response timeout, whose read deadline has passed: a
// server that keeps it open gets the POST on it, and nothing is replaced.
func TestPostAfterIdleLongerThanResponseTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	text := strings.Replace(upstreamTLSConfig("", srv.Listener.Addr().String()),
		"    retries: {max: 2}\n", "    retries: {max: 2}\n    timeouts: {response: 300ms}\n", 1)
	tp := startProxyConfig(t, parseIn(t, t.TempDir(), text))
	c := client(t)
	resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	time.Sleep(700 * time.Millisecond) // past the GET's read deadline
	resp, body = do(t, c, "POST", tp.url+"/checkout/pay", strings.NewReader("order"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
}

// A 408 that a server gives as its answer, on a fresh connection, reaches
// the client: a request is sent again at most once for a 408, and only
// when it went out on a kept-alive connection.
func TestServer408IsPassedOn(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusRequestTimeout) // and keeps the connection
	}))
	t.Cleanup(srv.Close)
	tp := startProxyConfig(t, parseIn(t, t.TempDir(), upstreamTLSConfig("", srv.Listener.Addr().String())))
	c := client(t)
	for i := range 2 {
		resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "GET %d: %s", i, body)
	}
	// The first GET on a new connection; the second on the kept-alive
	// one, then once more on a new one.
	assert.Equal(t, int64(3), seen.Load())
}

// A streamed body is never sent twice, so a request with one is checked
// before it goes out on a kept-alive connection whatever its method: a PUT
// upload too, which fasthttp would otherwise send again on a new
// connection, but not with a body it has begun to read.
func TestStreamedBodyAfterServerClosedIdleConnection(t *testing.T) {
	app := newIdleClosingApp(t, nil, endFullClose)
	text := strings.Replace(upstreamTLSConfig("", app.addr), "    retries: {max: 2}\n", "    retries: {max: 2}\n    stream_request_body_bytes: 4096\n", 1)
	tp := startProxyConfig(t, parseIn(t, t.TempDir(), text))
	c := client(t)
	resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	upload := strings.Repeat("o", 20000)
	// Idempotent or not, with a length or chunked (a reader of unknown
	// length), just over the threshold or well over it: a streamed body is
	// never sent twice, so each is checked before its first write.
	cases := []struct {
		method  string
		body    string
		chunked bool
	}{
		{"PUT", upload, false},
		{"POST", upload, false},
		{"PUT", upload, true},
		{"DELETE", strings.Repeat("d", 4097), false},
		{"PATCH", strings.Repeat("p", 4097), true},
	}
	for _, tc := range cases {
		requireUpstreamReadable(t, app.addr)
		var r io.Reader = strings.NewReader(tc.body)
		if tc.chunked {
			r = struct{ io.Reader }{r} // hides the length: chunked
		}
		resp, body = do(t, c, tc.method, tp.url+"/checkout/upload", r, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s chunked=%v: %.100s", tc.method, tc.chunked, body)
		assert.Equal(t, "ok "+tc.method+" /checkout/upload "+tc.body, body, "the whole streamed body")
	}
	assert.Equal(t, map[string]int{"GET": 1, "PUT": 2, "POST": 1, "DELETE": 1, "PATCH": 1}, app.answered())
	assert.Equal(t, float64(len(cases)), metricValue(t, tp.reg, "xlb_l7_upstream_connections_replaced_total", nil))
}

// When the connection that replaces a closed kept-alive one cannot be
// made, the request never reached a server: a buffered POST goes on to
// the next one, but a streamed one has had the start of its body read
// and ends with the connect error.
func TestReplacementConnectionFails(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCause  string
		wantGood   int // requests the good server answered, the GET included
	}{
		{"buffered POST goes to the next server", "order", http.StatusOK, "ok", 2},
		{"streamed POST is not sent again", strings.Repeat("o", 20000), http.StatusBadGateway, "connect_refused", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newIdleClosingApp(t, nil, endFullClose)
			good := newAppServer(t, "good", nil)
			text := strings.Replace(upstreamTLSConfig("    health: {passive: {disabled: true}}\n", app.addr, good.addr()),
				"    retries: {max: 2}\n", "    retries: {max: 2}\n    stream_request_body_bytes: 4096\n", 1)
			tp := startProxyConfig(t, parseIn(t, t.TempDir(), "access_log: {enabled: true, sample: 1}\n"+text))
			c := client(t)
			// Round robin: s1 (the closing app), s2, s1.
			resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
			require.Equal(t, "ok GET /checkout/cart ", body, resp.Status)
			app.stopListening()
			resp, body = do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
			require.Equal(t, "hello from good", body, resp.Status)
			requireUpstreamReadable(t, app.addr)

			resp, body = do(t, c, "POST", tp.url+"/checkout/pay", strings.NewReader(tt.body), nil)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, "%.100s", body)
			assert.Equal(t, tt.wantGood, good.hits(), "requests that reached the good server")
			recs := accessRecords(t, tp)
			assert.Equal(t, 1, countRecords(recs, map[string]any{"method": "POST", "termination": tt.wantCause}), "%v", recs)
			assert.Equal(t, map[string]int{"GET": 1}, app.answered())
		})
	}
}

// transport names a subtest's transport.
func transport(secure bool) string {
	if secure {
		return "tls"
	}
	return "cleartext"
}

// idleAppTLS is what a test of idleClosingApp needs to run it over TLS
// when secure: the config directory (with the CA the pool trusts), the
// app's server config and the pool's tls line. Cleartext: a fresh
// directory, nil and "".
func idleAppTLS(t *testing.T, secure bool) (dir string, tc *tls.Config, poolExtra string) {
	t.Helper()
	if !secure {
		return t.TempDir(), nil, ""
	}
	dir, ca := caDir(t)
	kp, err := ca.KeyPair(dir, "app", "127.0.0.1")
	require.NoError(t, err)
	return dir, &tls.Config{Certificates: []tls.Certificate{kp}}, "    tls: {ca_file: ca.pem}\n"
}

// idleEnd is how idleClosingApp ends a connection once it is idle.
type idleEnd int

const (
	endFullClose   idleEnd = iota // close
	endHalfClose                  // shut down writing, then read and discard whatever comes (Apache's lingering close)
	endUnsolicited                // send a 408 nobody asked for, then read and discard whatever comes
	// TLS only: the answer and a close_notify in one TCP segment, so the
	// client's TLS layer reads both at once; then read and discard
	// whatever comes (no FIN).
	endNotifyWithAnswer
)

// heldConn holds what is written to it while hold is set, so that several
// TLS records leave in one write.
type heldConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *heldConn) Write(b []byte) (int, error) {
	if h.hold {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

// release writes what was held, at once. (tls.Conn.CloseWrite ends with
// the write deadline set to now.)
func (h *heldConn) release() error {
	h.hold = false
	if err := h.Conn.SetWriteDeadline(time.Time{}); err != nil {
		return err
	}
	_, err := h.Conn.Write(h.buf)
	return err
}

// idleClosingApp is an HTTP/1.1 app server on a raw loopback listener
// (TLS when tc is set) that answers the first request of each connection
// with keep-alive, then lets the connection sit idle for a moment and ends
// it as end says. It counts the requests it answered, by method, and the
// connections it ended.
type idleClosingApp struct {
	addr  string
	ln    net.Listener
	ended atomic.Int64

	mu       sync.Mutex
	methods  map[string]int
	together int           // requests still to be held for each other (pair)
	both     chan struct{} // closed when both have arrived
}

// pair holds the next two requests until both have arrived (10 s at
// most), so that they come on two connections, answered together.
func (a *idleClosingApp) pair() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.together = 2
	a.both = make(chan struct{})
}

func newIdleClosingApp(t *testing.T, tc *tls.Config, end idleEnd) *idleClosingApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	a := &idleClosingApp{addr: ln.Addr().String(), ln: ln, methods: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	var conns sync.Map
	t.Cleanup(func() {
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
	})
	go func() {
		for {
			tcp, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(tcp, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer tcp.Close()
				a.serve(tcp, tc, end)
			}()
		}
	}()
	return a
}

func (a *idleClosingApp) serve(tcp net.Conn, tc *tls.Config, end idleEnd) {
	c := tcp
	held := &heldConn{Conn: tcp}
	if tc != nil {
		c = tls.Server(held, tc)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	body, _ := io.ReadAll(req.Body)
	a.mu.Lock()
	a.methods[req.Method]++
	wait, both := a.together > 0, a.both
	if wait {
		a.together--
		if a.together == 0 {
			close(both)
		}
	}
	a.mu.Unlock()
	if wait {
		select {
		case <-both:
		case <-time.After(10 * time.Second):
		}
	}
	answer := fmt.Sprintf("ok %s %s %s", req.Method, req.URL.Path, body)
	held.hold = end == endNotifyWithAnswer
	if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer); err != nil {
		return
	}
	if held.hold {
		if t, ok := c.(*tls.Conn); ok {
			_ = t.CloseWrite() // close_notify, behind the answer
		}
		if held.release() != nil {
			return
		}
		a.ended.Add(1)
		_, _ = io.Copy(io.Discard, br)
		return
	}
	time.Sleep(20 * time.Millisecond) // idle
	switch end {
	case endFullClose:
		_ = c.Close()
		a.ended.Add(1)
		return
	case endHalfClose:
		if t, ok := c.(*tls.Conn); ok {
			_ = t.CloseWrite() // close_notify
		}
		_ = tcp.(*net.TCPConn).CloseWrite()
	case endUnsolicited:
		_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
	}
	a.ended.Add(1)
	_, _ = io.Copy(io.Discard, br)
}

// stopListening makes new connections to the server fail (refused), while
// the open ones go on as before.
func (a *idleClosingApp) stopListening() { _ = a.ln.Close() }

func (a *idleClosingApp) answered() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.methods))
	for m, n := range a.methods {
		out[m] = n
	}
	return out
}

// requireUpstreamReadable waits until a connection of this process to
// addr (an IPv4 loopback server) has something to read that no request
// asked for: the server's FIN (the socket is in CLOSE_WAIT) or bytes in
// its receive queue. It reads /proc/net/tcp, so it sees the kernel's
// state, not the proxy's.
func requireUpstreamReadable(t *testing.T, addr string) {
	t.Helper()
	requireUpstreamsReadable(t, addr, 1)
}

// requireUpstreamsReadable is requireUpstreamReadable for n connections.
func requireUpstreamsReadable(t *testing.T, addr string, n int) {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	remote := fmt.Sprintf("0100007F:%04X", p)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return false
		}
		readable := 0
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 || f[2] != remote {
				continue
			}
			const closeWait = "08"
			_, rx, _ := strings.Cut(f[4], ":")
			if f[3] == closeWait || strings.Trim(rx, "0") != "" {
				readable++
			}
		}
		return readable >= n
	}, 30*time.Second, 5*time.Millisecond, "the server's end of the idle connection reached the proxy")
}

// pools[].keepalive_timeout is how long the proxy keeps an idle
// connection to a server: with one shorter than the server's own idle
// timeout, the proxy is the one that ends it.
func TestPoolKeepaliveTimeout(t *testing.T) {
	var opened, closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 10 * time.Minute
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	text := upstreamTLSConfig("    keepalive_timeout: 200ms\n", srv.Listener.Addr().String())
	tp := startProxyConfig(t, parseIn(t, dir, text))
	idle := func() time.Duration { return tp.gen.Load().clients[0].(*fasthttp.HostClient).MaxIdleConnDuration }
	require.Equal(t, 200*time.Millisecond, idle())
	c := client(t)
	for i := range 2 {
		resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Eventually(t, func() bool { return closed.Load() == int64(i+1) }, 30*time.Second, 5*time.Millisecond,
			"the proxy closed the idle connection")
	}
	assert.Equal(t, int64(2), opened.Load(), "each request after an idle spell on a new connection")

	// A reload that changes it makes a client with the new value.
	_, err := tp.Apply(parseIn(t, dir, strings.Replace(text, "200ms", "90s", 1)))
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, idle())
}
