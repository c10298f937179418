package l4

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/test/topo"
)

// xdpMd is struct xdp_md as BPF_PROG_TEST_RUN takes it: the frame's
// bounds and the interface it arrived on.
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// runProgFrom runs the program on CPU 0 as if in arrived on ifindex of the
// calling thread's network namespace, where bpf_fib_lookup then looks.
func runProgFrom(t testing.TB, prog *ebpf.Program, ifindex int, in []byte) (uint32, []byte) {
	t.Helper()
	defer onCPU(t, 0)()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256),
		Context: xdpMd{DataEnd: uint32(len(in)), IngressIfindex: uint32(ifindex)}}
	v, err := prog.Run(opts)
	require.NoError(t, err)
	return v, opts.DataOut
}

// TestFIBNextHop runs packets through the balancer without a configured
// next-hop MAC, inside a namespace whose routes and neighbour entries the
// test sets up, so that bpf_fib_lookup answers from them: each outcome
// (on-link neighbour, gateway, no neighbour yet, no route, unreachable
// route, route out of another interface, route MTU below the frame,
// forwarding off, a neighbour whose MAC changes) has its verdict, exact
// output bytes and counter.
func TestFIBNextHop(t *testing.T) {
	requireRoot(t)
	tp := topo.NewT(t, topo.Options{Subnet4: netip.MustParsePrefix("10.77.0.0/24"), Subnet6: netip.MustParsePrefix("fd77::/64")})
	lb, err := tp.AddHost(topo.HostConfig{Name: "lb", Router: true})
	require.NoError(t, err)
	// A real L7 host on the segment, which answers ARP.
	l7, err := tp.AddHost(topo.HostConfig{Name: "l7"})
	require.NoError(t, err)

	var (
		onLinkMAC  = net.HardwareAddr{0x02, 0xb0, 0, 0, 0, 0x01}
		gwMAC      = net.HardwareAddr{0x02, 0xb0, 0, 0, 0, 0xfe}
		movedMAC   = net.HardwareAddr{0x02, 0xb0, 0, 0, 0, 0x02}
		otherMAC   = net.HardwareAddr{0x02, 0xb0, 0, 0, 0, 0x03}
		onLink     = netip.MustParseAddr("10.77.0.200")
		noNeigh    = netip.MustParseAddr("10.77.0.201")
		gateway    = netip.MustParseAddr("10.77.0.254")
		viaGW      = netip.MustParseAddr("10.78.0.9")
		otherIface = netip.MustParseAddr("10.79.0.5")
		unreach    = netip.MustParseAddr("10.80.0.1")
		noRoute    = netip.MustParseAddr("10.90.0.1")
		smallMTU   = netip.MustParseAddr("10.81.0.7")
		onLink6    = netip.MustParseAddr("fd77::200")
	)
	require.NoError(t, lb.AddNeigh(onLink, onLinkMAC))
	require.NoError(t, lb.AddNeigh(gateway, gwMAC))
	require.NoError(t, lb.AddNeigh(smallMTU, onLinkMAC))
	require.NoError(t, lb.AddNeigh(onLink6, onLinkMAC))
	require.NoError(t, lb.AddRoute(netip.MustParsePrefix("10.78.0.0/24"), gateway))
	// A second interface of the edge host: a veth pair inside its
	// namespace (this kernel has no dummy driver).
	arm := tp.Prefix() + "a"
	require.NoError(t, lb.Do(func() error {
		// The forwarding path honours a route's MTU only when it is
		// locked (or with ip_forward_use_pmtu).
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: lb.Ifindex, Dst: prefixNet(t, "10.81.0.0/24"), MTU: 1200, MTULock: true}); err != nil {
			return err
		}
		if err := netlink.RouteAdd(&netlink.Route{Type: unix.RTN_UNREACHABLE, Dst: prefixNet(t, "10.80.0.0/24")}); err != nil {
			return err
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: arm}, PeerName: arm + "p"}); err != nil {
			return err
		}
		d, err := netlink.LinkByName(arm)
		if err != nil {
			return err
		}
		for _, name := range []string{arm, arm + "p"} {
			if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
				return err
			}
		}
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: d.Attrs().Index, Dst: prefixNet(t, "10.79.0.0/24")}); err != nil {
			return err
		}
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: d.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: otherIface.AsSlice(), HardwareAddr: otherMAC})
	}))

	d := openTest(t, func(c *Config) {
		c.NextHopMAC, c.SrcMAC = nil, nil
		c.MaxVIPs = 32
		// The cache holds answers until FlushNextHops, so that the rows
		// do not depend on how fast they run.
		c.NextHopTTL = time.Hour
		c.OuterSrcV4, c.OuterSrcV6 = lb.Addr4, lb.Addr6
	})
	require.True(t, d.Config().FIBMode())
	prog := d.Program()

	vipOf := map[netip.Addr]netip.Addr{}
	syn := func(backend netip.Addr, size int) pkt {
		src := "198.51.100.1:40001"
		if backend.Is6() {
			src = "[2001:db8:c::1]:40001"
		}
		p := pkt{src: netip.MustParseAddrPort(src), dst: netip.AddrPortFrom(vipOf[backend], 80), proto: TCP, syn: true}
		if size > 0 {
			p.payload = make([]byte, size)
		}
		return p
	}

	// One VIP per backend, its whole table naming that backend.
	for i, b := range []netip.Addr{onLink, noNeigh, viaGW, otherIface, unreach, noRoute, smallMTU, onLink6, l7.Addr4} {
		id := upsertBackends(t, d, b.String())[0]
		vip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
		if b.Is6() {
			vip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		}
		v := VIP{vip, 80, TCP}
		require.NoError(t, d.UpsertVIP(v))
		tbl := make([]BackendID, testM)
		for j := range tbl {
			tbl[j] = id
		}
		require.NoError(t, d.InstallTable(v, tbl))
		vipOf[b] = vip
		// The same address on port 8080 is an L2 DSR VIP.
		l2 := VIP{vip, 8080, TCP}
		require.NoError(t, d.UpsertVIP(l2, WithMode(ModeL2DSR)))
		require.NoError(t, d.InstallTable(l2, tbl))
	}
	l2syn := func(backend netip.Addr) pkt {
		p := syn(backend, 0)
		p.dst = netip.AddrPortFrom(p.dst.Addr(), 8080)
		return p
	}
	l2ack := func(backend netip.Addr) pkt {
		p := l2syn(backend)
		p.syn, p.ack, p.payload = false, true, []byte("GET / HTTP/1.1\r\n\r\n")
		return p
	}
	tests := []struct {
		name    string
		before  func(t *testing.T)
		p       pkt
		verdict uint32
		to      netip.Addr              // outer destination, for XDP_TX
		dst     net.HardwareAddr        // next hop's MAC, for XDP_TX
		l2      bool                    // L2 DSR: the frame unchanged but its MACs
		icmp    int                     // XDP_TX of an ICMP frag-needed giving this MTU
		src     func() net.HardwareAddr // source MAC when not the ingress interface's
		counter Counter                 // the reason counter the packet bumps
	}{
		{name: "on-link backend: its own neighbour entry", p: syn(onLink, 0), verdict: xdpTx, to: onLink, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "ipv6 on-link backend", p: syn(onLink6, 0), verdict: xdpTx, to: onLink6, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "backend behind a gateway: the gateway's MAC", p: syn(viaGW, 0), verdict: xdpTx, to: viaGW, dst: gwMAC, counter: CounterConnMissSYN},
		{name: "l2dsr: syn to an on-link host, only the macs change", p: l2syn(onLink), verdict: xdpTx, l2: true, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "l2dsr: the established flow hits the table and stays l2dsr", p: l2ack(onLink), verdict: xdpTx, l2: true, dst: onLinkMAC, counter: CounterConnHit},
		{name: "l2dsr: ipv6", p: l2syn(onLink6), verdict: xdpTx, l2: true, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "l2dsr: a host behind a router cannot take the frame: passed", p: l2syn(viaGW), verdict: xdpPass, counter: CounterL2DSRNotOnLink},
		{name: "no neighbour entry yet: passed to the kernel", p: syn(noNeigh, 0), verdict: xdpPass, counter: CounterFIBNoNeigh},
		{name: "no route: passed", p: syn(noRoute, 0), verdict: xdpPass, counter: CounterFIBNoRoute},
		{name: "unreachable route: passed", p: syn(unreach, 0), verdict: xdpPass, counter: CounterFIBNoRoute},
		{name: "route out of another interface: passed", p: syn(otherIface, 0), verdict: xdpPass, counter: CounterFIBOtherIface},
		{name: "route out of another interface the balancer is attached to: redirected there",
			before: func(t *testing.T) {
				require.NoError(t, lb.Do(func() error { return d.Attach(arm, AttachGeneric) }))
				t.Cleanup(func() { assert.NoError(t, lb.Do(func() error { return d.Detach(arm) })) })
			},
			p: syn(otherIface, 0), verdict: xdpRedirect, to: otherIface, dst: otherMAC, counter: CounterConnMissSYN,
			src: func() net.HardwareAddr {
				var mac net.HardwareAddr
				require.NoError(t, lb.Do(func() error {
					ifc, err := net.InterfaceByName(arm)
					if err == nil {
						mac = ifc.HardwareAddr
					}
					return err
				}))
				return mac
			}},
		{name: "and passed again once detached from it", p: syn(otherIface, 0), verdict: xdpPass, counter: CounterFIBOtherIface},
		{name: "frame within the route mtu", p: syn(smallMTU, 1200-20-20-20), verdict: xdpTx, to: smallMTU, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "frame above the route mtu once wrapped: dropped as too big", p: syn(smallMTU, 1200-20-20-20+1), verdict: xdpDrop, counter: CounterTooBig},
		{name: "the same with df: answered with frag-needed giving the route mtu minus the outer header",
			p: func() pkt { p := syn(smallMTU, 1200-20-20-20+1); p.df = true; return p }(), verdict: xdpTx, icmp: 1200 - 20, counter: CounterICMPTooBig},
		{name: "the neighbour's MAC changes: this CPU's cached answer holds until it expires or is flushed",
			before: func(t *testing.T) {
				// A packet caches the current answer (a Detach above
				// flushed the cache), then the neighbour changes.
				prime := syn(onLink, 0).build(t)
				require.NoError(t, lb.Do(func() error { runProgFrom(t, prog, lb.Ifindex, prime); return nil }))
				require.NoError(t, lb.AddNeigh(onLink, movedMAC))
			},
			p: syn(onLink, 0), verdict: xdpTx, to: onLink, dst: onLinkMAC, counter: CounterConnMissSYN},
		{name: "after FlushNextHops the next frame follows the new MAC",
			before: func(t *testing.T) { require.NoError(t, d.FlushNextHops()) },
			p:      syn(onLink, 0), verdict: xdpTx, to: onLink, dst: movedMAC, counter: CounterConnMissSYN},
		{name: "forwarding off on the ingress interface: passed",
			before: func(t *testing.T) {
				require.NoError(t, lb.SetSysctl("net.ipv4.conf."+lb.Ifname+".forwarding", "0"))
				require.NoError(t, d.FlushNextHops())
				t.Cleanup(func() { assert.NoError(t, lb.SetSysctl("net.ipv4.conf."+lb.Ifname+".forwarding", "1")) })
			},
			p: syn(onLink, 0), verdict: xdpPass, counter: CounterFIBFwdDisabled},
		{name: "a host nobody resolved yet: passed", p: syn(l7.Addr4, 0), verdict: xdpPass, counter: CounterFIBNoNeigh},
		{name: "the same host once a managed neighbour entry resolved it",
			before: func(t *testing.T) {
				require.NoError(t, lb.Do(func() error {
					nh, err := EnsureNextHop(l7.Addr4)
					assert.Equal(t, "none", nh.State)
					return err
				}))
				require.Eventually(t, func() bool {
					var nh NextHop
					require.NoError(t, lb.Do(func() (err error) { nh, err = LookupNextHop(l7.Addr4); return err }))
					return nh.Resolved() && nh.Managed
				}, 30*time.Second, 20*time.Millisecond, "the kernel resolves a managed neighbour entry by itself")
			},
			p: syn(l7.Addr4, 0), verdict: xdpTx, to: l7.Addr4, dst: l7.MAC, counter: CounterConnMissSYN},
	}
	checkLookupNextHop(t, lb, []struct {
		addr netip.Addr
		want NextHop
	}{
		{onLink, NextHop{Iface: lb.Ifname, MAC: onLinkMAC, State: "permanent"}},
		{viaGW, NextHop{Iface: lb.Ifname, Gateway: gateway, MAC: gwMAC, State: "permanent"}},
		{noNeigh, NextHop{Iface: lb.Ifname, State: "none"}},
		{noRoute, NextHop{State: "no route"}},
		{unreach, NextHop{State: "no route"}},
		{otherIface, NextHop{Iface: arm, MAC: otherMAC, State: "permanent"}},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			in := tt.p.build(t)
			want := in
			switch {
			case tt.icmp != 0:
				want = icmpTooBig(t, tt.p, in, tt.icmp)
			case tt.verdict == xdpTx && tt.l2:
				want = append([]byte(nil), in...)
				copy(want[0:6], tt.dst)
				copy(want[6:12], lb.MAC)
			case tt.verdict == xdpTx || tt.verdict == xdpRedirect:
				src := lb.Addr4
				if tt.to.Is6() {
					src = lb.Addr6
				}
				mac := lb.MAC
				if tt.src != nil {
					mac = tt.src()
				}
				want = encappedVia(t, tt.p, in, tt.to, src, mac, tt.dst)
			}
			before, err := d.Stats()
			require.NoError(t, err)
			var verdict uint32
			var out []byte
			require.NoError(t, lb.Do(func() error {
				verdict, out = runProgFrom(t, prog, lb.Ifindex, in)
				return nil
			}))
			require.Equal(t, verdictName(tt.verdict), verdictName(verdict))
			require.Equal(t, want, out, "output differs; got:\n%s\nwant:\n%s", hex.Dump(out), hex.Dump(want))
			after, err := d.Stats()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), after.Counters[tt.counter].Packets-before.Counters[tt.counter].Packets, "counter %s", tt.counter)
			for _, c := range []Counter{CounterFIBNoNeigh, CounterFIBNoRoute, CounterFIBFwdDisabled, CounterFIBOtherIface, CounterFIBOther, CounterL2DSRNotOnLink} {
				if c != tt.counter {
					assert.Equal(t, before.Counters[c], after.Counters[c], "counter %s", c)
				}
			}
		})
	}

	t.Run("WatchNextHops flushes the cache when a neighbour changes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		watching := make(chan error, 1)
		go func() { watching <- lb.Do(func() error { return d.WatchNextHops(ctx) }) }()
		t.Cleanup(func() { cancel(); assert.NoError(t, <-watching) })
		p := syn(onLink, 0)
		in := p.build(t)
		send := func() []byte {
			var out []byte
			require.NoError(t, lb.Do(func() error { _, out = runProgFrom(t, prog, lb.Ifindex, in); return nil }))
			return out
		}
		want := func(mac net.HardwareAddr) []byte { return encappedVia(t, p, in, onLink, lb.Addr4, lb.MAC, mac) }
		// The cache (NextHopTTL one hour) holds movedMAC, as the rows
		// left it; the watcher subscribes concurrently, so the change is
		// repeated until one is seen.
		require.Equal(t, want(movedMAC), send())
		mac := onLinkMAC
		require.Eventually(t, func() bool {
			require.NoError(t, lb.AddNeigh(onLink, mac))
			return slices.Equal(send(), want(mac))
		}, 30*time.Second, 20*time.Millisecond, "a neighbour change empties the cache")
		require.NoError(t, lb.AddNeigh(onLink, movedMAC))
		require.Eventually(t, func() bool { return slices.Equal(send(), want(movedMAC)) }, 30*time.Second, 10*time.Millisecond)
	})

	t.Run("without a cache every frame asks the FIB", func(t *testing.T) {
		dn := openTest(t, func(c *Config) {
			c.NextHopMAC, c.SrcMAC = nil, nil
			c.OuterSrcV4, c.OuterSrcV6 = lb.Addr4, lb.Addr6
			c.NextHopTTL = -1
		})
		id := upsertBackends(t, dn, onLink.String())[0]
		v := VIP{vipOf[onLink], 80, TCP}
		require.NoError(t, dn.UpsertVIP(v))
		tbl := make([]BackendID, testM)
		for j := range tbl {
			tbl[j] = id
		}
		require.NoError(t, dn.InstallTable(v, tbl))
		for _, mac := range []net.HardwareAddr{movedMAC, onLinkMAC, movedMAC} {
			require.NoError(t, lb.AddNeigh(onLink, mac))
			p := syn(onLink, 0)
			in := p.build(t)
			want := encappedVia(t, p, in, onLink, lb.Addr4, lb.MAC, mac)
			var out []byte
			require.NoError(t, lb.Do(func() error { _, out = runProgFrom(t, dn.Program(), lb.Ifindex, in); return nil }))
			require.Equal(t, want, out, "output differs; got:\n%s\nwant:\n%s", hex.Dump(out), hex.Dump(want))
		}
	})

	t.Run("l2dsr with a next-hop override still takes the host's mac from the neighbour table", func(t *testing.T) {
		ds := openTest(t, func(c *Config) { c.OuterSrcV4, c.OuterSrcV6 = lb.Addr4, lb.Addr6 })
		require.False(t, ds.Config().FIBMode())
		id := upsertBackends(t, ds, onLink.String())[0]
		v := VIP{vipOf[onLink], 8080, TCP}
		require.NoError(t, ds.UpsertVIP(v, WithMode(ModeL2DSR)))
		tbl := make([]BackendID, testM)
		for j := range tbl {
			tbl[j] = id
		}
		require.NoError(t, ds.InstallTable(v, tbl))
		in := l2syn(onLink).build(t)
		want := append([]byte(nil), in...)
		copy(want[0:6], movedMAC) // the neighbour entry as the rows above left it
		copy(want[6:12], lb.MAC)
		var verdict uint32
		var out []byte
		require.NoError(t, lb.Do(func() error {
			verdict, out = runProgFrom(t, ds.Program(), lb.Ifindex, in)
			return nil
		}))
		require.Equal(t, verdictName(xdpTx), verdictName(verdict))
		require.Equal(t, want, out, "output differs; got:\n%s\nwant:\n%s", hex.Dump(out), hex.Dump(want))
		mode, ok := ds.VIPMode(v)
		require.True(t, ok)
		assert.Equal(t, ModeL2DSR, mode)
		// Lookup (xlb flow) answers for l2dsr VIPs too, from any namespace.
		gotID, gotAddr, err := ds.Lookup(t.Context(), Flow{Src: netip.MustParseAddrPort("198.51.100.1:40001"), Dst: netip.AddrPortFrom(v.Addr, 8080), Proto: TCP})
		require.NoError(t, err)
		assert.Equal(t, id, gotID)
		assert.Equal(t, onLink, gotAddr)
	})
}

