package topo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFRRRouter(t *testing.T) {
	tp := NewT(t, Options{})
	r, err := tp.AddHost(HostConfig{Name: "router", Router: true})
	require.NoError(t, err)
	if !FRRAvailable() {
		t.Skip("FRR is not installed (make deps installs Debian's frr)")
	}
	f, err := r.StartFRR(FRRConfig{ASN: 65000, RouterID: r.Addr4, Listen: r.Prefix4, PeerASN: 65001,
		Keepalive: time.Second, HoldTime: 3 * time.Second})
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = f.Close()
		}
	}()
	assert.True(t, strings.HasPrefix(f.Pathspace, tp.Prefix()), "pathspace %q carries the topology's prefix", f.Pathspace)
	out, err := f.Vtysh("show running-config")
	require.NoError(t, err)
	for _, want := range []string{"router bgp 65000", "bgp listen range " + r.Prefix4.String() + " peer-group EDGE",
		"neighbor EDGE timers 1 3", "maximum-paths 16"} {
		assert.Contains(t, out, want)
	}
	n, err := f.Established()
	require.NoError(t, err)
	assert.Zero(t, n)
	hops, err := f.NextHops(netip.MustParsePrefix("198.51.100.1/32"))
	require.NoError(t, err)
	assert.Empty(t, hops)
	for _, k := range []string{"net.ipv4.fib_multipath_hash_policy", "net.ipv6.fib_multipath_hash_policy"} {
		v, err := r.Sysctl(k)
		require.NoError(t, err)
		assert.Equal(t, "1", v, k)
	}
	require.NoError(t, f.Close())
	closed = true
	_, err = os.Stat(filepath.Join(frrRunDir, f.Pathspace))
	assert.ErrorIs(t, err, os.ErrNotExist, "the pathspace's run directory is removed")
}
