package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// TestVethBalancerGUEAndMixedFamilies runs real TCP from a client through
// the balancer's GUE encapsulation, and through IP-in-IP whose outer family
// is the L7 host's rather than the client's, into the real decapsulator on
// two L7 hosts (native XDP everywhere; the bed of TestVethDSR, with the
// decapsulators taking GUE on guePort). Every pair is covered: GUE 4-in-4,
// 6-in-6, 4-in-6 and 6-in-4, IP-in-IP 4-in-6 and 6-in-4. Each connection is
// answered by the host the balancer chose, which sees the client's own
// address, and that host's decapsulator counts the tunnel it took.
func TestVethBalancerGUEAndMixedFamilies(t *testing.T) {
	const guePort = 6080
	tp := topo.NewT(t, topo.Options{})
	vips := map[string]netip.Addr{
		"gue 4-in-4":  netip.MustParseAddr("198.51.100.10"),
		"gue 6-in-6":  netip.MustParseAddr("2001:db8:100::10"),
		"gue 4-in-6":  netip.MustParseAddr("198.51.100.11"),
		"gue 6-in-4":  netip.MustParseAddr("2001:db8:100::11"),
		"ipip 4-in-6": netip.MustParseAddr("198.51.100.12"),
		"ipip 6-in-4": netip.MustParseAddr("2001:db8:100::12"),
	}
	var all []netip.Addr
	for _, v := range vips {
		all = append(all, v)
	}
	client, err := tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	lb, err := tp.AddHost(topo.HostConfig{Name: "lb", PeerXDPPass: true})
	require.NoError(t, err)
	gw, err := tp.AddHost(topo.HostConfig{Name: "gw", MTU: topo.BridgeMTU, RPFilterOff: true, Router: true})
	require.NoError(t, err)
	for _, v := range all {
		via := lb.Addr4
		if v.Is6() {
			via = lb.Addr6
		}
		require.NoError(t, client.AddRoute(netip.PrefixFrom(v, v.BitLen()), via))
	}
	dp, err := l4.Open(l4.Config{
		TableSize: tableSize, MaxBackends: 16, MaxVIPs: 8, ConnEntries: 4096, GUEPort: guePort,
		OuterSrcV4: lb.Addr4, OuterSrcV6: lb.Addr6, SrcMAC: lb.MAC, NextHopMAC: gw.MAC,
	}, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, dp.Close()) })
	require.NoError(t, lb.Do(func() error { return dp.Attach(topo.HostIfname, xdplink.ModeNative) }))

	var hosts []*l7Host
	for i := 1; i <= 2; i++ {
		h, err := tp.AddHost(topo.HostConfig{Name: fmt.Sprintf("l7-%d", i), MTU: topo.BridgeMTU, VIPs: all, RPFilterOff: true})
		require.NoError(t, err)
		d, err := decap.Open(decap.Config{GUEPort: guePort})
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
		for _, v := range all {
			ln, err := h.Listen("tcp", netip.AddrPortFrom(v, 80).String())
			require.NoError(t, err)
			serve(t, ln, h.Name)
		}
	}
	b := &bed{tp: tp, client: client, lb: lb, gw: gw, l7: hosts, dp: dp}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	for i, c := range []struct {
		name    string
		mode    l4.Mode
		outer6  bool   // the L7 hosts' family the balancer sends to
		counter string // the decapsulator's counter for it
	}{
		{"gue 4-in-4", l4.ModeGUE, false, "gue_v4"},
		{"gue 6-in-6", l4.ModeGUE, true, "gue_v6"},
		{"gue 4-in-6", l4.ModeGUE, true, "gue_v4"},
		{"gue 6-in-4", l4.ModeGUE, false, "gue_v6"},
		{"ipip 4-in-6", l4.ModeIPIP, true, "decap_v4"},
		{"ipip 6-in-4", l4.ModeIPIP, false, "decap_v6"},
	} {
		vip := vips[c.name]
		id := func(l *l7Host) l4.BackendID {
			if c.outer6 {
				return l.id6
			}
			return l.id4
		}
		key := l4.VIP{Addr: vip, Port: 80, Proto: l4.TCP}
		require.NoError(t, dp.UpsertVIP(key, l4.WithMode(c.mode)))
		table := make([]l4.BackendID, tableSize)
		for j := range table {
			table[j] = id(hosts[j%2])
		}
		require.NoError(t, dp.InstallTable(key, table))

		t.Run(c.name+": both L7 hosts answer, with the client's address", func(t *testing.T) {
			port := uint16(20000 + 1000*i)
			for _, l := range hosts {
				before, err := l.decap.Stats()
				require.NoError(t, err)
				port = b.portFor(t, ctx, vip, id(l), port) + 1
				conn := b.dial(t, ctx, vip, port-1)
				for k := range 3 {
					host, peer := conn.ask(t, fmt.Sprintf("hello-%d", k))
					assert.Equal(t, l.host.Name, host, "answered by the chosen host")
					assert.Equal(t, netip.AddrPortFrom(b.clientAddr(vip), port-1).String(), peer)
				}
				after, err := l.decap.Stats()
				require.NoError(t, err)
				got := after.Reasons()[c.counter].Packets - before.Reasons()[c.counter].Packets
				// The handshake's ACK and three requests at least.
				assert.GreaterOrEqual(t, got, uint64(4), "%s took the tunnel: %s", l.host.Name, c.counter)
				assert.Zero(t, after.Reasons()["malformed"].Packets, "nothing malformed at %s", l.host.Name)
			}
		})
	}
}
