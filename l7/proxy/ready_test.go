package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// TestEmptyPoolFailsOnlyItsRoutes is the regression test for one empty pool
// taking every L7 host out: browse's only app server really stops, active
// health notices, and then /browse answers 503 with Retry-After while
// /checkout is still served and /ready stays 200.
func TestEmptyPoolFailsOnlyItsRoutes(t *testing.T) {
	servers := shopServers(t, nil)
	cfg := strings.Replace(shopConfig, `      - {name: b1, addr: "{b1}"}`, `      - {name: b1, addr: "{b1}"}
    health:
      active: {path: /, interval: 20ms, timeout: 15ms, rise: 1, fall: 1}`, 1)
	require.NotEqual(t, shopConfig, cfg)
	tp := startProxy(t, cfg, servers)
	require.NoError(t, tp.dir.Start(t.Context()))
	admin := httptest.NewServer(tp.AdminHandler())
	t.Cleanup(admin.Close)
	c := client(t)

	resp, _ := do(t, c, "GET", tp.url+"/browse/x", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	servers["b1"].srv.Close()
	require.Eventually(t, func() bool {
		return len(tp.dir.EmptyRoutes()) == 1
	}, 30*time.Second, 10*time.Millisecond, "active health never saw b1 down")

	resp, body := do(t, c, "GET", tp.url+"/browse/x", nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.Contains(t, body, "Service Unavailable")

	for range 5 {
		resp, body = do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, body, "hello from c")
	}

	resp, body = do(t, c, "GET", admin.URL+"/ready", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ready\nroute browse: pool browse has no available server (answering 503)\n", body)

	resp, body = do(t, c, "GET", admin.URL+"/metrics", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "xlb_l7_ready 1\n")
	assert.Contains(t, body, `xlb_l7_pool_available_servers{pool="browse"} 0`)
	assert.Contains(t, body, `xlb_l7_pool_available_servers{pool="checkout"} 2`)
	assert.Contains(t, body, `xlb_l7_requests_total{code_class="5xx",pool="browse",route="browse",server=""} 1`)
}

func TestReadyNeedsAListenerAndNoStop(t *testing.T) {
	servers := shopServers(t, nil)
	text := shopConfig
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse("test.yaml", []byte(text))
	require.NoError(t, err)
	dir, err := director.New(cfg)
	require.NoError(t, err)
	p, err := New(cfg, dir, Options{})
	require.NoError(t, err)
	ok, reason := p.Ready()
	assert.False(t, ok)
	assert.Equal(t, "no listener is serving yet", reason)

	tp := startProxyConfig(t, cfg)
	require.Eventually(t, func() bool { ok, _ := tp.Ready(); return ok }, 30*time.Second, 5*time.Millisecond)
	tp.stopping.Store(true)
	ok, reason = tp.Ready()
	assert.False(t, ok)
	assert.Equal(t, "stopping", reason)
}
