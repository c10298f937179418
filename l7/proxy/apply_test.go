package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/pool"
)

// parseShop expands {name} in text to the servers' addresses and parses it.
func parseShop(t *testing.T, text string, servers map[string]*appServer) *config.Config {
	t.Helper()
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse("test.yaml", []byte(text))
	require.NoError(t, err)
	return cfg
}

// withBrowse replaces browse's server list in shopConfig.
func withBrowse(servers string) string {
	return strings.Replace(shopConfig, `      - {name: b1, addr: "{b1}"}`, servers, 1)
}

// TestApplyUnderLoad swaps configs several times while keep-alive clients
// send requests: none fails, no client connection is closed, and a server
// added by a swap receives traffic.
func TestApplyUnderLoad(t *testing.T) {
	servers := shopServers(t, nil)
	servers["b2"] = newAppServer(t, "b2", nil)
	tp := startProxyConfig(t, parseShop(t, shopConfig, servers))

	configs := []string{
		withBrowse("      - {name: b1, addr: \"{b1}\"}\n      - {name: b2, addr: \"{b2}\"}"),
		withBrowse("      - {name: b1, addr: \"{b1}\", weight: 3}\n      - {name: b2, addr: \"{b2}\"}"),
		strings.Replace(withBrowse("      - {name: b2, addr: \"{b2}\"}\n      - {name: b1, addr: \"{b1}\"}"),
			"timeouts: {dial: 200ms, response: 300ms}", "timeouts: {dial: 250ms, response: 400ms}", 1),
		shopConfig,
		withBrowse("      - {name: b1, addr: \"{b1}\"}\n      - {name: b2, addr: \"{b2}\"}"),
	}
	stop := make(chan struct{})
	done := make(chan *loadResult, 1)
	const workers = 4
	go func() { done <- runLoad(t, workers, 100000, tp.url+"/browse/x", stop, status200) }()
	for i, text := range configs {
		before := servers["b1"].hits()
		require.Eventually(t, func() bool { return servers["b1"].hits() > before+20 }, 30*time.Second, time.Millisecond)
		_, err := tp.Apply(parseShop(t, text, servers))
		require.NoError(t, err, "apply %d", i)
	}
	b2 := servers["b2"].hits()
	require.Eventually(t, func() bool { return servers["b2"].hits() > b2+20 }, 30*time.Second, time.Millisecond)
	close(stop)
	res := <-done
	t.Logf("load across %d swaps: %s", len(configs), res)
	assert.Zero(t, res.failed.Load(), "%s", res)
	assert.Equal(t, int64(workers), res.dials.Load(), "client keep-alive connections must stay open across swaps")
	assert.Len(t, tp.director().Pools()[1].Backends, 2)
}

