package l4

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// icmpAbout builds an ICMP error from router to the VIP that quotes the
// VIP's packet to the client of flow (the L7 host answered from the VIP):
// IPv4 type 3 with code (4: fragmentation needed, MTU 1400), or ICMPv6 of
// type typ (1 unreachable, 2 packet too big, MTU 1400). The quote is the
// reply's IP header and its first 8 bytes, as RFC 792 / RFC 4443 have it
// (ICMPv6 may quote more; 8 is what the balancer needs).
func icmpAbout(t testing.TB, flow pkt, router netip.Addr, typ, code uint8) []byte {
	t.Helper()
	reply := pkt{src: flow.dst, dst: flow.src, proto: flow.proto, ack: true, payload: []byte("reply")}.build(t)
	quote := reply[14:]
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: lbMAC}
	if flow.is4() {
		quote = quote[:20+8]
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, Flags: layers.IPv4DontFragment,
			SrcIP: router.AsSlice(), DstIP: flow.dst.Addr().AsSlice()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400}
		return serialize(t, eth, ip, ic, gopacket.Payload(quote))
	}
	quote = quote[:40+8]
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: router.AsSlice(), DstIP: flow.dst.Addr().AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	require.NoError(t, ic.SetNetworkLayerForChecksum(ip))
	// The 4 bytes after the checksum: the MTU of packet too big, unused
	// in unreachable.
	return serialize(t, eth, ip, ic, gopacket.Payload(append([]byte{0, 0, 0x05, 0x78}, quote...)))
}

// TestICMPErrorsReachTheFlowsHost: ICMP errors from the internet about a
// VIP flow (fragmentation needed, unreachable, packet too big) are sent,
// wrapped exactly like the flow's packets, to the L7 host the flow goes
// to: its connection entry's host (kept across a table change) or, for a
// flow without entry, the one its Maglev slot names; GUE VIPs in GUE. ICMP
// that is not such an error, or about another address, passes untouched.
func TestICMPErrorsReachTheFlowsHost(t *testing.T) {
	d := openTest(t, nil)
	b4 := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	b6 := upsertBackends(t, d, "fd01::1", "fd01::2", "fd01::3")
	addrs := d.Backends()
	vip4 := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	vip6 := VIP{netip.MustParseAddr("2001:db8::10"), 53, UDP}
	vipGUE := VIP{netip.MustParseAddr("203.0.113.50"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip4))
	require.NoError(t, d.UpsertVIP(vip6))
	require.NoError(t, d.UpsertVIP(vipGUE, WithMode(ModeGUE)))
	require.NoError(t, d.InstallTable(vip4, ring(b4, 0)))
	require.NoError(t, d.InstallTable(vip6, ring(b6, 0)))
	require.NoError(t, d.InstallTable(vipGUE, ring(b6, 0)))
	prog := d.Program()
	router4, router6 := netip.MustParseAddr("192.0.2.254"), netip.MustParseAddr("2001:db8:ff::1")

	established := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
	v, _ := runProg(t, prog, established.build(t))
	require.Equal(t, "XDP_TX", verdictName(v))
	hostOf := func(v VIP, ids []BackendID, shift int, f pkt) netip.Addr {
		return addrs[ring(ids, shift)[FlowHash(f.src, v.Port, f.proto)%testM]]
	}
	entryHost := hostOf(vip4, b4, 0, established)
	// A table change that moves the flow's slot: its entry still names
	// the old host, and so must the ICMP error about it.
	require.NoError(t, d.InstallTable(vip4, ring(b4, 1)))
	require.NotEqual(t, entryHost, hostOf(vip4, b4, 1, established))

	noEntry := tcpSYN("198.51.100.2:40002", "203.0.113.10:80")
	flow6 := udp("[2001:db8:c::1]:5353", "[2001:db8::10]:53")
	flowGUE := tcpSYN("198.51.100.3:40003", "203.0.113.50:80")
	echo := mutate(icmpAbout(t, established, router4, 3, 4), func(b []byte) { b[14+20] = 8 }) // echo request

	for _, tt := range []struct {
		name string
		in   []byte
		flow pkt        // the flow the error is about (its hash); zero: passes
		to   netip.Addr // the flow's host
		gue  bool
	}{
		{"frag needed about an established flow goes to its entry's host", icmpAbout(t, established, router4, 3, 4), established, entryHost, false},
		{"host unreachable about an established flow", icmpAbout(t, established, router4, 3, 1), established, entryHost, false},
		{"frag needed about a flow without entry goes to its Maglev host", icmpAbout(t, noEntry, router4, 3, 4), noEntry, hostOf(vip4, b4, 1, noEntry), false},
		{"icmpv6 packet too big", icmpAbout(t, flow6, router6, 2, 0), flow6, hostOf(vip6, b6, 0, flow6), false},
		{"icmpv6 unreachable", icmpAbout(t, flow6, router6, 1, 4), flow6, hostOf(vip6, b6, 0, flow6), false},
		{"frag needed about a gue vip's flow, in gue, 4-in-6", icmpAbout(t, flowGUE, router4, 3, 4), flowGUE, hostOf(vipGUE, b6, 0, flowGUE), true},
		{"echo request passes", echo, pkt{}, netip.Addr{}, false},
		{"an error about another address passes", icmpAbout(t, tcpSYN("198.51.100.1:40001", "203.0.113.99:80"), router4, 3, 4), pkt{}, netip.Addr{}, false},
		{"an error about a vip's unknown port passes", icmpAbout(t, tcpSYN("198.51.100.1:40001", "203.0.113.10:81"), router4, 3, 4), pkt{}, netip.Addr{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, err := d.Stats()
			require.NoError(t, err)
			v, out := runProg(t, prog, tt.in)
			after, err := d.Stats()
			require.NoError(t, err)
			steered := after.Counters[CounterICMPSteered].Packets - before.Counters[CounterICMPSteered].Packets
			if !tt.flow.src.IsValid() {
				require.Equal(t, "XDP_PASS", verdictName(v))
				assert.Equal(t, tt.in, out[:len(tt.in)])
				assert.Zero(t, steered)
				assert.Equal(t, uint64(1), after.Counters[CounterOtherL4].Packets-before.Counters[CounterOtherL4].Packets)
				return
			}
			require.Equal(t, "XDP_TX", verdictName(v))
			// Wrapped as the flow's packets are: its hash, the ICMP
			// packet's own TOS and DF.
			shape := tt.flow
			shape.tos, shape.df, shape.proto = 0, tt.flow.is4(), tt.flow.proto
			want := encapped(t, shape, tt.in, tt.to)
			if tt.gue {
				want = encappedGUE(t, shape, tt.in, tt.to)
			}
			require.Equal(t, want, out[:len(want)], "got:\n%s\nwant:\n%s", hex.Dump(out[:len(want)]), hex.Dump(want))
			assert.Equal(t, uint64(1), steered)
			assert.Zero(t, after.Counters[CounterConnMissSYN].Packets-before.Counters[CounterConnMissSYN].Packets, "no connection entry")
		})
	}
}
