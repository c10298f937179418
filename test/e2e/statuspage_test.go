package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/statuspage/browsertest"
)

// TestStatusPageEdgeInBrowser runs the real `xlb daemon` in the namespace
// topology and opens its status page (on the metrics listener inside the
// LB namespace, reached through a loopback forwarder) in a headless
// Chromium: the VIP and its three backends are green and carry traffic; a
// drain through the API turns one orange and a failing health check turns
// another red, each without a reload; a screenshot is left for a person.
func TestStatusPageEdgeInBrowser(t *testing.T) {
	b := newCtlBed(t)
	b.startDaemon(t)
	for _, l := range b.l7 {
		b.waitState(t, l.host.Addr4, api.StateActive)
	}
	// Steady traffic through the VIP: about 50 new connections a second,
	// at most 3000.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent, failed int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for ; sent < 3000; sent++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := b.get(rctx); err != nil {
				failed++
			}
			rcancel()
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		t.Logf("traffic: %d requests, %d failed (a drained host's and a down host's flows move)", sent, failed)
	})

	page := browsertest.Forward(t, b.lb.Dialer(), "127.0.0.1:9724")
	br := browsertest.Open(t, "http://"+page+"/")
	vip := "vip:" + b.key.String()
	row := func(i int) string { return fmt.Sprintf("backend:%s/%s", b.key, b.l7[i].host.Addr4) }
	for i := range b.l7 {
		require.Eventually(t, func() bool { return br.RowState(row(i)) == "up" }, 30*time.Second, 100*time.Millisecond,
			"backend %d is green; row: %q", i, br.RowText(row(i)))
	}
	assert.Equal(t, "up", br.RowState(vip))
	assert.Equal(t, "up", br.RowState("iface:eth0"), "native XDP on eth0: %q", br.RowText("iface:eth0"))
	assert.Contains(t, br.RowText("iface:eth0"), "native")
	assert.Contains(t, br.Text("#summary"), "Edge: 1 VIPs, 3 backends")
	assert.Equal(t, "xlb daemon", br.Text("#title"))
	require.Eventually(t, func() bool {
		r := br.RowText(vip)
		return cell(r, 3) != "0 /s" && cell(r, 4) != "0 b/s" && cell(r, 5) != "0 /s"
	}, 30*time.Second, 100*time.Millisecond, "the VIP shows its packet, bit and new-flow rates: %q", br.RowText(vip))
	br.Mark()
	before := br.Updates()

	drained := b.l7[0].host.Addr4
	require.NoError(t, b.api.SetBackendState(context.Background(), b.key, drained, true))
	require.Eventually(t, func() bool { return br.RowState(row(0)) == "drain" }, 30*time.Second, 100*time.Millisecond,
		"the drained backend turns orange; row: %q", br.RowText(row(0)))
	assert.Contains(t, br.RowText(row(0)), "draining")

	b.l7[2].ready.Store(false) // its /ready answers 503: health checks fail
	require.Eventually(t, func() bool { return br.RowState(row(2)) == "down" }, 30*time.Second, 100*time.Millisecond,
		"the backend failing its checks turns red; row: %q", br.RowText(row(2)))
	assert.Contains(t, br.RowText(row(2)), "503", "the last check's error is shown")
	assert.Equal(t, "drain", br.RowState(vip), "a VIP with backends out is orange")
	assert.Contains(t, br.Text("#summary"), "1 active · 1 draining · 1 down")
	assert.Greater(t, br.Updates(), before, "the page kept polling")
	assert.True(t, br.Marked(), "the page was not reloaded")
	assert.Equal(t, "100.0 %", cell(br.RowText(row(1)), 6), "the one active backend holds the whole table")

	br.Screenshot("status-edge")
}

// cell is the i-th cell of a row as RowText gives it.
func cell(row string, i int) string {
	cells := strings.Split(row, " | ")
	if i >= len(cells) {
		return ""
	}
	return cells[i]
}