// TestApplyKeepsServerState: a server that keeps its name and address
// keeps its health and in-flight count and its upstream client; a server
// whose address changed starts afresh; a request in flight finishes on the
// old generation, even when its server is removed.
func TestApplyKeepsServerState(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	servers := shopServers(t, map[string]http.HandlerFunc{
		"a1": func(w http.ResponseWriter, _ *http.Request) {
			arrived <- struct{}{}
			<-release
			fmt.Fprint(w, "finished on a1")
		},
	})
	servers["a2"] = newAppServer(t, "a2", nil)
	servers["c3"] = newAppServer(t, "c3", nil) // a pool holds each address once
	tp := startProxyConfig(t, parseShop(t, shopConfig, servers))
	c := client(t)

	tp.director().SetStatus("checkout/c1", false)
	oldClient := tp.gen.Load().clients[tp.director().Pools()[0].ByName("c2").ID]

	inflight := make(chan string, 1)
	go func() {
		resp, err := client(t).Get(tp.url + "/auth/slow")
		if err != nil {
			inflight <- err.Error()
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		inflight <- fmt.Sprintf("%d %s", resp.StatusCode, b[:n])
	}()
	<-arrived

	next := strings.Replace(shopConfig, `{name: a1, addr: "{a1}"}`, `{name: a2, addr: "{a2}"}`, 1)
	next = strings.Replace(next, `{name: c2, addr: "{c2}"}`, `{name: c2, addr: "{c2}"}
      - {name: c3, addr: "{c3}"}`, 1)
	_, err := tp.Apply(parseShop(t, next, servers))
	require.NoError(t, err)

	checkout := tp.director().Pools()[0]
	assert.False(t, checkout.ByName("c1").Up(), "c1 must stay down across the swap")
	assert.Equal(t, []string{"c2", "c3"}, backendNames(checkout.Available(time.Now())))
	assert.Same(t, oldClient, tp.gen.Load().clients[checkout.ByName("c2").ID], "unchanged server keeps its upstream client")
	resp, body := do(t, c, "GET", tp.url+"/auth/x", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello from a2", body)

	close(release)
	assert.Equal(t, "200 finished on a1", <-inflight)
	assert.Zero(t, tp.director().Pools()[2].Backends[0].InFlight())
}

func backendNames(bs []*pool.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

// BenchmarkApply is one config swap of a 32-server pool: what a reload or
// one `xlb pool server add` costs the proxy.
func BenchmarkApply(b *testing.B) {
	var servers strings.Builder
	for i := range 32 {
		fmt.Fprintf(&servers, "      - {name: c%d, addr: \"127.0.0.1:%d\"}\n", i, 20000+i)
	}
	text := strings.Replace(shopConfig, "      - {name: c1, addr: \"{c1}\"}\n      - {name: c2, addr: \"{c2}\"}\n", servers.String(), 1)
	for _, n := range []string{"b1", "a1"} {
		text = strings.ReplaceAll(text, "{"+n+"}", "127.0.0.1:9")
	}
	cfg, err := config.Parse("bench.yaml", []byte(text))
	require.NoError(b, err)
	dir, err := director.New(cfg)
	require.NoError(b, err)
	p, err := New(cfg, dir, Options{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Apply(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyRotatesStickyKeys: a reload that prepends a key signs new
// cookies with it and still honours cookies of the old one; dropping the
// old key then makes its cookies count as absent.
func TestApplyRotatesStickyKeys(t *testing.T) {
	servers := shopServers(t, nil)
	tp := startProxyConfig(t, parseShop(t, shopConfig, servers))
	c := client(t)
	resp, _ := do(t, c, "GET", tp.url+"/checkout/a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	oldCookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	require.NotEmpty(t, oldCookie)
	stats := func() (hits, issued uint64) {
		s := tp.director().StickyStats(0)
		return s.Hits.Load(), s.Issued.Load()
	}

	const oldKey = `    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}`
	const newKey = `    - {id: 2, secret: "bmV3LWtleS1mb3ItdGhlLXN0aWNreS1yaW5nLTAwMDE="}`
	require.Contains(t, shopConfig, oldKey)
	_, err := tp.Apply(parseShop(t, strings.Replace(shopConfig, oldKey, newKey+"\n"+oldKey, 1), servers))
	require.NoError(t, err)
	h0, i0 := stats()
	resp, _ = do(t, c, "GET", tp.url+"/checkout/b", nil, map[string]string{"Cookie": oldCookie})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h1, i1 := stats()
	assert.Equal(t, h0+1, h1, "a cookie of the old key is still honoured")
	assert.Equal(t, i0, i1)
	resp, _ = do(t, c, "GET", tp.url+"/checkout/c", nil, nil)
	newCookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	require.NotEmpty(t, newCookie)

	_, err = tp.Apply(parseShop(t, strings.Replace(shopConfig, oldKey, newKey, 1), servers))
	require.NoError(t, err)
	_, i2 := stats()
	resp, _ = do(t, c, "GET", tp.url+"/checkout/d", nil, map[string]string{"Cookie": oldCookie})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, i3 := stats()
	assert.Equal(t, i2+1, i3, "the retired key's cookie is treated as absent: a new pin")
	assert.NotEmpty(t, resp.Header.Get("Set-Cookie"))
	h3, _ := stats()
	resp, _ = do(t, c, "GET", tp.url+"/checkout/e", nil, map[string]string{"Cookie": newCookie})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h4, _ := stats()
	assert.Equal(t, h3+1, h4, "the new key's cookie is honoured")
}
