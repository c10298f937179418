package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	gobgpapi "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/bgp/bgptest"
)

const (
	speakerASN = 65001
	waitFor    = 10 * time.Second
	tick       = 20 * time.Millisecond
)

func speakerConfig(r *bgptest.Router, restart time.Duration) Config {
	return Config{
		ASN: speakerASN, RouterID: netip.MustParseAddr("192.0.2.10"),
		NextHopV4: netip.MustParseAddr("192.0.2.10"), NextHopV6: netip.MustParseAddr("2001:db8::10"),
		RestartTime: restart,
		Peers: []Peer{{
			Addr: netip.MustParseAddr("127.0.0.1"), Port: r.Port, ASN: bgptest.ASN,
			HoldTime: 3 * time.Second, Keepalive: time.Second, Families: []string{FamilyIPv4, FamilyIPv6},
		}},
		Attrs: map[netip.Addr]Attrs{netip.MustParseAddr("203.0.113.1"): {Communities: []uint32{65001<<16 | 100}}},
	}
}

func startSpeaker(t *testing.T, cfg Config, restarting bool) *Speaker {
	t.Helper()
	s, err := Start(context.Background(), nil, cfg, restarting)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Stop(false) })
	return s
}

func peerUp(s *Speaker) bool {
	st := s.Status()
	return len(st.Peers) == 1 && st.Peers[0].Up
}

func TestAnnounceWithdrawAndImportReject(t *testing.T) {
	r := bgptest.New(t, speakerASN, false)
	s := startSpeaker(t, speakerConfig(r, 0), false)
	require.Eventually(t, func() bool { return peerUp(s) }, waitFor, tick, "session never came up")

	v4 := netip.MustParsePrefix("203.0.113.1/32")
	v6 := netip.MustParsePrefix("2001:db8:f::1/128")
	require.NoError(t, s.Announce([]netip.Prefix{v4, v6}, ""))
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[v4]) == 1 }, waitFor, tick)
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv6_UC)[v6]) == 1 }, waitFor, tick)

	p4 := r.Routes(bgp.RF_IPv4_UC)[v4][0]
	var nh netip.Addr
	var comms []uint32
	var asPath string
	for _, a := range p4.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			nh = a.Value
		case *bgp.PathAttributeCommunities:
			comms = a.Value
		case *bgp.PathAttributeAsPath:
			asPath = a.String()
		}
	}
	assert.Equal(t, netip.MustParseAddr("192.0.2.10"), nh, "next hop is the host's own address")
	assert.Equal(t, []uint32{65001<<16 | 100}, comms, "the VIP's configured community")
	assert.Equal(t, "{AsPath: 65001}", asPath, "eBGP: the speaker's AS alone")
	var nh6 netip.Addr
	for _, a := range r.Routes(bgp.RF_IPv6_UC)[v6][0].Attrs {
		if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
			nh6 = mp.Nexthop
		}
	}
	assert.Equal(t, netip.MustParseAddr("2001:db8::10"), nh6)
	assert.ElementsMatch(t, []netip.Prefix{v4, v6}, s.Status().Announced)

	// What the router offers never reaches the speaker's RIB: it is
	// received (adj-in) and rejected by the import policy.
	learned := netip.MustParsePrefix("198.51.100.0/24")
	r.Announce(learned)
	require.Eventually(t, func() bool {
		n := 0
		_ = s.srv.ListPath(apiutil.ListPathRequest{TableType: gobgpapi.TableType_TABLE_TYPE_ADJ_IN, Name: "127.0.0.1", Family: bgp.RF_IPv4_UC, EnableFiltered: true},
			func(bgp.NLRI, []*apiutil.Path) { n++ })
		return n == 1
	}, waitFor, tick, "the router's route never arrived")
	n := 0
	require.NoError(t, s.srv.ListPath(apiutil.ListPathRequest{TableType: gobgpapi.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(nlri bgp.NLRI, _ []*apiutil.Path) {
			if nlri.String() == learned.String() {
				n++
			}
		}))
	assert.Zero(t, n, "a learned route is in the speaker's RIB")

	// The whole set each time: v6 goes, v4 stays.
	require.NoError(t, s.Announce([]netip.Prefix{v4}, ""))
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv6_UC)) == 0 }, waitFor, tick)
	assert.Len(t, r.Routes(bgp.RF_IPv4_UC)[v4], 1)
	require.NoError(t, s.Announce(nil, "no vip has a usable backend"))
	require.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[v4]) == 0 }, waitFor, tick)
	st := s.Status()
	assert.Empty(t, st.Announced)
	assert.Equal(t, "no vip has a usable backend", st.Held)
	assert.Empty(t, st.LastError)
}

