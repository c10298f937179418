package fleet

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/topo"
)

// TestMinimalFleet builds the smallest fleet (router with FRR, etcd, one
// edge host, one L7 host, one app server per pool) from the real
// binaries, sends requests end to end through the VIP, and checks that
// Close leaves nothing behind.
func TestMinimalFleet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces and XDP need root; CI runs this as root")
	}
	if !topo.FRRAvailable() {
		t.Skip("FRR is not installed (make deps installs Debian's frr)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := Build(ctx, t.TempDir())
	require.NoError(t, err)

	var progress strings.Builder
	f, err := New(ctx, Options{Bin: bin, Progress: &progress})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			assert.NoError(t, f.Close())
		}
	})
	t.Log(progress.String())
	prefix, dir := f.Topo.Prefix(), f.Dir()
	require.Len(t, f.Edges, 1)
	require.Len(t, f.L7s, 1)
	require.Len(t, f.Apps, 2)

	hops, err := f.NextHops()
	require.NoError(t, err)
	assert.Equal(t, f.Edges[0].Host.Addr4, hops[0], "the router learnt the VIP from the edge host over BGP")

	// Client → router → XDP on lb1 → l7-1 (decap, proxy) → the pool's app
	// server, and back directly from l7-1.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: f.Client.DialContext, DisableKeepAlives: true}}
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+f.VIP.String()+path, strings.NewReader(url.Values{"user": {"u1"}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	resp, body := get(http.MethodGet, "/browse")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "b1", resp.Header.Get("X-App"))
	assert.Equal(t, "l7-1", f.NameOf(resp.Header.Get("X-Via")))
	assert.Contains(t, body, "xff="+f.Client.Addr4.String(), "the app server sees the client's address")

	resp, body = get(http.MethodPost, "/auth")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "c1", resp.Header.Get("X-App"))
	var sticky bool
	for _, ck := range resp.Cookies() {
		sticky = sticky || ck.Name == StickyCookie
	}
	assert.True(t, sticky, "the checkout pool pins the session with its cookie")

	procs := f.Procs()
	require.NotEmpty(t, procs)
	closed = true
	require.NoError(t, f.Close())

	for _, p := range procs {
		done, _ := p.Exited()
		assert.True(t, done, "%s stopped", p.Name)
		assert.ErrorIs(t, syscall.Kill(p.Pid(), 0), syscall.ESRCH, "%s (pid %d) is gone", p.Name, p.Pid())
	}
	for _, pattern := range []string{"/run/netns/" + prefix + "-*", "/sys/fs/bpf/" + prefix + "-*", "/var/run/frr/" + prefix + "-*"} {
		left, err := filepath.Glob(pattern)
		require.NoError(t, err)
		assert.Empty(t, left, pattern)
	}
	_, err = os.Stat(dir)
	assert.ErrorIs(t, err, os.ErrNotExist, "work directory removed")
}
