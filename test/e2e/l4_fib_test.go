package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// TestVethFIBNextHops runs real TCP through a balancer that has no
// configured next-hop MAC: every frame's next hop comes from the LB
// namespace's FIB and neighbour table, which the balancer has the kernel
// resolve (managed neighbour entries) and keeps in its cache until the
// tables change. The IPv4 VIP forwards with IP-in-IP, the IPv6 VIP with L2
// DSR. The LB's link has MTU 1500 and the wrapped full-size segments do
// not fit it: the balancer answers them with ICMP "fragmentation needed",
// the client's path MTU discovery lowers its segments, and the upload
// completes.
//
//	client ─┐                         ┌─ l7-1 (VIPs on lo, decap on eth0)
//	lb ─────┼── br0 (own namespace) ──┤
//	        │                         └─ l7-2
func TestVethFIBNextHops(t *testing.T) {
	tp := topo.NewT(t, topo.Options{})
	vip4 := netip.MustParseAddr("198.51.100.10")
	vip6 := netip.MustParseAddr("2001:db8:100::10")
	client, err := tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	// Router: forwarding on, which bpf_fib_lookup's forwarding lookup needs.
	lb, err := tp.AddHost(topo.HostConfig{Name: "lb", PeerXDPPass: true, Router: true})
	require.NoError(t, err)
	require.NoError(t, client.AddRoute(netip.PrefixFrom(vip4, 32), lb.Addr4))
	require.NoError(t, client.AddRoute(netip.PrefixFrom(vip6, 128), lb.Addr6))

	dp, err := l4.Open(l4.Config{
		TableSize: tableSize, MaxBackends: 16, MaxVIPs: 8, ConnEntries: 4096,
		OuterSrcV4: lb.Addr4, OuterSrcV6: lb.Addr6,
	}, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, dp.Close()) })
	require.True(t, dp.Config().FIBMode())
	require.NoError(t, lb.Do(func() error { return dp.Attach(topo.HostIfname, xdplink.ModeNative) }))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	watching := make(chan error, 1)
	go func() { watching <- lb.Do(func() error { return dp.WatchNextHops(ctx) }) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-watching) })

	var hosts []*l7Host
	for i := 1; i <= 2; i++ {
		h, err := tp.AddHost(topo.HostConfig{Name: fmt.Sprintf("l7-%d", i), MTU: topo.BridgeMTU,
			VIPs: []netip.Addr{vip4, vip6}, RPFilterOff: true})
		require.NoError(t, err)
		d, err := decap.Open(decap.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, d.Close()) })
		require.NoError(t, d.SetAddrs([]netip.Addr{h.Addr4, h.Addr6}))
		require.NoError(t, h.Do(func() error { return d.Attach(topo.HostIfname, xdplink.ModeNative) }))
		l := &l7Host{host: h, decap: d}
		l.id4, err = dp.UpsertBackend(h.Addr4)
		require.NoError(t, err)
		l.id6, err = dp.UpsertBackend(h.Addr6)
		require.NoError(t, err)
		hosts = append(hosts, l)
		for _, vip := range []netip.Addr{vip4, vip6} {
			ln, err := h.Listen("tcp", netip.AddrPortFrom(vip, 80).String())
			require.NoError(t, err)
			serve(t, ln, h.Name)
		}
	}
	// What the daemon does for every backend: have the kernel resolve
	// the next hop and keep it resolved.
	for _, l := range hosts {
		for _, a := range []netip.Addr{l.host.Addr4, l.host.Addr6} {
			require.NoError(t, lb.Do(func() error { _, err := l4.EnsureNextHop(a); return err }))
			require.Eventually(t, func() bool {
				var nh l4.NextHop
				require.NoError(t, lb.Do(func() (err error) { nh, err = l4.LookupNextHop(a); return err }))
				return nh.Resolved() && nh.MAC.String() == l.host.MAC.String()
			}, 30*time.Second, 20*time.Millisecond, "next hop of %s resolved to its MAC", a)
		}
	}
	for _, v := range []struct {
		vip  netip.Addr
		mode l4.Mode
		id   func(*l7Host) l4.BackendID
	}{
		{vip4, l4.ModeIPIP, func(l *l7Host) l4.BackendID { return l.id4 }},
		{vip6, l4.ModeL2DSR, func(l *l7Host) l4.BackendID { return l.id6 }},
	} {
		key := l4.VIP{Addr: v.vip, Port: 80, Proto: l4.TCP}
		require.NoError(t, dp.UpsertVIP(key, l4.WithMode(v.mode)))
		table := make([]l4.BackendID, tableSize)
		for i := range table {
			table[i] = v.id(hosts[i%2])
		}
		require.NoError(t, dp.InstallTable(key, table))
	}
	b := &bed{tp: tp, client: client, lb: lb, l7: hosts, dp: dp, vip4: vip4, vip6: vip6}

	for _, fam := range []struct {
		name      string
		vip       netip.Addr
		id        func(*l7Host) l4.BackendID
		portStart uint16
	}{
		{"ipv4 ip-in-ip", vip4, func(l *l7Host) l4.BackendID { return l.id4 }, 20000},
		{"ipv6 l2dsr", vip6, func(l *l7Host) l4.BackendID { return l.id6 }, 30000},
	} {
		t.Run(fam.name+": both L7 hosts answer, with the client's address", func(t *testing.T) {
			port := fam.portStart
			for _, l := range hosts {
				port = b.portFor(t, ctx, fam.vip, fam.id(l), port) + 1
				c := b.dial(t, ctx, fam.vip, port-1)
				for i := range 3 {
					host, peer := c.ask(t, fmt.Sprintf("hello-%d", i))
					assert.Equal(t, l.host.Name, host, "answered by the chosen host")
					assert.Equal(t, netip.AddrPortFrom(b.clientAddr(fam.vip), port-1).String(), peer)
				}
			}
		})
	}

	t.Run("a full-size upload through a tunnel that does not fit completes by path MTU discovery", func(t *testing.T) {
		before, err := dp.Stats()
		require.NoError(t, err)
		port := b.portFor(t, ctx, vip4, hosts[1].id4, 21000)
		c := b.dial(t, ctx, vip4, port)
		// 256 KiB up in full-size segments: 1500 bytes, 1520 wrapped,
		// above the LB link's 1500.
		host, _ := c.ask(t, strings.Repeat("y", 256<<10))
		assert.Equal(t, hosts[1].host.Name, host)
		after, err := dp.Stats()
		require.NoError(t, err)
		sent := after.Counters[l4.CounterICMPTooBig].Packets - before.Counters[l4.CounterICMPTooBig].Packets
		t.Logf("ICMP fragmentation-needed sent: %d", sent)
		assert.Positive(t, sent, "the client learnt the path MTU from the balancer")
	})

	t.Run("a next hop whose MAC changes mid-connection: the flow continues", func(t *testing.T) {
		l := hosts[0]
		port := b.portFor(t, ctx, vip4, l.id4, 22000)
		c := b.dial(t, ctx, vip4, port)
		host, _ := c.ask(t, "before")
		require.Equal(t, l.host.Name, host)
		// The host comes back with another MAC (a router failing over to
		// its standby) and announces it; the LB's neighbour table takes
		// the new MAC as a gratuitous ARP would make it, and the
		// balancer's next-hop cache follows from its watcher.
		newMAC := net.HardwareAddr{0x02, 0x5e, 0x00, 0x00, 0x00, 0x42}
		require.NoError(t, l.host.SetMAC(newMAC))
		require.NoError(t, lb.AddNeigh(l.host.Addr4, newMAC))
		for i := range 20 {
			host, _ := c.ask(t, fmt.Sprintf("after-%d", i))
			assert.Equal(t, l.host.Name, host, "the same connection, the same L7 host")
		}
		var nh l4.NextHop
		require.NoError(t, lb.Do(func() (err error) { nh, err = l4.LookupNextHop(l.host.Addr4); return err }))
		assert.Equal(t, newMAC.String(), nh.MAC.String())
	})

	t.Run("nothing was sent without a resolved next hop", func(t *testing.T) {
		s, err := dp.Stats()
		require.NoError(t, err)
		for _, c := range []l4.Counter{l4.CounterFIBNoRoute, l4.CounterFIBFwdDisabled, l4.CounterFIBOtherIface, l4.CounterFIBOther, l4.CounterL2DSRNotOnLink} {
			assert.Zero(t, s.Counters[c].Packets, "counter %s", c)
		}
	})
}