func TestFlapsCounted(t *testing.T) {
	r := bgptest.New(t, speakerASN, false)
	s := startSpeaker(t, speakerConfig(r, 0), false)
	require.Eventually(t, func() bool { return peerUp(s) }, waitFor, tick)
	// The router drops the session; the speaker reconnects after its
	// retry interval (one keepalive).
	require.NoError(t, r.Srv.ShutdownPeer(context.Background(), &gobgpapi.ShutdownPeerRequest{Address: "127.0.0.1"}))
	require.Eventually(t, func() bool { return !peerUp(s) }, waitFor, tick)
	st := s.Status()
	assert.Equal(t, uint64(1), st.Peers[0].Flaps)
	assert.NotEmpty(t, st.Peers[0].LastError)
	require.NoError(t, r.Srv.EnablePeer(context.Background(), &gobgpapi.EnablePeerRequest{Address: "127.0.0.1"}))
	require.Eventually(t, func() bool { return peerUp(s) }, waitFor, tick, "no reconnect")
	assert.Equal(t, uint64(1), s.Status().Peers[0].Flaps)
}

// A restart (Stop(true)) leaves the router holding the routes as stale
// until the next speaker, started as restarting, announces them again; a
// shutdown (Stop(false)) makes the router drop them at once.
func TestRestartKeepsRoutesShutdownDropsThem(t *testing.T) {
	r := bgptest.New(t, speakerASN, true)
	cfg := speakerConfig(r, 30*time.Second)
	vip := netip.MustParsePrefix("203.0.113.1/32")

	s1 := startSpeaker(t, cfg, false)
	require.Eventually(t, func() bool { return peerUp(s1) }, waitFor, tick)
	require.NoError(t, s1.Announce([]netip.Prefix{vip}, ""))
	// Counted, not listed: GoBGP marks kept paths stale without a lock
	// that its ListPath readers share, so the test reads the router's
	// paths only once the session is down (ListPeer orders the two).
	require.Eventually(t, func() bool { return r.Accepted() == 1 }, waitFor, tick)

	require.NoError(t, s1.Stop(true))
	require.Eventually(t, func() bool { return !r.Established() }, waitFor, tick)
	require.Eventually(t, func() bool {
		p := r.Routes(bgp.RF_IPv4_UC)[vip]
		return len(p) == 1 && p[0].Stale
	}, waitFor, tick, "the router did not keep the route as stale")

	s2 := startSpeaker(t, cfg, true)
	require.NoError(t, s2.Announce([]netip.Prefix{vip}, ""))
	require.Eventually(t, func() bool {
		p := r.Routes(bgp.RF_IPv4_UC)[vip]
		return peerUp(s2) && len(p) == 1 && !p[0].Stale
	}, waitFor, tick, "the restarted speaker did not refresh the route")

	require.NoError(t, s2.Announce(nil, ""))
	require.NoError(t, s2.Stop(false))
	assert.Eventually(t, func() bool { return len(r.Routes(bgp.RF_IPv4_UC)[vip]) == 0 }, waitFor, tick)
}

func TestMetrics(t *testing.T) {
	r := bgptest.New(t, speakerASN, false)
	s := startSpeaker(t, speakerConfig(r, 0), false)
	require.Eventually(t, func() bool { return peerUp(s) }, waitFor, tick)
	require.NoError(t, s.Announce([]netip.Prefix{netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("203.0.113.2/32")}, ""))
	want := `
# HELP xlb_bgp_announced_routes VIP prefixes this host announces to its BGP peers.
# TYPE xlb_bgp_announced_routes gauge
xlb_bgp_announced_routes 2
# HELP xlb_bgp_peer_flaps_total Times an established BGP session with a router went down.
# TYPE xlb_bgp_peer_flaps_total counter
xlb_bgp_peer_flaps_total{peer="127.0.0.1"} 0
# HELP xlb_bgp_peer_up 1 while the BGP session with a router is established.
# TYPE xlb_bgp_peer_up gauge
xlb_bgp_peer_up{peer="127.0.0.1"} 1
`
	assert.NoError(t, testutil.CollectAndCompare(s.Collector(), strings.NewReader(want)))
	probs, err := testutil.CollectAndLint(s.Collector())
	require.NoError(t, err)
	assert.Empty(t, probs)
}
