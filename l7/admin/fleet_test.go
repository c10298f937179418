package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/etcdstore/etcdtest"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

// l7host is one `xlb proxy` in process: a real listener on loopback, its
// admin socket, and its manager following etcd.
type l7host struct {
	m      *Manager
	url    string
	client *Client
}

func startL7Host(t *testing.T, cfgText string) *l7host {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "proxy.sock")
	path := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(cfgText, "SOCKET", sock)), 0o600))
	m, err := Open(path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	d, err := director.New(m.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	p, err := proxy.New(m.Config(), d, proxy.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	m.Attach(p)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go m.Follow(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = p.Serve(ln) }()
	ss, err := Listen(sock, "", nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ss.Close() })
	go func() { _ = ss.Serve(ctx, m) }()
	return &l7host{m: m, url: "http://" + ln.Addr().String() + "/", client: NewClient(sock, 5*time.Second)}
}

// app is an app server that answers with its name.
func app(t *testing.T, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// get sends one request (with cookie, if any) and returns the app that
// answered and the sticky cookie set.
func get(t *testing.T, url, cookie string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if cookie != "" {
		req.Header.Set("Cookie", "s="+cookie)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %s", body)
	set := ""
	for _, ck := range resp.Cookies() {
		if ck.Name == "s" {
			set = ck.Value
		}
	}
	return string(body), set
}

// answeredBy counts, over n new clients, which app answered.
func answeredBy(t *testing.T, h *l7host, n int) map[string]int {
	out := map[string]int{}
	for range n {
		a, _ := get(t, h.url, "")
		out[a]++
	}
	return out
}

// TestFleetPools: three proxies share their runtime pool membership
// through one etcd. A server added through one proxy's socket serves on
// every proxy, a sticky cookie issued by one is honoured by all, and with
// etcd gone traffic continues while changes are refused.
func TestFleetPools(t *testing.T) {
	cluster := etcdtest.Start(t)
	a1, a9 := app(t, "a1"), app(t, "a9")
	cfg := fmt.Sprintf(`listeners: [{addr: "127.0.0.1:0"}]
admin: {socket: SOCKET}
sticky:
  keys: [{id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}]
routes: [{name: checkout, pool: checkout}]
pools:
  - name: checkout
    sticky: {cookie: s}
    servers: [{name: c1, addr: "%s"}]
store:
  etcd:
    endpoints: [%s]
    prefix: /xlbtest/l7/
    dial_timeout: 1s
    request_timeout: 2s
`, a1, cluster.Endpoint(0))
	var hosts []*l7host
	for range 3 {
		hosts = append(hosts, startL7Host(t, cfg))
	}
	ctx := context.Background()
	for i, h := range hosts {
		assert.Equal(t, map[string]int{"a1": 10}, answeredBy(t, h, 10), "proxy %d before", i)
	}

	// Through proxy 0: add c9. Through proxy 1: drain c1. Every proxy
	// then sends every new client to c9.
	_, err := hosts[0].client.AddServers(ctx, "checkout", []NewServer{{Name: "c9", Addr: a9}})
	require.NoError(t, err)
	// Proxy 1 refuses to drain what it still takes for the pool's last
	// server: the drain waits until c9 has reached it through etcd.
	require.Eventually(t, func() bool {
		p, err := hosts[1].m.Pool("checkout", DefaultQuiet)
		return err == nil && p.Available == 2
	}, 30*time.Second, 10*time.Millisecond, "proxy 1 never saw c9 take clients")
	_, err = hosts[1].client.Drain(ctx, "checkout", "c1", false)
	require.NoError(t, err)
	for i, h := range hosts {
		require.Eventually(t, func() bool {
			p, err := h.m.Pool("checkout", DefaultQuiet)
			return err == nil && len(p.Servers) == 2 && p.Servers[0].State == "draining"
		}, 30*time.Second, 5*time.Millisecond, "proxy %d applies both changes", i)
		assert.Equal(t, map[string]int{"a9": 20}, answeredBy(t, h, 20), "proxy %d routes to the added server", i)
	}

	// A cookie from proxy 2 pins to c9; with c1 taking clients again
	// (undrained through proxy 2), every proxy keeps the client on c9.
	_, cookie := get(t, hosts[2].url, "")
	require.NotEmpty(t, cookie)
	_, err = hosts[2].client.Undrain(ctx, "checkout", "c1")
	require.NoError(t, err)
	for i, h := range hosts {
		require.Eventually(t, func() bool {
			p, err := h.m.Pool("checkout", DefaultQuiet)
			return err == nil && p.Servers[0].State != "draining"
		}, 30*time.Second, 5*time.Millisecond, "proxy %d undrains", i)
		got := map[string]int{}
		for range 20 {
			a, _ := get(t, h.url, cookie)
			got[a]++
		}
		assert.Equal(t, map[string]int{"a9": 20}, got, "proxy %d honours proxy 2's cookie", i)
	}

	// etcd gone: the pools serve on, changes are refused and say why.
	cluster.Stop()
	require.Eventually(t, func() bool { h, _ := hosts[1].m.StoreHealth(); return !h.Up }, 20*time.Second, 10*time.Millisecond)
	_, err = hosts[1].client.AddServers(ctx, "checkout", []NewServer{{Name: "c10", Addr: a1}})
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "desired-state store unreachable since ")
	for i, h := range hosts {
		a, _ := get(t, h.url, cookie)
		assert.Equal(t, "a9", a, "proxy %d serves with etcd down", i)
	}
	cluster.Restart()
	require.Eventually(t, func() bool {
		_, err := hosts[1].client.DeleteServer(ctx, "checkout", "c9", false)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "changes are taken once etcd is back")
	for i, h := range hosts {
		require.Eventually(t, func() bool {
			p, err := h.m.Pool("checkout", DefaultQuiet)
			return err == nil && len(p.Servers) == 1
		}, 30*time.Second, 5*time.Millisecond, "proxy %d converges", i)
		assert.Equal(t, map[string]int{"a1": 10}, answeredBy(t, h, 10), "proxy %d after", i)
	}
}
