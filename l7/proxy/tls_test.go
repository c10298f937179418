package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/testcert"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// tlsFixture is a test CA and two leaf certificates in a temp dir: the
// default for shop.example.com (and 127.0.0.1, for clients without SNI)
// and a second one for api.example.com.
type tlsFixture struct {
	dir string
	ca  *testcert.CA
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	f := &tlsFixture{dir: t.TempDir(), ca: ca}
	f.issue(t)
	return f
}

// issue (re)writes both leaf certificates with fresh keys and serials.
func (f *tlsFixture) issue(t *testing.T) {
	t.Helper()
	_, _, err := f.ca.Leaf(f.dir, "shop", "shop.example.com", "127.0.0.1")
	require.NoError(t, err)
	_, _, err = f.ca.Leaf(f.dir, "api", "api.example.com")
	require.NoError(t, err)
	// Any bytes do for a staple: the server sends the file as it is (the
	// client verifies it, not the proxy).
	require.NoError(t, writeFile(filepath.Join(f.dir, "api.ocsp"), "staple for api"))
}

// tlsListener is the shop config's listener, with TLS.
func (f *tlsFixture) config(extra string) string {
	return strings.Replace(shopConfig, `listeners: [{name: http, addr: "127.0.0.1:0"}]`, fmt.Sprintf(`listeners:
  - name: https
    addr: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: %[1]s/shop.crt, key: %[1]s/shop.key}
        - {cert: %[1]s/api.crt, key: %[1]s/api.key, ocsp: %[1]s/api.ocsp}
%[2]s`, f.dir, extra), 1)
}

// clientTLS trusts the test CA and asks for serverName.
func (f *tlsFixture) clientTLS(serverName string) *tls.Config {
	return &tls.Config{RootCAs: f.ca.Pool, ServerName: serverName}
}

// startTLSProxy serves the config's first listener with TLS on a loopback
// port until the test ends.
func startTLSProxy(t *testing.T, yamlText string, servers map[string]*appServer) *testProxy {
	t.Helper()
	for name, s := range servers {
		yamlText = strings.ReplaceAll(yamlText, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "test.yaml"), []byte(yamlText))
	require.NoError(t, err)
	dir, err := director.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	reg := prometheusRegistry()
	p, err := New(cfg, dir, Options{Registerer: reg, Gatherer: reg})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- p.ServeTLS(ln, cfg.Listeners[0].Name) }()
	t.Cleanup(func() {
		_ = p.Close()
		assert.NoError(t, <-done)
	})
	addr := ln.Addr().String()
	return &testProxy{Proxy: p, dir: dir, reg: reg, addr: addr, url: "https://" + addr}
}

