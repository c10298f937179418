package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
)

func TestForwardExampleConfig(t *testing.T) {
	cfg, err := config.Load("../example.yaml")
	require.NoError(t, err)
	// Point every example server at a real app server named like it.
	for i := range cfg.Pools {
		for j := range cfg.Pools[i].Servers {
			s := &cfg.Pools[i].Servers[j]
			s.Addr = newAppServer(t, s.Name, nil).addr()
		}
		cfg.Pools[i].Health.Active = nil // no probes: every server starts up
	}
	tp := startProxyConfig(t, cfg)
	c := client(t)

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantPool           string // prefix of the answering server's name
	}{
		{"checkout", "POST", "/checkout/cart", 200, "checkout-"},
		{"browse", "GET", "/browse/shoes", 200, "browse-"},
		{"products share the browse pool", "GET", "/products/42", 200, "browse-"},
		{"auth", "GET", "/auth/session", 200, "auth-"},
		{"browse is read-only", "POST", "/browse/shoes", 404, ""},
		{"no route", "GET", "/admin", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, tt.method, tp.url+tt.path, strings.NewReader("x"), nil)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, body)
			if tt.wantPool != "" {
				assert.True(t, strings.HasPrefix(resp.Header.Get("X-Server"), tt.wantPool), "answered by %q", resp.Header.Get("X-Server"))
				assert.Equal(t, "hello from "+resp.Header.Get("X-Server"), body)
			} else {
				assert.Empty(t, resp.Header.Get("X-Server"))
			}
		})
	}
}

func TestForwardRequestAndResponse(t *testing.T) {
	servers := shopServers(t, map[string]http.HandlerFunc{
		"b1": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-App", "yes")
			w.Header().Add("Set-Cookie", "app=1; Path=/")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, strings.Repeat("b", 100_000))
		},
	})
	tp := startProxy(t, shopConfig, servers)
	c := client(t)

	resp, body := do(t, c, "GET", tp.url+"/browse/shoes?size=42&color=red", nil, map[string]string{"X-Custom": "kept"})
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, strings.Repeat("b", 100_000), body, "large body forwarded whole")
	assert.Equal(t, "yes", resp.Header.Get("X-App"))
	assert.Equal(t, "app=1; Path=/", resp.Header.Get("Set-Cookie"))
	got, _, _ := servers["b1"].lastRequest()
	require.NotNil(t, got)
	assert.Equal(t, "/browse/shoes", got.URL.Path)
	assert.Equal(t, "size=42&color=red", got.URL.RawQuery)
	assert.Equal(t, "kept", got.Header.Get("X-Custom"))
	assert.Equal(t, tp.addr, got.Host, "Host is the client's")

	resp, body = do(t, c, "POST", tp.url+"/auth/login", strings.NewReader("user=a&pass=b"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	got, gotBody, _ := servers["a1"].lastRequest()
	require.NotNil(t, got)
	assert.Equal(t, "user=a&pass=b", string(gotBody))
	assert.Equal(t, "application/x-www-form-urlencoded", got.Header.Get("Content-Type"))
}

func TestForwardingHeaders(t *testing.T) {
	servers := shopServers(t, nil)
	untrusted := startProxy(t, shopConfig, servers)
	trusted := startProxy(t, strings.Replace(shopConfig, "10.0.0.0/8", "127.0.0.0/8", 1), servers)

	tests := []struct {
		name  string
		proxy *testProxy
		in    map[string]string
		want  map[string]string
	}{
		{
			name:  "set from the connection",
			proxy: untrusted,
			in:    map[string]string{"Host": "shop.example"},
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "shop.example",
				"Forwarded":         "for=127.0.0.1;proto=http;host=shop.example",
			},
		},
		{
			name:  "forged by an untrusted client: replaced",
			proxy: untrusted,
			in: map[string]string{
				"Host":              "shop.example:8080",
				"X-Forwarded-For":   "6.6.6.6",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "evil.example",
				"Forwarded":         "for=6.6.6.6",
			},
			want: map[string]string{
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Forwarded-Host":  "shop.example:8080",
				"Forwarded":         `for=127.0.0.1;proto=http;host="shop.example:8080"`,
			},
		},
		{
			name:  "from a trusted proxy: chains extended, proto and host kept",
			proxy: trusted,
			in: map[string]string{
				"Host":              "shop.example",
				"X-Forwarded-For":   "203.0.113.7",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "www.shop.example",
				"Forwarded":         "for=203.0.113.7;proto=https",
			},
			want: map[string]string{
				"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "www.shop.example",
				"Forwarded":         "for=203.0.113.7;proto=https, for=127.0.0.1;proto=http;host=shop.example",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, client(t), "GET", tt.proxy.url+"/browse/x", nil, tt.in)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			got, _, _ := servers["b1"].lastRequest()
			require.NotNil(t, got)
			for k, v := range tt.want {
				assert.Equal(t, []string{v}, got.Header.Values(k), k)
			}
		})
	}
}

