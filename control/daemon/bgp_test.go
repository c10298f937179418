package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/bgp/bgptest"
)

func bgpSection(r *bgptest.Router, drain time.Duration) string {
	return fmt.Sprintf(`bgp:
  asn: 65001
  shutdown_drain: %s
  peers:
    - address: 127.0.0.1
      port: %d
      asn: %d
      hold_time: 3s
      keepalive: 1s
`, drain, r.Port, bgptest.ASN)
}

// The daemon announces the VIP only while a backend can take its flows,
// withdraws it when none can and when the VIP is deleted, and on shutdown
// withdraws before it closes the session.
func TestDaemonAnnouncesWhatItCanServe(t *testing.T) {
	e := newEnv(t, 2)
	r := bgptest.New(t, 65001, false)
	backends := fmt.Sprintf("      - address: %s\n      - address: %s\n", e.hosts[0].addr, e.hosts[1].addr)
	e.writeConfig(t, backends, bgpSection(r, 300*time.Millisecond))
	vipPfx := netip.MustParsePrefix("10.200.0.10/32")
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	ctx := context.Background()

	d, stop := e.start(t)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 1 }, 30*time.Second, 20*time.Millisecond)
	var nh netip.Addr
	for _, a := range r.Routes(bgp.RF_IPv4_UC)[vipPfx][0].Attrs {
		if a, ok := a.(*bgp.PathAttributeNextHop); ok {
			nh = a.Value
		}
	}
	assert.Equal(t, netip.MustParseAddr("10.200.0.1"), nh, "next hop = outer_source.ipv4")
	st, err := d.Status(ctx)
	require.NoError(t, err)
	require.NotNil(t, st.BGP)
	assert.Equal(t, []netip.Prefix{vipPfx}, st.BGP.Announced)
	require.Len(t, st.BGP.Peers, 1)
	assert.True(t, st.BGP.Peers[0].Up)
	assert.Empty(t, st.BGP.Held)

	// Drained by the operator and the other one down by health: nothing
	// left to serve with, so the route goes.
	require.NoError(t, d.SetBackendState(api.WithForce(ctx), vip, e.hosts[0].addr, true))
	e.hosts[1].ready.Store(false)
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 0 }, 30*time.Second, 20*time.Millisecond)
	st, err = d.Status(ctx)
	require.NoError(t, err)
	assert.Empty(t, st.BGP.Announced)
	assert.Equal(t, "no vip has a usable backend", st.BGP.Held)

	e.hosts[1].ready.Store(true)
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 1 }, 30*time.Second, 20*time.Millisecond)
	assert.NoError(t, testutil.GatherAndCompare(d.Registry(), strings.NewReader(`
# HELP xlb_bgp_announced_routes VIP prefixes this host announces to its BGP peers.
# TYPE xlb_bgp_announced_routes gauge
xlb_bgp_announced_routes 1
`), "xlb_bgp_announced_routes"))

	// xlb vip del withdraws.
	require.NoError(t, d.DeleteVIP(api.WithForce(ctx), vip))
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 0 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, d.AddVIP(api.WithForce(ctx), api.VIPSpec{Key: vip, Backends: []api.BackendSpec{{Addr: e.hosts[1].addr}}}))
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 1 }, 30*time.Second, 20*time.Millisecond)

	// A changed bgp section needs a restart; the running speaker stays.
	e.writeConfig(t, backends, bgpSection(r, time.Second))
	err = d.Reload(ctx)
	require.ErrorIs(t, err, api.ErrInvalid)
	assert.Contains(t, err.Error(), "bgp changed, which only a start of the daemon applies")

	// Shutdown: the route is gone while the session is still up (the
	// withdrawal, not the session's end, took it away).
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(false) }()
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vipPfx]) == 0 }, 30*time.Second, 5*time.Millisecond)
	assert.True(t, r.Established(), "the route went only with the session: no drain")
	require.NoError(t, <-done)
	require.Eventually(t, func() bool { return !r.Established() }, 30*time.Second, 20*time.Millisecond)
	stop()
	stopped = true
}
