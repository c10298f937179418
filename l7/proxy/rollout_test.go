package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/l7/sticky"
)

// withCheckout9 is shopConfig with a third checkout server, c9.
var withCheckout9 = strings.Replace(shopConfig, `      - {name: c2, addr: "{c2}"}`,
	"      - {name: c2, addr: \"{c2}\"}\n      - {name: c9, addr: \"{c9}\"}", 1)

// stickyAnswer sends one checkout request with cookie (none when empty)
// and returns the server that answered and the sticky cookie set, if any.
func stickyAnswer(t *testing.T, c *http.Client, tp *testProxy, cookie string) (server, setCookie string) {
	t.Helper()
	hdr := map[string]string{}
	if cookie != "" {
		hdr["Cookie"] = cookie
	}
	resp, _ := do(t, c, "GET", tp.url+"/checkout/cart", nil, hdr)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("X-Server"), strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
}

// TestStickyServerAddedOneHostAtATime is `xlb pool server add` reaching
// the L7 hosts one after the other: a client pinned to the new server by a
// host that has it, whose next connection reaches a host that does not
// have it yet, keeps its cookie there and is back on the new server once
// that host has it. Before, the second host re-pinned the client
// elsewhere for good.
func TestStickyServerAddedOneHostAtATime(t *testing.T) {
	servers := shopServers(t, nil)
	servers["c9"] = newAppServer(t, "c9", nil)
	a := startProxyConfig(t, parseShop(t, shopConfig, servers))
	b := startProxyConfig(t, parseShop(t, shopConfig, servers))
	c := client(t)

	_, err := a.Apply(parseShop(t, withCheckout9, servers))
	require.NoError(t, err)
	var cookie string
	for range 200 {
		if server, set := stickyAnswer(t, c, a, ""); server == "c9" {
			cookie = set
			break
		}
	}
	require.NotEmpty(t, cookie, "host a pins a new client to c9 within 200 clients")

	stand, set := stickyAnswer(t, c, b, cookie)
	assert.Empty(t, set, "host b, which has no c9 yet, leaves the cookie naming c9 alone")
	assert.Contains(t, []string{"c1", "c2"}, stand, "and serves the client meanwhile")
	again, set := stickyAnswer(t, c, b, cookie)
	assert.Equal(t, stand, again, "on one stand-in")
	assert.Empty(t, set)
	assert.Equal(t, float64(2), metricValue(t, b.reg, "xlb_l7_sticky_total", map[string]string{"pool": "checkout", "result": "pending"}))

	server, set := stickyAnswer(t, c, a, cookie)
	assert.Equal(t, "c9", server, "host a still sends the client to c9")
	assert.Empty(t, set)

	_, err = b.Apply(parseShop(t, withCheckout9, servers))
	require.NoError(t, err)
	for i := range 5 {
		server, set := stickyAnswer(t, c, b, cookie)
		assert.Equal(t, "c9", server, "request %d: back on c9 once host b has it", i)
		assert.Empty(t, set)
	}
	for _, tp := range []*testProxy{a, b} {
		assert.Zero(t, metricValue(t, tp.reg, "xlb_l7_sticky_rejected_total", map[string]string{"pool": "checkout", "reason": "unknown_server"}))
		assert.Zero(t, metricValue(t, tp.reg, "xlb_l7_sticky_total", map[string]string{"pool": "checkout", "result": "repin"}))
	}
}

// TestStickyUnknownServerStillRepinned: a cookie naming a server the host
// does not have is re-pinned when it is older than the propagation grace,
// and at once when the host deleted that server itself.
func TestStickyUnknownServerStillRepinned(t *testing.T) {
	servers := shopServers(t, nil)
	servers["c9"] = newAppServer(t, "c9", nil)
	cfg := parseShop(t, shopConfig, servers)
	c := client(t)
	name := cfg.Pools[0].Sticky.Cookie
	ring, err := sticky.NewRing([]sticky.Key{{ID: byte(cfg.Sticky.Keys[0].ID), Secret: cfg.Sticky.Keys[0].Bytes}})
	require.NoError(t, err)
	c9 := pool.ServerKey("checkout", "c9")

	repinned := func(t *testing.T, tp *testProxy, cookie string) {
		t.Helper()
		server, set := stickyAnswer(t, c, tp, cookie)
		require.NotEmpty(t, set, "a new cookie replaces the one naming c9")
		assert.NotEqual(t, cookie, set)
		for range 5 {
			again, reset := stickyAnswer(t, c, tp, set)
			assert.Equal(t, server, again, "the new pin sticks")
			assert.Empty(t, reset)
		}
	}

	t.Run("issued before the grace", func(t *testing.T) {
		tp := startProxyConfig(t, parseShop(t, shopConfig, servers))
		old := name + "=" + string(ring.AppendValue(nil, c9, time.Now().Add(-config.DefaultPropagationGrace-time.Second)))
		repinned(t, tp, old)
		fresh := name + "=" + string(ring.AppendValue(nil, c9, time.Now()))
		_, set := stickyAnswer(t, c, tp, fresh)
		assert.Empty(t, set, "the same server named by a fresh cookie is taken for one on its way")
	})
	t.Run("deleted on this host", func(t *testing.T) {
		tp := startProxyConfig(t, parseShop(t, withCheckout9, servers))
		fresh := name + "=" + string(ring.AppendValue(nil, c9, time.Now()))
		server, set := stickyAnswer(t, c, tp, fresh)
		require.Equal(t, "c9", server)
		require.Empty(t, set)
		_, err := tp.Apply(parseShop(t, shopConfig, servers))
		require.NoError(t, err)
		repinned(t, tp, fresh)
		assert.Equal(t, float64(1), metricValue(t, tp.reg, "xlb_l7_sticky_rejected_total", map[string]string{"pool": "checkout", "reason": "unknown_server"}))
	})
}