func TestAbsoluteFormRequest(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)
	// RFC 9112 §3.2.2: the absolute-form authority wins over Host, for
	// routing, forwarding and the forwarding headers alike.
	out := rawExchange(t, tp.addr, "GET http://www.shop.example/browse/x?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
	require.Equal(t, http.StatusOK, statusOf(t, out))
	got, _, _ := servers["b1"].lastRequest()
	require.NotNil(t, got)
	assert.Equal(t, "www.shop.example", got.Host)
	assert.Equal(t, "/browse/x?q=1", got.RequestURI)
	assert.Equal(t, "www.shop.example", got.Header.Get("X-Forwarded-Host"))
	assert.Equal(t, "for=127.0.0.1;proto=http;host=www.shop.example", got.Header.Get("Forwarded"))
}

func TestHTTP10Client(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)
	out := rawExchange(t, tp.addr, "GET /browse/x HTTP/1.0\r\nHost: shop\r\n\r\n")
	assert.Equal(t, http.StatusOK, statusOf(t, out))
	assert.True(t, strings.HasSuffix(out, "hello from b1"), "%q", out)
	got, _, _ := servers["b1"].lastRequest()
	require.NotNil(t, got)
	assert.Equal(t, "HTTP/1.1", got.Proto, "upstream connections stay HTTP/1.1 keep-alive")
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	servers := shopServers(t, map[string]http.HandlerFunc{
		"b1": func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Connection", "X-Resp-Hop")
			h.Set("X-Resp-Hop", "1")
			h.Set("Keep-Alive", "timeout=1")
			h.Set("Proxy-Authenticate", "Basic")
			h.Set("Trailer", "X-T")
			h.Set("X-Resp-Keep", "1")
			fmt.Fprint(w, "ok")
		},
		"a1": func(w http.ResponseWriter, _ *http.Request) {
			// The app server closes its connection: that is about the
			// upstream connection, not the client's.
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		},
	})
	tp := startProxy(t, shopConfig, servers)

	c, err := net.Dial("tcp", tp.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)

	_, err = io.WriteString(c, "GET /browse/x HTTP/1.1\r\nHost: shop\r\n"+
		"Connection: keep-alive, X-Req-Hop\r\nX-Req-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
		"TE: trailers\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eA==\r\n"+
		"Proxy-Connection: keep-alive\r\nX-Req-Keep: 1\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	got, _, _ := servers["b1"].lastRequest()
	require.NotNil(t, got)
	for _, h := range []string{"Connection", "X-Req-Hop", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization", "Proxy-Connection"} {
		assert.Empty(t, got.Header.Values(h), "request header %s reached the app server", h)
	}
	assert.Equal(t, "1", got.Header.Get("X-Req-Keep"))
	assert.Empty(t, got.Header.Values("User-Agent"), "the proxy invented a User-Agent")
	for _, h := range []string{"Connection", "X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer"} {
		assert.Empty(t, resp.Header.Values(h), "response header %s reached the client", h)
	}
	assert.Equal(t, "1", resp.Header.Get("X-Resp-Keep"))

	// The app server's Connection: close leaves the client connection open.
	_, err = io.WriteString(c, "GET /auth/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.False(t, resp.Close, "client connection closed")

	// A client's Connection: close is honoured for its own connection.
	_, err = io.WriteString(c, "GET /browse/x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	assert.True(t, resp.Close)
	got, _, _ = servers["b1"].lastRequest()
	assert.False(t, got.Close, "client's Connection: close reached the app server")
}

func TestExpectContinueAndHead(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)

	out := rawExchange(t, tp.addr, "POST /auth/login HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\n"+
		"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
	assert.True(t, strings.HasPrefix(out, "HTTP/1.1 100 Continue\r\n\r\n"), "%q", out)
	assert.Contains(t, out, "HTTP/1.1 200 OK")
	got, body, _ := servers["a1"].lastRequest()
	require.NotNil(t, got)
	assert.Equal(t, "hello", string(body))
	assert.Empty(t, got.Header.Values("Expect"))

	out = rawExchange(t, tp.addr, "HEAD /browse/x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
	assert.Equal(t, http.StatusOK, statusOf(t, out))
	assert.True(t, strings.HasSuffix(out, "\r\n\r\n"), "HEAD answered with a body: %q", out)
	assert.Contains(t, out, "Content-Length: 13\r\n", "length of the GET body") // "hello from b1"
}

func TestSmugglingRejectedOnTheWire(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)
	smuggled := "GET /auth/admin HTTP/1.1\r\nHost: shop\r\n\r\n"

	tests := []struct {
		name string
		raw  string
	}{
		{"content-length with transfer-encoding", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"transfer-encoding with content-length", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled},
		{"duplicate content-length", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		{"conflicting content-length", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\nContent-Length: 45\r\n\r\nhello" + smuggled},
		{"content-length list", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 5, 5\r\n\r\nhello"},
		{"signed content-length", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length: +5\r\n\r\nhello"},
		{"coding before chunked", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"two transfer-encodings", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"transfer-encoding on HTTP/1.0", "POST /checkout/x HTTP/1.0\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"space before colon", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nContent-Length : 5\r\n\r\nhello"},
		{"bad chunk size", "POST /checkout/x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"two hosts", "GET /checkout/x HTTP/1.1\r\nHost: shop\r\nHost: evil\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := rawExchange(t, tp.addr, tt.raw)
			assert.Equal(t, http.StatusBadRequest, statusOf(t, out))
			assert.Equal(t, 1, strings.Count(out, "HTTP/1.1 "), "exactly one response, then close: %q", out)
		})
	}
	for name, s := range servers {
		_, _, hits := s.lastRequest()
		assert.Zero(t, hits, "app server %s got a request", name)
	}
}

func TestSlowlorisCutOff(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, strings.Replace(shopConfig, "read_header_timeout: 300ms", "read_header_timeout: 500ms", 1), servers)

	c, err := net.Dial("tcp", tp.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))

	// Trickle header lines, never finishing the header block; bounded to 50
	// lines (5 s at 100 ms), ten times the header timeout.
	trickled := make(chan int, 1)
	go func() {
		n := 0
		defer func() { trickled <- n }()
		if _, err := io.WriteString(c, "GET /browse/x HTTP/1.1\r\nHost: shop\r\n"); err != nil {
			return
		}
		for ; n < 50; n++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", n); err != nil {
				return
			}
		}
	}()
	out, _ := io.ReadAll(c)
	assert.Equal(t, http.StatusRequestTimeout, statusOf(t, string(out)))
	_ = c.Close()
	assert.Less(t, <-trickled, 50, "the proxy waited for the whole trickle")
	_, _, hits := servers["b1"].lastRequest()
	assert.Zero(t, hits)
}

func TestLocalAnswers(t *testing.T) {
	closedAddr := refusedAddr(t)

	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	servers := shopServers(t, map[string]http.HandlerFunc{"c1": slow, "c2": slow})
	cfgText := strings.Replace(shopConfig, "{name: a1, addr: \"{a1}\"}", "{name: a1, addr: \""+closedAddr+"\"}", 1)
	tp := startProxy(t, cfgText, servers)
	c := client(t)

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		want   int
	}{
		{"no route", "GET", "/nothing/here", "", nil, http.StatusNotFound},
		{"route body limit", "POST", "/browse/x", "", nil, http.StatusNotFound}, // method not routed
		{"body over the route limit", "POST", "/checkout/pay", strings.Repeat("x", 1025), nil, http.StatusRequestEntityTooLarge},
		{"upstream too slow", "GET", "/checkout/cart", "", nil, http.StatusGatewayTimeout},
		{"upstream refuses connections", "GET", "/auth/x", "", nil, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, tp.url+tt.path, body)
			require.NoError(t, err)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				// The proxy may close while the client still writes a body it
				// refused; the status must still have been sent.
				t.Fatalf("request failed: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}

	// With request streaming the server reads ahead at most 8 KiB of a
	// body before the handler runs; the handler refuses from the
	// Content-Length and the rest is never read. Raw bytes, because an
	// HTTP client still sending the body may see the reset of the closed
	// connection before it reads the 413.
	readAhead := strings.Repeat("x", 8<<10)
	t.Run("declared body over every limit", func(t *testing.T) {
		out := rawExchange(t, tp.addr, fmt.Sprintf("POST /auth/x HTTP/1.1\r\nHost: shop\r\nContent-Length: %d\r\n\r\n", config.DefaultMaxBodyBytes+1)+readAhead)
		assert.Equal(t, http.StatusRequestEntityTooLarge, statusOf(t, out))
	})

	t.Run("declared body over the route limit", func(t *testing.T) {
		hits := func() int {
			_, _, a := servers["c1"].lastRequest()
			_, _, b := servers["c2"].lastRequest()
			return a + b
		}
		before := hits()
		out := rawExchange(t, tp.addr, "POST /checkout/pay HTTP/1.1\r\nHost: shop\r\nContent-Length: 5000\r\n\r\n"+readAhead[:1024])
		assert.Equal(t, http.StatusRequestEntityTooLarge, statusOf(t, out))
		assert.Equal(t, before, hits(), "nothing reaches the app servers")
	})

	t.Run("chunked body over the route limit", func(t *testing.T) {
		chunk := strings.Repeat("x", 1000)
		out := rawExchange(t, tp.addr, "POST /checkout/pay HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"3e8\r\n"+chunk+"\r\n3e8\r\n"+chunk+"\r\n0\r\n\r\n")
		assert.Equal(t, http.StatusRequestEntityTooLarge, statusOf(t, out))
	})

	t.Run("header too large", func(t *testing.T) {
		out := rawExchange(t, tp.addr, "GET /browse/x HTTP/1.1\r\nHost: shop\r\nX-Big: "+strings.Repeat("h", 20<<10)+"\r\n\r\n")
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, statusOf(t, out))
	})

	t.Run("no healthy backend", func(t *testing.T) {
		tp.dir.SetStatus("browse/b1", false)
		resp, _ := do(t, c, "GET", tp.url+"/browse/x", nil, nil)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		tp.dir.SetStatus("browse/b1", true)
		resp, _ = do(t, c, "GET", tp.url+"/browse/x", nil, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

// TestReadinessFlips is the strict mode, kept as an explicit option: any
// empty pool fails the whole host.
func TestReadinessFlips(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, "readiness: all_pools\n"+shopConfig, servers)
	admin := httptest.NewServer(tp.AdminHandler())
	t.Cleanup(admin.Close)
	c := client(t)

	steps := []struct {
		name       string
		down       []string
		up         []string
		wantStatus int
		wantBody   string
	}{
		{"all up", nil, nil, http.StatusOK, "ready"},
		{"one of two checkout servers down", []string{"checkout/c1"}, nil, http.StatusOK, "ready"},
		{"checkout pool empty", []string{"checkout/c2"}, nil, http.StatusServiceUnavailable, "pool checkout has no available server"},
		{"checkout back, auth empty", []string{"auth/a1"}, []string{"checkout/c1"}, http.StatusServiceUnavailable, "pool auth has no available server"},
		{"all back", nil, []string{"auth/a1", "checkout/c2"}, http.StatusOK, "ready"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for _, n := range st.down {
				tp.dir.SetStatus(n, false)
			}
			for _, n := range st.up {
				tp.dir.SetStatus(n, true)
			}
			resp, body := do(t, c, "GET", admin.URL+"/ready", nil, nil)
			assert.Equal(t, st.wantStatus, resp.StatusCode)
			assert.Contains(t, body, st.wantBody)
		})
	}

	resp, body := do(t, c, "GET", admin.URL+"/healthz", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", body)
	resp, body = do(t, c, "GET", admin.URL+"/metrics", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "xlb_l7_ready 1")
}

func TestStickyCookieOnTheWire(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)
	c := client(t)

	resp, _ := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	pinned := resp.Header.Get("X-Server")
	setCookie := resp.Header.Values("Set-Cookie")
	require.Len(t, setCookie, 1)
	assert.Regexp(t, `^xlb_checkout=[A-Za-z0-9_-]+; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax$`, setCookie[0])
	cookie := strings.SplitN(setCookie[0], ";", 2)[0]

	for i := range 10 {
		resp, _ = do(t, c, "GET", tp.url+"/checkout/cart", nil, map[string]string{"Cookie": "other=1; " + cookie})
		assert.Equal(t, pinned, resp.Header.Get("X-Server"), "request %d left the pinned server", i)
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "fresh cookie re-issued")
	}

	// A tampered cookie is treated as absent: a new pin, never an error.
	tampered := cookie[:len(cookie)-2] + "AA"
	if tampered == cookie {
		tampered = cookie[:len(cookie)-2] + "BB"
	}
	resp, _ = do(t, c, "GET", tp.url+"/checkout/cart", nil, map[string]string{"Cookie": tampered})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, resp.Header.Values("Set-Cookie"), 1)

	// The pinned server goes down: the client is re-pinned and re-issued.
	tp.dir.SetStatus("checkout/"+pinned, false)
	resp, _ = do(t, c, "GET", tp.url+"/checkout/cart", nil, map[string]string{"Cookie": cookie})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEqual(t, pinned, resp.Header.Get("X-Server"))
	assert.Len(t, resp.Header.Values("Set-Cookie"), 1)
}

func TestAccessLog(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxy(t, shopConfig, servers)
	resp, _ := do(t, client(t), "GET", tp.url+"/browse/shoes", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	logs := tp.logs.String()
	for _, want := range []string{`"msg":"request"`, `"method":"GET"`, `"path":"/browse/shoes"`, `"status":200`, `"route":"browse"`, `"pool":"browse"`, `"backend":"b1"`, `"client":"127.0.0.1"`} {
		assert.Contains(t, logs, want)
	}
}

func TestAccessLogSampling(t *testing.T) {
	tests := []struct {
		sample float64
		status []int
		want   int
	}{
		{1, []int{200, 200, 200, 200}, 4},
		{0.5, []int{200, 200, 200, 200}, 2},
		{0.25, []int{200, 200, 200, 200, 200, 200, 200, 200}, 2},
		{0.25, []int{503, 502, 200, 504}, 3},
		{0, []int{200, 500}, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.sample, tt.status), func(t *testing.T) {
			a := newAccessLog(nil, tt.sample)
			n := 0
			for _, s := range tt.status {
				if a.sampled(s) {
					n++
				}
			}
			assert.Equal(t, tt.want, n)
		})
	}
}

func TestRunAndShutdown(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	servers := shopServers(t, map[string]http.HandlerFunc{
		"a1": func(w http.ResponseWriter, _ *http.Request) {
			arrived <- struct{}{}
			<-release
			fmt.Fprint(w, "finished")
		},
	})
	text := shopConfig
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse("test.yaml", []byte(text))
	require.NoError(t, err)
	// Run listens itself: find free ports first.
	cfg.Listeners[0].Addr = freeAddr(t)
	cfg.Admin.Addr = freeAddr(t)
	tp := startProxyConfig(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tp.Run(ctx) }()
	c := client(t)
	require.Eventually(t, func() bool {
		resp, err := c.Get("http://" + cfg.Admin.Addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond)
	resp, _ := do(t, c, "GET", "http://"+cfg.Listeners[0].Addr+"/browse/x", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A request in flight when the stop comes still gets its answer.
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := client(t).Get("http://" + cfg.Listeners[0].Addr + "/auth/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{resp.StatusCode, string(b), err}
	}()
	<-arrived
	cancel()
	time.Sleep(100 * time.Millisecond) // let shutdown begin while the request waits
	close(release)
	r := <-inflight
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "finished", r.body)
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	_, err = c.Get("http://" + cfg.Listeners[0].Addr + "/browse/x")
	assert.Error(t, err, "still accepting after shutdown")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
