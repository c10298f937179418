// Package bgptest runs a plain GoBGP server on loopback that plays the
// edge router in tests: it accepts one speaker's session and says what it
// learned.
package bgptest

import (
	"context"
	"net"
	"net/netip"
	"testing"

	gobgpapi "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/stretchr/testify/require"
)

// ASN is the router's AS number.
const ASN = 65000

// Router is the test router. It listens on 127.0.0.1:Port, passively, for
// a speaker of AS peerASN connecting from 127.0.0.1.
type Router struct {
	t    testing.TB
	Srv  *server.BgpServer
	Port uint16
}

// New starts a router; gracefulRestart makes it a graceful-restart helper.
// It stops when the test ends.
func New(t testing.TB, peerASN uint32, gracefulRestart bool) *Router {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, ln.Close())
	r := &Router{t: t, Srv: server.NewBgpServer(), Port: port}
	go r.Srv.Serve()
	ctx := context.Background()
	require.NoError(t, r.Srv.StartBgp(ctx, &gobgpapi.StartBgpRequest{Global: &gobgpapi.Global{
		Asn: ASN, RouterId: "192.0.2.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}))
	t.Cleanup(func() { r.Srv.Stop() })
	p := &gobgpapi.Peer{
		Conf:      &gobgpapi.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: peerASN},
		Transport: &gobgpapi.Transport{PassiveMode: true},
		Timers:    &gobgpapi.Timers{Config: &gobgpapi.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
		AfiSafis: []*gobgpapi.AfiSafi{
			{Config: &gobgpapi.AfiSafiConfig{Family: &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &gobgpapi.AfiSafiConfig{Family: &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP6, Safi: gobgpapi.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	if gracefulRestart {
		p.GracefulRestart = &gobgpapi.GracefulRestart{Enabled: true, RestartTime: 30}
		for _, as := range p.AfiSafis {
			as.MpGracefulRestart = &gobgpapi.MpGracefulRestart{Config: &gobgpapi.MpGracefulRestartConfig{Enabled: true}}
		}
	}
	require.NoError(t, r.Srv.AddPeer(ctx, &gobgpapi.AddPeerRequest{Peer: p}))
	return r
}

// Routes is what the router's RIB holds for fam: prefix -> its paths.
//
// GoBGP marks the paths of a graceful-restart peer stale without a lock
// that ListPath's readers share: around such a restart, wait for the
// session to be down (Established) before listing, and count with
// Accepted before it.
func (r *Router) Routes(fam bgp.Family) map[netip.Prefix][]*apiutil.Path {
	out := map[netip.Prefix][]*apiutil.Path{}
	err := r.Srv.ListPath(apiutil.ListPathRequest{TableType: gobgpapi.TableType_TABLE_TYPE_GLOBAL, Family: fam},
		func(n bgp.NLRI, paths []*apiutil.Path) {
			if pfx, ok := n.(*bgp.IPAddrPrefix); ok {
				out[pfx.Prefix] = paths
			}
		})
	require.NoError(r.t, err)
	return out
}

// Established says whether the session is up.
func (r *Router) Established() bool {
	up := false
	require.NoError(r.t, r.Srv.ListPeer(context.Background(), &gobgpapi.ListPeerRequest{}, func(p *gobgpapi.Peer) {
		up = up || p.GetState().GetSessionState() == gobgpapi.PeerState_SESSION_STATE_ESTABLISHED
	}))
	return up
}

// Accepted is how many IPv4 routes the router holds from the speaker.
func (r *Router) Accepted() uint64 {
	var n uint64
	require.NoError(r.t, r.Srv.ListPeer(context.Background(), &gobgpapi.ListPeerRequest{}, func(p *gobgpapi.Peer) {
		for _, as := range p.GetAfiSafis() {
			if as.GetState().GetFamily().GetAfi() == gobgpapi.Family_AFI_IP {
				n += as.GetState().GetAccepted()
			}
		}
	}))
	return n
}

// Announce has the router offer an IPv4 route to the speaker.
func (r *Router) Announce(p netip.Prefix) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	require.NoError(r.t, err)
	nh, err := bgp.NewPathAttributeNextHop(netip.MustParseAddr("127.0.0.1"))
	require.NoError(r.t, err)
	_, err = r.Srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{
		Family: bgp.RF_IPv4_UC, Nlri: nlri,
		Attrs: []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh},
	}}})
	require.NoError(r.t, err)
}
