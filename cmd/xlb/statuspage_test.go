package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/statuspage/browsertest"
)

const statusPageConfig = `listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 100ms, timeout: 2s}
routes:
  - {name: api, match: {path_prefix: /api}, pool: app}
  - {name: static, match: {path_prefix: /}, pool: assets}
pools:
  - name: app
    servers:
      - {name: app-1, addr: %q}
      - {name: app-2, addr: %q}
      - {name: app-3, addr: %q}
    health:
      active: {path: /healthz, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
  - name: assets
    servers:
      - {name: assets-1, addr: %q}
`

// TestStatusPageProxyInBrowser runs a real `xlb proxy` in front of real app
// servers on loopback and opens its status page in a headless Chromium:
// the routes, pools and servers are there, green; a drain through the
// admin socket turns a server orange and stopping an app server turns it
// red, each within a few seconds and without a reload; the filter and
// sorting work; a screenshot is left for a person to look at; when the
// proxy dies the page says its data is stale.
func TestStatusPageProxyInBrowser(t *testing.T) {
	var hits [4]atomic.Int64
	var addrs []any
	var app3 *httptest.Server
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits[i].Add(1)
			fmt.Fprintf(w, "server %d", i)
		}))
		t.Cleanup(srv.Close)
		if i == 2 {
			app3 = srv
		}
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	dir := t.TempDir()
	listen, adminAddr, sock := freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	cfgPath := filepath.Join(dir, "proxy.yaml")
	args := append([]any{listen, adminAddr, sock}, addrs...)
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(statusPageConfig, args...)), 0o600))
	pp := startProxyProcess(t, cfgPath)
	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool { return statusOf(c, "http://"+adminAddr+"/ready") == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"proxy never became ready: %s", pp.stderr.String())

	// Steady traffic so the rates have something to show: about 100
	// requests a second, at most 6000.
	stop := make(chan struct{})
	done := make(chan int64)
	go func() {
		var sent int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ; sent < 6000; sent++ {
			select {
			case <-stop:
				done <- sent
				return
			case <-tick.C:
			}
			statusOf(c, "http://"+listen+"/api/items")
		}
		done <- sent
	}()
	t.Cleanup(func() {
		close(stop)
		t.Logf("load: %d requests sent", <-done)
	})

	b := browsertest.Open(t, "http://"+adminAddr+"/")
	for _, s := range []string{"app-1", "app-2", "app-3"} {
		require.Eventually(t, func() bool { return b.RowState("server:app/"+s) == "up" }, 30*time.Second, 100*time.Millisecond,
			"server %s is green on the page; row: %q", s, b.RowText("server:app/"+s))
	}
	assert.Equal(t, "up", b.RowState("server:assets/assets-1"))
	assert.Equal(t, "up", b.RowState("pool:app"))
	assert.Equal(t, "up", b.RowState("route:api"))
	assert.Contains(t, b.RowText("route:static"), "assets")
	assert.Contains(t, b.Text("#summary"), "Proxy: 2 pools, 4 servers")
	assert.Contains(t, b.Text("#summary"), "4 up")
	assert.Equal(t, "xlb proxy", b.Text("#title"))
	require.Eventually(t, func() bool { return !strings.HasPrefix(b.RowText("route:api"), "api | app | 0 ") }, 30*time.Second, 100*time.Millisecond,
		"the api route shows its request rate: %q", b.RowText("route:api"))

	// From here on the page must change by itself: a marker set in the
	// loaded document would be gone after a reload.
	b.Mark()
	before := b.Updates()

	out, err := exec.Command(xlbBinary(t), "pool", "server", "drain", "app", "app-2", "--proxy", sock).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Eventually(t, func() bool { return b.RowState("server:app/app-2") == "drain" }, 30*time.Second, 100*time.Millisecond,
		"the drained server turns orange; row: %q", b.RowText("server:app/app-2"))
	assert.Contains(t, b.RowText("server:app/app-2"), "draining")

	app3.Close()
	require.Eventually(t, func() bool { return b.RowState("server:app/app-3") == "down" }, 30*time.Second, 100*time.Millisecond,
		"the stopped app server turns red; row: %q", b.RowText("server:app/app-3"))
	assert.Equal(t, "drain", b.RowState("pool:app"), "a pool with servers out is orange")
	assert.Contains(t, b.Text("#summary"), "2 up · 1 draining · 1 down")
	assert.Greater(t, b.Updates(), before, "the page kept polling")
	assert.True(t, b.Marked(), "the page was not reloaded")

	b.Filter("down")
	assert.Equal(t, 1, b.VisibleRows("servers"), "the filter keeps only the down server")
	assert.Equal(t, "down", b.RowState("server:app/app-3"))
	b.Filter("")
	assert.Equal(t, 4, b.VisibleRows("servers"))
	keys := b.SortBy("servers", "name")
	assert.Equal(t, []string{"server:app/app-1", "server:app/app-2", "server:app/app-3", "server:assets/assets-1"}, keys)
	keys = b.SortBy("servers", "name")
	assert.Equal(t, "server:assets/assets-1", keys[0], "a second click sorts descending")

	b.Screenshot("status-proxy")

	// A proxy that is gone is said so on the page, which keeps its last data.
	require.NoError(t, pp.cmd.Process.Kill())
	require.Eventually(t, func() bool { return strings.Contains(b.Text("#banner"), "Cannot read /api/status") }, 30*time.Second, 100*time.Millisecond,
		"the banner says the page is stale: %q", b.Text("#banner"))
	assert.Equal(t, "down", b.RowState("server:app/app-3"), "the last data stays on the page")
}
