package l4

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// icmpTooBig is the message the balancer must send back for in (an
// untagged frame): built independently with gopacket (checksums included),
// the request's IP header and first 8 payload bytes quoted, from the VIP
// to the client, to the MAC the request came from.
func icmpTooBig(t testing.TB, p pkt, in []byte, mtu int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: lbMAC, DstMAC: clientMAC}
	if p.is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: p.dst.Addr().AsSlice(), DstIP: p.src.Addr().AsSlice()}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded),
			Id: 0, Seq: uint16(mtu)}
		return serialize(t, eth, ip, ic, gopacket.Payload(in[14:14+20+8]))
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: p.dst.Addr().AsSlice(), DstIP: p.src.Addr().AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}
	require.NoError(t, ic.SetNetworkLayerForChecksum(ip))
	body := binary.BigEndian.AppendUint32(nil, uint32(mtu))
	body = append(body, in[14:14+40+8]...)
	return serialize(t, eth, ip, ic, gopacket.Payload(body))
}

// TestTooBigAnswersWithICMP: a packet that would not fit the MTU once
// wrapped is answered with ICMP "fragmentation needed" (IPv4 with DF) or
// ICMPv6 "packet too big", giving the size that fits, so the client's
// path MTU discovery lowers its segments; IPv4 without DF is dropped.
func TestTooBigAnswersWithICMP(t *testing.T) {
	const mtu = 1400
	d := openTest(t, func(c *Config) { c.MTU = mtu })
	ids4 := upsertBackends(t, d, "192.168.1.1")
	ids6 := upsertBackends(t, d, "fd01::1")
	vip4 := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	vip6 := VIP{netip.MustParseAddr("2001:db8::10"), 443, TCP}
	for v, ids := range map[VIP][]BackendID{vip4: ids4, vip6: ids6} {
		require.NoError(t, d.UpsertVIP(v))
		require.NoError(t, d.InstallTable(v, ring(ids, 0)))
	}
	// The outer header is the L7 host's family, plus UDP in GUE: the
	// answer subtracts that overhead, in the client's ICMP.
	vip4in6 := VIP{netip.MustParseAddr("203.0.113.40"), 80, TCP}
	vipGUE := VIP{netip.MustParseAddr("203.0.113.50"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip4in6))
	require.NoError(t, d.InstallTable(vip4in6, ring(ids6, 0)))
	require.NoError(t, d.UpsertVIP(vipGUE, WithMode(ModeGUE)))
	require.NoError(t, d.InstallTable(vipGUE, ring(ids4, 0)))
	bigTo := func(dst string, overhead int) pkt {
		p := tcpACK("198.51.100.1:40001", dst)
		p.df = true
		p.payload = make([]byte, mtu-overhead-20-20+1)
		return p
	}
	big4 := func(df bool) pkt {
		p := tcpACK("198.51.100.1:40001", "203.0.113.10:80")
		p.df = df
		p.payload = make([]byte, mtu-20-20-20+1) // one byte over once wrapped
		return p
	}
	big6 := tcpACK("[2001:db8:c::1]:40001", "[2001:db8::10]:443")
	big6.payload = make([]byte, mtu-40-40-20+1)
	fits4 := big4(true)
	fits4.payload = fits4.payload[:len(fits4.payload)-1]

	tests := []struct {
		name     string
		p        pkt
		tci      uint16
		verdict  uint32
		wantICMP int // the MTU the message gives; 0: no message
		counters []Counter
		gue      bool // forwarded in GUE
	}{
		{name: "ipv4 with df: fragmentation needed, mtu minus the outer header", p: big4(true), verdict: xdpTx, wantICMP: mtu - 20,
			counters: []Counter{CounterTooBig, CounterICMPTooBig}},
		{name: "ipv4 without df: dropped", p: big4(false), verdict: xdpDrop, counters: []Counter{CounterTooBig}},
		{name: "ipv6: packet too big", p: big6, verdict: xdpTx, wantICMP: mtu - 40, counters: []Counter{CounterTooBig, CounterICMPTooBig}},
		{name: "tagged ipv4 with df: the answer keeps the tag", p: big4(true), tci: 42, verdict: xdpTx, wantICMP: mtu - 20,
			counters: []Counter{CounterTooBig, CounterICMPTooBig}},
		{name: "ipv4 that fits is forwarded", p: fits4, verdict: xdpTx},
		{name: "4-in-6: mtu minus the ipv6 outer header", p: bigTo("203.0.113.40:80", 40), verdict: xdpTx, wantICMP: mtu - 40,
			counters: []Counter{CounterTooBig, CounterICMPTooBig}},
		{name: "gue: mtu minus the outer header and udp", p: bigTo("203.0.113.50:80", 28), verdict: xdpTx, wantICMP: mtu - 28,
			counters: []Counter{CounterTooBig, CounterICMPTooBig}},
		{name: "gue that fits is forwarded", p: func() pkt { p := bigTo("203.0.113.50:80", 28); p.payload = p.payload[1:]; return p }(), verdict: xdpTx, gue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.p.build(t)
			want := in
			switch {
			case tt.wantICMP != 0:
				want = icmpTooBig(t, tt.p, in, tt.wantICMP)
			case tt.gue:
				want = encappedGUE(t, tt.p, in, d.Backends()[ids4[0]])
			case tt.verdict == xdpTx:
				id := ids4[0]
				want = encapped(t, tt.p, in, d.Backends()[id])
			}
			if tt.tci != 0 {
				in, want = vlanTag(in, tt.tci), vlanTag(want, tt.tci)
			}
			before, err := d.Stats()
			require.NoError(t, err)
			v, out := runProg(t, d.Program(), in)
			require.Equal(t, verdictName(tt.verdict), verdictName(v))
			require.Equal(t, want, out, "output differs; got:\n%s\nwant:\n%s", hex.Dump(out), hex.Dump(want))
			after, err := d.Stats()
			require.NoError(t, err)
			for _, c := range []Counter{CounterTooBig, CounterICMPTooBig} {
				n := uint64(0)
				for _, w := range tt.counters {
					if w == c {
						n = 1
					}
				}
				assert.Equal(t, n, after.Counters[c].Packets-before.Counters[c].Packets, "counter %s", c)
			}
		})
	}
}