// h1Client speaks HTTP/1.1 over TLS only.
func h1Client(t *testing.T, conf *tls.Config) *http.Client {
	t.Helper()
	conf = conf.Clone()
	conf.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{TLSClientConfig: conf, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2TestClient speaks HTTP/2 over TLS only.
func h2TestClient(t *testing.T, conf *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: conf.Clone(), ForceAttemptHTTP2: true, DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// serial is the serial number of the certificate the server presented.
func serialOf(t *testing.T, cs tls.ConnectionState) string {
	t.Helper()
	require.NotEmpty(t, cs.PeerCertificates)
	return cs.PeerCertificates[0].SerialNumber.String()
}

func TestTLSCertificateBySNI(t *testing.T) {
	f := newTLSFixture(t)
	servers := shopServers(t, nil)
	tp := startTLSProxy(t, f.config(""), servers)

	for _, name := range []string{"shop.example.com", "api.example.com"} {
		c, err := tls.Dial("tcp", tp.addr, f.clientTLS(name))
		require.NoError(t, err, name)
		leaf := c.ConnectionState().PeerCertificates[0]
		assert.Equal(t, []string{name}, leaf.DNSNames, "certificate for %s", name)
		if name == "api.example.com" {
			assert.Equal(t, "staple for api", string(c.ConnectionState().OCSPResponse), "OCSP staple")
		} else {
			assert.Empty(t, c.ConnectionState().OCSPResponse, "no staple file, no staple")
		}
		require.NoError(t, c.Close())
	}
	// No SNI (a client dialling the address): the first certificate.
	c, err := tls.Dial("tcp", tp.addr, &tls.Config{RootCAs: f.ca.Pool, ServerName: "127.0.0.1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"shop.example.com"}, c.ConnectionState().PeerCertificates[0].DNSNames)
	require.NoError(t, c.Close())

	// HTTP/1.1 over TLS: the fasthttp path, which tells the app server the
	// client came over https and marks the sticky cookie Secure.
	resp, body := do(t, h1Client(t, f.clientTLS("shop.example.com")), "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, 1, resp.ProtoMajor)
	srv := resp.Header.Get("X-Server")
	require.Contains(t, []string{"c1", "c2"}, srv)
	last, _, _ := servers[srv].lastRequest()
	assert.Equal(t, "https", last.Header.Get("X-Forwarded-Proto"))
	assert.Contains(t, last.Header.Get("Forwarded"), "proto=https")
	require.Len(t, resp.Cookies(), 1)
	assert.True(t, resp.Cookies()[0].Secure, "sticky cookie over TLS is Secure: %s", resp.Header.Get("Set-Cookie"))
}

func TestTLSMinVersion(t *testing.T) {
	f := newTLSFixture(t)
	tp := startTLSProxy(t, f.config(""), shopServers(t, nil))

	old := f.clientTLS("shop.example.com")
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	_, err := tls.Dial("tcp", tp.addr, old)
	require.Error(t, err, "a TLS 1.1 client is refused")
	assert.Contains(t, err.Error(), "protocol version")
	require.Eventually(t, func() bool { return tp.tlsFailures.Load() == 1 }, 30*time.Second, 10*time.Millisecond)
	assert.NoError(t, testutil.GatherAndCompare(tp.reg, strings.NewReader(`# HELP xlb_l7_tls_handshake_failures_total Client TLS handshakes that failed: no common version or cipher, timeout, not TLS at all.
# TYPE xlb_l7_tls_handshake_failures_total counter
xlb_l7_tls_handshake_failures_total 1
`), "xlb_l7_tls_handshake_failures_total"))

	v12 := f.clientTLS("shop.example.com")
	v12.MaxVersion = tls.VersionTLS12
	c, err := tls.Dial("tcp", tp.addr, v12)
	require.NoError(t, err, "TLS 1.2 is the default minimum")
	assert.Equal(t, uint16(tls.VersionTLS12), c.ConnectionState().Version)
	require.NoError(t, c.Close())

	// min_version 1.3 refuses 1.2.
	tp13 := startTLSProxy(t, f.config(`      min_version: "1.3"
`), shopServers(t, nil))
	_, err = tls.Dial("tcp", tp13.addr, v12)
	require.Error(t, err, "a TLS 1.2 client is refused with min_version 1.3")
}

// rawHTTPS sends one HTTP/1.1 request on an open TLS connection and reads
// the answer.
func rawHTTPS(t *testing.T, c *tls.Conn, br *bufio.Reader, path string) (*http.Response, string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", path)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(b)
}

func TestTLSCertificateReload(t *testing.T) {
	f := newTLSFixture(t)
	servers := shopServers(t, nil)
	text := f.config("")
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	tp := startTLSProxy(t, text, nil)

	// An open HTTP/1.1 keep-alive connection and an open h2 connection.
	old, err := tls.Dial("tcp", tp.addr, f.clientTLS("shop.example.com"))
	require.NoError(t, err)
	defer old.Close()
	oldSerial := serialOf(t, old.ConnectionState())
	br := bufio.NewReader(old)
	resp, body := rawHTTPS(t, old, br, "/browse/a")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	h2 := h2TestClient(t, f.clientTLS("shop.example.com"))
	var h2Serials []string
	h2get := func() {
		t.Helper()
		resp, body := do(t, h2, "GET", tp.url+"/browse/h2", nil, map[string]string{"Host": "shop.example.com"})
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, 2, resp.ProtoMajor)
		h2Serials = append(h2Serials, serialOf(t, *resp.TLS))
	}
	h2get()

	// Renew both certificates and reload.
	f.issue(t)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "test.yaml"), []byte(text))
	require.NoError(t, err)
	applied, err := tp.Apply(cfg)
	require.NoError(t, err)
	assert.Empty(t, applied.Restart, "certificates reload without a restart")

	// New connections get the new certificate, for both names.
	for _, name := range []string{"shop.example.com", "api.example.com"} {
		c, err := tls.Dial("tcp", tp.addr, f.clientTLS(name))
		require.NoError(t, err)
		assert.NotEqual(t, oldSerial, serialOf(t, c.ConnectionState()), name)
		require.NoError(t, c.Close())
	}
	c, err := tls.Dial("tcp", tp.addr, f.clientTLS("shop.example.com"))
	require.NoError(t, err)
	newSerial := serialOf(t, c.ConnectionState())
	require.NoError(t, c.Close())
	assert.NotEqual(t, oldSerial, newSerial)

	// The open connections keep working on the session they negotiated.
	for range 3 {
		resp, body := rawHTTPS(t, old, br, "/browse/b")
		assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	}
	assert.Equal(t, oldSerial, serialOf(t, old.ConnectionState()))
	h2get()
	assert.Equal(t, h2Serials[0], h2Serials[1], "the h2 connection stayed open across the reload")

	// A reload with a broken certificate is a config error; what runs stays.
	require.NoError(t, writeFile(filepath.Join(f.dir, "api.key"), "not a key"))
	_, err = config.Parse(filepath.Join(t.TempDir(), "test.yaml"), []byte(text))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "api.key")
	c, err = tls.Dial("tcp", tp.addr, f.clientTLS("shop.example.com"))
	require.NoError(t, err)
	assert.Equal(t, newSerial, serialOf(t, c.ConnectionState()))
	require.NoError(t, c.Close())
}

func TestH2ThroughProxy(t *testing.T) {
	f := newTLSFixture(t)
	servers := shopServers(t, nil)
	tp := startTLSProxy(t, f.config(""), servers)
	c := h2TestClient(t, f.clientTLS("shop.example.com"))

	// Routing: each path prefix reaches its pool, over HTTP/2.
	resp, body := do(t, c, "GET", tp.url+"/browse/shoes?size=42", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.Equal(t, "b1", resp.Header.Get("X-Server"))
	last, _, _ := servers["b1"].lastRequest()
	assert.Equal(t, "/browse/shoes", last.URL.Path)
	assert.Equal(t, "size=42", last.URL.RawQuery)
	assert.Equal(t, "https", last.Header.Get("X-Forwarded-Proto"))
	assert.Equal(t, "127.0.0.1", last.Header.Get("X-Forwarded-For"))
	assert.Equal(t, tp.addr, last.Host, ":authority is forwarded as Host")
	resp, _ = do(t, c, "GET", tp.url+"/auth/login", nil, nil)
	assert.Equal(t, "a1", resp.Header.Get("X-Server"))
	resp, _ = do(t, c, "GET", tp.url+"/nowhere", nil, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Sticky sessions: the first answer pins, with a Secure cookie, and the
	// cookie keeps the client on its server.
	resp, _ = do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	pinned := resp.Header.Get("X-Server")
	require.Len(t, resp.Cookies(), 1)
	ck := resp.Cookies()[0]
	assert.Equal(t, "xlb_checkout", ck.Name)
	assert.True(t, ck.Secure)
	for range 20 {
		resp, _ := do(t, c, "GET", tp.url+"/checkout/cart", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value + "; other=1"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, pinned, resp.Header.Get("X-Server"))
		assert.Empty(t, resp.Cookies(), "a fresh cookie is not re-sent")
	}

	// Request bodies reach the app server; the route's limit holds.
	resp, _ = do(t, c, "POST", tp.url+"/checkout/pay", strings.NewReader("card=4242"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, got, _ := servers[resp.Header.Get("X-Server")].lastRequest()
	assert.Equal(t, "card=4242", string(got))
	resp, _ = do(t, c, "POST", tp.url+"/checkout/pay", strings.NewReader(strings.Repeat("x", 2048)), nil)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	// Many streams at once on the one connection.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 50 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", tp.url+"/browse/p", nil)
			resp, err := c.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			codes[resp.StatusCode]++
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{200: 50}, codes)

	// The same metrics as HTTP/1.1.
	assert.Equal(t, 51.0, requestCount(t, tp, "browse", "2xx"))
	assert.Equal(t, 22.0, requestCount(t, tp, "checkout", "2xx"))
	assert.Equal(t, 1.0, requestCount(t, tp, "checkout", "4xx"))
}

func writeFile(name, text string) error { return os.WriteFile(name, []byte(text), 0o600) }

// requestCount sums xlb_l7_requests_total for a route and status class.
func requestCount(t *testing.T, tp *testProxy, route, class string) float64 {
	t.Helper()
	mfs, err := tp.reg.Gather()
	require.NoError(t, err)
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "xlb_l7_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["code_class"] == class {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func TestH2cRefused(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)

	// HTTP/2 with prior knowledge on a cleartext listener: not spoken.
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	_, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(tp.url + "/browse/x")
	require.Error(t, err, "h2c prior knowledge is refused")
	assert.Equal(t, 0, servers["b1"].hits())
	// On the wire: the preface is a malformed HTTP/1.1 request.
	raw := rawExchange(t, tp.addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	assert.True(t, strings.HasPrefix(raw, "HTTP/1.1 400 "), raw)

	// Upgrade: h2c over HTTP/1.1 (TLS runs the same handler) is answered as plain
	// HTTP/1.1; the app server never sees the upgrade.
	raw = rawExchange(t, tp.addr, "GET /browse/x HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n")
	assert.Equal(t, http.StatusOK, statusOf(t, raw), raw)
	assert.NotContains(t, raw, "101 Switching")
	last, _, _ := servers["b1"].lastRequest()
	require.NotNil(t, last)
	assert.Empty(t, last.Header.Get("Upgrade"))
	assert.Empty(t, last.Header.Get("Http2-Settings"))
}

// A stop lets an h2 request in flight finish (the h2 server sends GOAWAY
// and waits), then refuses new connections.
func TestH2GracefulStop(t *testing.T) {
	f := newTLSFixture(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	servers := shopServers(t, map[string]http.HandlerFunc{"a1": func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, "finished")
	}})
	tp := startTLSProxy(t, f.config(""), servers)
	c := h2TestClient(t, f.clientTLS("shop.example.com"))

	type answer struct {
		status int
		proto  int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := c.Get(tp.url + "/auth/slow")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, resp.ProtoMajor, string(b), err}
	}()
	<-arrived
	closed := make(chan error, 1)
	go func() { closed <- tp.Close() }()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", tp.addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	}, 30*time.Second, 10*time.Millisecond, "the TLS listener closes at once")
	close(release)
	a := <-got
	require.NoError(t, a.err)
	assert.Equal(t, answer{status: 200, proto: 2, body: "finished"}, a)
	assert.NoError(t, <-closed)
}

// limits.max_conns bounds h2 connections too: one over the limit is
// closed after its handshake and counted; once one closes, a new one is
// served.
func TestH2MaxConns(t *testing.T) {
	f := newTLSFixture(t)
	tp := startTLSProxy(t, strings.Replace(f.config(""), "limits:\n", "limits:\n  max_conns: 2\n", 1), shopServers(t, nil))
	var clients []*http.Client
	var transports []*http.Transport
	for range 3 {
		c := h2TestClient(t, f.clientTLS("shop.example.com"))
		clients = append(clients, c)
		transports = append(transports, c.Transport.(*http.Transport))
	}
	for _, c := range clients[:2] {
		resp, body := do(t, c, "GET", tp.url+"/browse/x", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Equal(t, 2, resp.ProtoMajor)
	}
	require.Eventually(t, func() bool { return tp.h2Conns.Load() == 2 }, 30*time.Second, 10*time.Millisecond)
	_, err := clients[2].Get(tp.url + "/browse/x")
	require.Error(t, err, "a third h2 connection is over max_conns")
	assert.Equal(t, uint64(1), tp.tlsRefused.Load())

	transports[0].CloseIdleConnections()
	require.Eventually(t, func() bool { return tp.h2Conns.Load() == 1 }, 30*time.Second, 10*time.Millisecond)
	resp, body := do(t, clients[2], "GET", tp.url+"/browse/x", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// Handshakes in progress are bounded by limits.max_conns: silent clients
// holding every slot make the next connection be closed (and counted)
// until read_header_timeout frees the slots.
func TestTLSHandshakeBound(t *testing.T) {
	f := newTLSFixture(t)
	tp := startTLSProxy(t, strings.Replace(f.config(""), "limits:\n", "limits:\n  max_conns: 2\n", 1), shopServers(t, nil))
	for range 2 {
		c, err := net.Dial("tcp", tp.addr)
		require.NoError(t, err)
		defer c.Close()
	}
	require.Eventually(t, func() bool { return len(tp.handshakes) == 2 }, 30*time.Second, 5*time.Millisecond)
	_, err := tls.Dial("tcp", tp.addr, f.clientTLS("shop.example.com"))
	require.Error(t, err, "no handshake slot left")
	assert.Equal(t, uint64(1), tp.tlsRefused.Load())

	// The silent clients time out (read_header_timeout 300ms) and count as
	// failed handshakes; then a client is served again.
	require.Eventually(t, func() bool { return len(tp.handshakes) == 0 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(2), tp.tlsFailures.Load())
	resp, body := do(t, h1Client(t, f.clientTLS("shop.example.com")), "GET", tp.url+"/browse/x", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
}

// Server-sent events stream over h2 as they do over HTTP/1.1: the first
// event reaches the client while the app server still holds the second.
func TestH2StreamsEvents(t *testing.T) {
	f := newTLSFixture(t)
	release := make(chan struct{})
	servers := shopServers(t, map[string]http.HandlerFunc{"b1": func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: 2\n\n")
	}})
	tp := startTLSProxy(t, f.config(""), servers)
	req, err := http.NewRequest("GET", tp.url+"/browse/events", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := h2TestClient(t, f.clientTLS("shop.example.com")).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "data: 1\n", line, "the first event arrives before the second is written")
	close(release)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "\ndata: 2\n\n", string(rest))
	require.Eventually(t, func() bool { return requestCount(t, tp, "browse", "2xx") == 1 }, 30*time.Second, 10*time.Millisecond,
		"counted when the stream ends")
}

// Session tickets are the listener's, not the config's: a client resumes
// its session after a reload.
func TestTLSResumesAcrossReload(t *testing.T) {
	f := newTLSFixture(t)
	servers := shopServers(t, nil)
	text := f.config("")
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	tp := startTLSProxy(t, text, nil)
	conf := f.clientTLS("shop.example.com")
	conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	connect := func() bool {
		t.Helper()
		c, err := tls.Dial("tcp", tp.addr, conf)
		require.NoError(t, err)
		defer c.Close()
		// TLS 1.3 tickets come after the handshake: read an answer so the
		// client has processed them.
		resp, _ := rawHTTPS(t, c, bufio.NewReader(c), "/browse/r")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return c.ConnectionState().DidResume
	}
	require.False(t, connect())
	require.True(t, connect(), "resumes before a reload")
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "test.yaml"), []byte(text))
	require.NoError(t, err)
	_, err = tp.Apply(cfg)
	require.NoError(t, err)
	assert.True(t, connect(), "resumes after a reload")
}

// The h2 answer carries what the app server sent and nothing net/http
// would add on its own: no Date, no sniffed Content-Type; HEAD keeps the
// app server's Content-Length.
func TestH2ResponseHeaders(t *testing.T) {
	f := newTLSFixture(t)
	servers := shopServers(t, map[string]http.HandlerFunc{"b1": func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Date"] = nil
		w.Header()["Content-Type"] = nil
		w.Header().Set("Content-Length", "12")
		fmt.Fprint(w, "<html></html")
	}})
	tp := startTLSProxy(t, f.config(""), servers)
	c := h2TestClient(t, f.clientTLS("shop.example.com"))

	resp, body := do(t, c, "GET", tp.url+"/browse/page", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "<html></html", body)
	assert.Empty(t, resp.Header.Values("Date"))
	assert.Empty(t, resp.Header.Values("Content-Type"))
	assert.Equal(t, int64(12), resp.ContentLength)

	resp, body = do(t, c, "HEAD", tp.url+"/browse/page", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, int64(12), resp.ContentLength, "HEAD keeps the app server's length")
}