// TestFIBNextHop's namespace, read back the way `xlb status` shows it.
func checkLookupNextHop(t *testing.T, lb *topo.Host, tests []struct {
	addr netip.Addr
	want NextHop
}) {
	t.Helper()
	for _, tt := range tests {
		var nh NextHop
		require.NoError(t, lb.Do(func() (err error) { nh, err = LookupNextHop(tt.addr); return err }))
		tt.want.Backend = tt.addr
		assert.Equal(t, tt.want, nh, "next hop of %s", tt.addr)
	}
}

func prefixNet(t testing.TB, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	require.NoError(t, err)
	return n
}

// TestConfigNextHop: no next-hop MAC means next hops from the FIB; a zero
// MAC, or an override without the source MAC to send from, is refused
// rather than loaded as a black hole.
func TestConfigNextHop(t *testing.T) {
	zero := make(net.HardwareAddr, 6)
	tests := []struct {
		name    string
		cfg     Config
		fib     bool
		wantErr bool
	}{
		{name: "no mac: fib", cfg: Config{}, fib: true},
		{name: "override", cfg: Config{NextHopMAC: nextHopMAC, SrcMAC: lbMAC}},
		{name: "zero next hop", cfg: Config{NextHopMAC: zero, SrcMAC: lbMAC}, wantErr: true},
		{name: "override without source mac", cfg: Config{NextHopMAC: nextHopMAC}, wantErr: true},
		{name: "override with zero source mac", cfg: Config{NextHopMAC: nextHopMAC, SrcMAC: zero}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if tt.wantErr {
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.fib, c.FIBMode())
		})
	}
}
