package decap

import (
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4/xdplink"
)

const (
	xdpDrop = 1
	xdpPass = 2
)

var (
	macLB   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macL7   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	lbAddr  = netip.MustParseAddr("10.0.0.1")
	l7Addr  = netip.MustParseAddr("10.0.0.2")
	other4  = netip.MustParseAddr("10.0.0.3")
	client4 = netip.MustParseAddr("192.0.2.7")
	vip4    = netip.MustParseAddr("198.51.100.1")
	lbAddr6 = netip.MustParseAddr("fd00::1")
	l7Addr6 = netip.MustParseAddr("fd00::2")
	other6  = netip.MustParseAddr("fd00::3")
	client6 = netip.MustParseAddr("2001:db8::7")
	vip6    = netip.MustParseAddr("2001:db8:100::1")
)

// serialize builds bytes from layers with lengths and checksums fixed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...)
	require.NoError(t, err)
	return append([]byte(nil), buf.Bytes()...)
}

// inner returns a client→VIP TCP segment as IP bytes (no L2).
func inner(t testing.TB, v6 bool, payload string) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 512}
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
		require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
		return serialize(t, ip, tcp, gopacket.Payload(payload))
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: client4.AsSlice(), DstIP: vip4.AsSlice()}
	require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
	return serialize(t, ip, tcp, gopacket.Payload(payload))
}

// l2 is an Ethernet header built by hand: gopacket's Ethernet layer pads
// frames to 60 bytes, which would hide what the program does to the length.
func l2(typ layers.EthernetType) []byte {
	b := append(append([]byte(nil), macL7...), macLB...)
	return append(b, byte(typ>>8), byte(typ))
}

func ethType(innerV6 bool) layers.EthernetType {
	if innerV6 {
		return layers.EthernetTypeIPv6
	}
	return layers.EthernetTypeIPv4
}

func tunnelProto(innerV6 bool) layers.IPProtocol {
	if innerV6 {
		return layers.IPProtocolIPv6
	}
	return layers.IPProtocolIPv4
}

// outer4 is the balancer's outer IPv4 header (tweak adjusts it).
func outer4(dst netip.Addr, innerV6 bool, tweak func(*layers.IPv4)) *layers.IPv4 {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: tunnelProto(innerV6), Flags: layers.IPv4DontFragment,
		SrcIP: lbAddr.AsSlice(), DstIP: dst.AsSlice()}
	if tweak != nil {
		tweak(ip)
	}
	return ip
}

func outer6(dst netip.Addr, innerV6 bool) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: tunnelProto(innerV6),
		SrcIP: lbAddr6.AsSlice(), DstIP: dst.AsSlice()}
}

// tunnel4 frames inner in Ethernet + outer IPv4.
func tunnel4(t testing.TB, dst netip.Addr, innerV6 bool, in []byte, tweak func(*layers.IPv4)) []byte {
	return append(l2(layers.EthernetTypeIPv4), serialize(t, outer4(dst, innerV6, tweak), gopacket.Payload(in))...)
}

func tunnel6(t testing.TB, dst netip.Addr, innerV6 bool, in []byte) []byte {
	return append(l2(layers.EthernetTypeIPv6), serialize(t, outer6(dst, innerV6), gopacket.Payload(in))...)
}

// decapped is what the kernel must see: the same L2 header, the inner
// family's EtherType, the inner packet byte for byte.
func decapped(t testing.TB, innerV6 bool, in []byte) []byte {
	return append(l2(ethType(innerV6)), in...)
}

func openForTest(t testing.TB) *Decap {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root (CAP_BPF, CAP_NET_ADMIN); CI runs this as root")
	}
	d, err := Open(Config{GUEPort: guePort})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	require.NoError(t, d.SetAddrs([]netip.Addr{l7Addr, l7Addr6}))
	return d
}

// guePort is the GUE port of the fixtures; gueSrcPort stands for the flow
// hash the balancer puts in the source port.
const (
	guePort    = 6080
	gueSrcPort = 51234
)

// gue wraps inner in UDP to port dport, in outer (an *layers.IPv4 or
// *layers.IPv6 whose protocol is set to UDP here), behind an Ethernet header.
// The UDP checksum is computed over the pseudo-header, or left zero.
func gue(t testing.TB, outer gopacket.NetworkLayer, dport uint16, in []byte, csum bool) []byte {
	t.Helper()
	udp := &layers.UDP{SrcPort: gueSrcPort, DstPort: layers.UDPPort(dport)}
	require.NoError(t, udp.SetNetworkLayerForChecksum(outer))
	var (
		typ    layers.EthernetType
		hdrLen int
		ip     gopacket.SerializableLayer
	)
	switch o := outer.(type) {
	case *layers.IPv4:
		o.Protocol = layers.IPProtocolUDP
		typ, hdrLen, ip = layers.EthernetTypeIPv4, 4*int(o.IHL), o
		if len(o.Options) > 0 {
			hdrLen = 20 + 4*((len(o.Options)+3)/4)
		}
	case *layers.IPv6:
		o.NextHeader = layers.IPProtocolUDP
		typ, hdrLen, ip = layers.EthernetTypeIPv6, 40, o
	}
	b := append(l2(typ), serialize(t, ip, udp, gopacket.Payload(in))...)
	if !csum {
		b[14+hdrLen+6], b[14+hdrLen+7] = 0, 0
	}
	return b
}

func run(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(in)+256)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	ret, err := prog.Run(opts)
	require.NoError(t, err)
	return ret, opts.DataOut
}

// slot names the counter a fixture must bump.
type slot int

const (
	slotV4 slot = iota
	slotV6
	slotNotForUs
	slotMalformed
	slotPassed
	slotGUEV4
	slotGUEV6
)

func TestFixtures(t *testing.T) {
	d := openForTest(t)

	in4 := inner(t, false, "hello over v4")
	in6 := inner(t, true, "hello over v6")
	// A tiny inner packet leaves the frame below the Ethernet minimum:
	// NICs pad it, and the padding must survive decap untouched (the
	// kernel trims by the inner length).
	tiny4 := inner(t, false, "")
	padded := append(tunnel4(t, l7Addr, false, tiny4, nil), make([]byte, 6)...)

	vlanTunnel := serialize(t,
		&layers.Ethernet{SrcMAC: macLB, DstMAC: macL7, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv4},
		outer4(l7Addr, true, nil), gopacket.Payload(in6))
	vlanDecapped := serialize(t,
		&layers.Ethernet{SrcMAC: macLB, DstMAC: macL7, EthernetType: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv6},
		gopacket.Payload(in6))

	arp := serialize(t, &layers.Ethernet{SrcMAC: macLB, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macLB, SourceProtAddress: lbAddr.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: l7Addr.AsSlice()})
	plain4 := append(l2(layers.EthernetTypeIPv4), inner(t, false, "not a tunnel")...)
	plain6 := append(l2(layers.EthernetTypeIPv6), inner(t, true, "not a tunnel")...)
	// Plain traffic from the client straight to the host's own address.
	toHost := func() []byte {
		b := append(l2(layers.EthernetTypeIPv4), in4...)
		ip := b[14:]
		copy(ip[16:20], l7Addr.AsSlice())
		return b
	}()

	full := tunnel4(t, l7Addr, false, in4, nil)
	full6 := tunnel6(t, l7Addr6, true, in6)
	badInnerVersion := func() []byte {
		bad := append([]byte(nil), in4...)
		bad[0] = 0x65 // version 6, IHL 5 behind protocol 4
		return tunnel4(t, l7Addr, false, bad, nil)
	}()
	badInnerIHL := func() []byte {
		bad := append([]byte(nil), in4...)
		bad[0] = 0x44
		return tunnel4(t, l7Addr, false, bad, nil)
	}()
	innerLonger := func() []byte {
		// Inner claims more bytes than the outer carries.
		bad := append([]byte(nil), in4...)
		bad[2], bad[3] = 0x05, 0xdc
		return tunnel4(t, l7Addr, false, bad, nil)
	}()
	inner6Longer := func() []byte {
		bad := append([]byte(nil), in6...)
		bad[4], bad[5] = 0x05, 0xdc
		return tunnel6(t, l7Addr6, true, bad)
	}()
	outerShort := func() []byte {
		// Outer total length ends inside the inner packet.
		b := append([]byte(nil), full...)
		b[14+2], b[14+3] = 0, 30
		return b
	}()
	outerLonger := func() []byte {
		// Outer total length claims more than the frame holds.
		b := append([]byte(nil), full...)
		tot := int(b[14+2])<<8 | int(b[14+3]) + 10
		b[14+2], b[14+3] = byte(tot>>8), byte(tot)
		return b
	}()
	outer6Longer := func() []byte {
		b := append([]byte(nil), full6...)
		pl := int(b[14+4])<<8 | int(b[14+5]) + 10
		b[14+4], b[14+5] = byte(pl>>8), byte(pl)
		return b
	}()
	outerBogusIHL := func() []byte {
		b := append([]byte(nil), full...)
		b[14] = 0x44
		return b
	}()

	// GUE, variant 1: the inner packet right after the UDP header.
	gue4 := func(dst netip.Addr, in []byte) []byte { return gue(t, outer4(dst, false, nil), guePort, in, false) }
	gue6 := func(dst netip.Addr, in []byte) []byte { return gue(t, outer6(dst, false), guePort, in, false) }
	gueFull := gue4(l7Addr, in4)
	gueEdit := func(frame []byte, edit func(b []byte)) []byte {
		b := append([]byte(nil), frame...)
		edit(b)
		return b
	}
	const gueUDP = 14 + 20 // offset of the UDP header in gueFull
	gueVLAN := append(append(l2(layers.EthernetTypeDot1Q), 0x00, 42, 0x08, 0x00), gue4(l7Addr, in6)[14:]...)
	gueFragment := func(flags layers.IPv4Flag, offset uint16) []byte {
		return gue(t, outer4(l7Addr, false, func(ip *layers.IPv4) { ip.Flags, ip.FragOffset = flags, offset }), guePort, in4, false)
	}

	tests := []struct {
		name        string
		in          []byte
		wantVerdict uint32
		wantOut     []byte // nil: the input, untouched
		wantSlot    slot
	}{
		{"gue v4 in v4", gueFull, xdpPass, decapped(t, false, in4), slotGUEV4},
		{"gue v6 in v4", gue4(l7Addr, in6), xdpPass, decapped(t, true, in6), slotGUEV6},
		{"gue v4 in v6, zero checksum", gue6(l7Addr6, in4), xdpPass, decapped(t, false, in4), slotGUEV4},
		{"gue v6 in v6, checksum computed", gue(t, outer6(l7Addr6, true), guePort, in6, true), xdpPass, decapped(t, true, in6), slotGUEV6},
		{"gue v4 in v4, checksum computed", gue(t, outer4(l7Addr, false, nil), guePort, in4, true), xdpPass, decapped(t, false, in4), slotGUEV4},
		{"gue outer IPv4 options", gue(t, outer4(l7Addr, false, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}), guePort, in4, false), xdpPass, decapped(t, false, in4), slotGUEV4},
		{"gue vlan tag kept", gueVLAN, xdpPass, vlanDecapped, slotGUEV6},
		{"gue ethernet padding kept", append(gue4(l7Addr, tiny4), make([]byte, 6)...), xdpPass,
			append(decapped(t, false, tiny4), make([]byte, 6)...), slotGUEV4},

		{"gue v4 outer dst not ours", gue4(other4, in4), xdpPass, nil, slotNotForUs},
		{"gue v6 outer dst not ours", gue6(other6, in4), xdpPass, nil, slotNotForUs},
		{"udp to another port", gue(t, outer4(l7Addr, false, nil), guePort+1, in4, false), xdpPass, nil, slotPassed},
		{"udp v6 to another port", gue(t, outer6(l7Addr6, false), 53, in4, true), xdpPass, nil, slotPassed},
		{"gue truncated udp header", gueFull[:gueUDP+7], xdpPass, nil, slotPassed},
		{"gue v6 truncated udp header", gue6(l7Addr6, in4)[:14+40+7], xdpPass, nil, slotPassed},
		{"gue later fragment", gueFragment(0, 1), xdpPass, nil, slotPassed},
		{"gue outer IHL below 5", gueEdit(gueFull, func(b []byte) { b[14] = 0x44 }), xdpPass, nil, slotPassed},

		{"gue first fragment", gueFragment(layers.IPv4MoreFragments, 0), xdpDrop, nil, slotMalformed},
		{"gue variant 0 header", gue4(l7Addr, append([]byte{0, 0, 0, 0}, in4...)), xdpDrop, nil, slotMalformed},
		{"gue inner version 5", gueEdit(gueFull, func(b []byte) { b[gueUDP+8] = 0x55 }), xdpDrop, nil, slotMalformed},
		{"gue udp length beyond outer", gueEdit(gueFull, func(b []byte) { b[gueUDP+5]++ }), xdpDrop, nil, slotMalformed},
		{"gue udp length below 8", gueEdit(gueFull, func(b []byte) { b[gueUDP+4], b[gueUDP+5] = 0, 7 }), xdpDrop, nil, slotMalformed},
		{"gue udp header only", gue4(l7Addr, nil), xdpDrop, nil, slotMalformed},
		{"gue inner longer than udp", gueEdit(gueFull, func(b []byte) { b[gueUDP+5] -= 1 }), xdpDrop, nil, slotMalformed},
		{"gue inner v6 truncated", gue6(l7Addr6, in6)[:14+40+8+39], xdpDrop, nil, slotMalformed},
		{"gue outer v6 longer than frame", gueEdit(gue6(l7Addr6, in6), func(b []byte) { b[14+5]++ }), xdpDrop, nil, slotMalformed},

		{"v4 in v4", full, xdpPass, decapped(t, false, in4), slotV4},
		{"v6 in v6", full6, xdpPass, decapped(t, true, in6), slotV6},
		{"v6 in v4", tunnel4(t, l7Addr, true, in6, nil), xdpPass, decapped(t, true, in6), slotV6},
		{"v4 in v6", tunnel6(t, l7Addr6, false, in4), xdpPass, decapped(t, false, in4), slotV4},
		{"outer IPv4 options", tunnel4(t, l7Addr, false, in4, func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}), xdpPass, decapped(t, false, in4), slotV4},
		{"ethernet padding kept", padded, xdpPass, append(decapped(t, false, tiny4), make([]byte, 6)...), slotV4},
		{"vlan tag kept", vlanTunnel, xdpPass, vlanDecapped, slotV6},

		{"v4 outer dst not ours", tunnel4(t, other4, false, in4, nil), xdpPass, nil, slotNotForUs},
		{"v6 outer dst not ours", tunnel6(t, other6, true, in6), xdpPass, nil, slotNotForUs},
		{"outer dst is the VIP", tunnel4(t, vip4, false, in4, nil), xdpPass, nil, slotNotForUs},

		{"plain tcp v4 to vip", plain4, xdpPass, nil, slotPassed},
		{"plain tcp v6 to vip", plain6, xdpPass, nil, slotPassed},
		{"plain tcp to host address", toHost, xdpPass, nil, slotPassed},
		{"arp", arp, xdpPass, nil, slotPassed},
		{"truncated outer v4", full[:14+19], xdpPass, nil, slotPassed},
		{"truncated outer v6", full6[:14+39], xdpPass, nil, slotPassed},
		{"truncated vlan tag", vlanTunnel[:16], xdpPass, nil, slotPassed},

		{"truncated inner v4", full[:14+20+19], xdpDrop, nil, slotMalformed},
		{"truncated inner v4 payload", full[:len(full)-1], xdpDrop, nil, slotMalformed},
		{"truncated inner v6", full6[:14+40+39], xdpDrop, nil, slotMalformed},
		{"truncated inner v6 payload", full6[:len(full6)-1], xdpDrop, nil, slotMalformed},
		{"inner version wrong", badInnerVersion, xdpDrop, nil, slotMalformed},
		{"inner IHL below 5", badInnerIHL, xdpDrop, nil, slotMalformed},
		{"inner longer than outer", innerLonger, xdpDrop, nil, slotMalformed},
		{"inner v6 longer than outer", inner6Longer, xdpDrop, nil, slotMalformed},
		{"outer total length short", outerShort, xdpDrop, nil, slotMalformed},
		{"outer IHL below 5", outerBogusIHL, xdpDrop, nil, slotMalformed},
		{"outer v4 longer than frame", outerLonger, xdpDrop, nil, slotMalformed},
		{"outer v6 longer than frame", outer6Longer, xdpDrop, nil, slotMalformed},
		{"outer fragment", tunnel4(t, l7Addr, false, in4, func(ip *layers.IPv4) {
			ip.Flags = layers.IPv4MoreFragments
		}), xdpDrop, nil, slotMalformed},
		{"outer IHL beyond frame", func() []byte {
			b := append([]byte(nil), full[:14+20+4]...)
			b[14] = 0x4f
			return b
		}(), xdpDrop, nil, slotMalformed},
	}

	var want Stats
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(nil), tt.in...)
			verdict, out := run(t, d.Program(), in)
			assert.Equal(t, tt.wantVerdict, verdict, "verdict")
			wantOut := tt.wantOut
			if wantOut == nil {
				wantOut = tt.in
			}
			assert.Equal(t, wantOut, out, "output bytes\nwant:\n%s\ngot:\n%s", hex.Dump(wantOut), hex.Dump(out))
		})
		c := map[slot]*Counter{slotV4: &want.DecapV4, slotV6: &want.DecapV6, slotNotForUs: &want.NotForUs,
			slotMalformed: &want.Malformed, slotPassed: &want.Passed, slotGUEV4: &want.GUEV4, slotGUEV6: &want.GUEV6}[tt.wantSlot]
		c.Packets++
		c.Bytes += uint64(len(tt.in))
	}

	got, err := d.Stats()
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestSetAddrs(t *testing.T) {
	d := openForTest(t)
	in4 := inner(t, false, "x")
	frame := func(dst netip.Addr) []byte { return tunnel4(t, dst, false, in4, nil) }
	a := netip.MustParseAddr("10.9.0.1")
	b := netip.MustParseAddr("10.9.0.2")

	steps := []struct {
		name     string
		addrs    []netip.Addr
		decapped []netip.Addr
		passed   []netip.Addr
	}{
		{"initial", []netip.Addr{l7Addr}, []netip.Addr{l7Addr}, []netip.Addr{a, b}},
		{"add two", []netip.Addr{l7Addr, a, b}, []netip.Addr{l7Addr, a, b}, nil},
		{"replace", []netip.Addr{netip.AddrFrom16(b.As16())}, []netip.Addr{b}, []netip.Addr{l7Addr, a}},
		{"empty", nil, nil, []netip.Addr{l7Addr, a, b}},
	}
	for _, st := range steps {
		require.NoError(t, d.SetAddrs(st.addrs), st.name)
		for _, dst := range st.decapped {
			verdict, out := run(t, d.Program(), frame(dst))
			assert.Equal(t, uint32(xdpPass), verdict, "%s: %s", st.name, dst)
			assert.Equal(t, decapped(t, false, in4), out, "%s: %s decapsulated", st.name, dst)
		}
		for _, dst := range st.passed {
			in := frame(dst)
			_, out := run(t, d.Program(), in)
			assert.Equal(t, in, out, "%s: %s untouched", st.name, dst)
		}
	}
}

func TestSetAddrsErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root (CAP_BPF, CAP_NET_ADMIN); CI runs this as root")
	}
	d, err := Open(Config{MaxAddrs: 2})
	require.NoError(t, err)
	defer d.Close()

	tests := []struct {
		name  string
		addrs []netip.Addr
		ok    bool
	}{
		{"at capacity in both families", []netip.Addr{l7Addr, other4, l7Addr6, other6}, true},
		{"duplicates collapse", []netip.Addr{l7Addr, l7Addr, netip.AddrFrom16(l7Addr.As16()), other4}, true},
		{"over capacity v4", []netip.Addr{l7Addr, other4, lbAddr}, false},
		{"over capacity v6", []netip.Addr{l7Addr6, other6, lbAddr6}, false},
		{"invalid", []netip.Addr{{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.SetAddrs(tt.addrs)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

func TestAttachErrors(t *testing.T) {
	d := openForTest(t)
	err := d.Attach("xlbt-no-such-if", xdplink.ModeAuto)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no such interface")

	require.NoError(t, d.Close())
	assert.ErrorIs(t, d.Attach("lo", xdplink.ModeGeneric), net.ErrClosed)
	_, err = d.Stats()
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.NoError(t, d.Close(), "second Close")
}

// Without a GUE port, GUE is plain UDP: untouched and counted as passed,
// while IP-in-IP still works.
func TestGUEOff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root (CAP_BPF, CAP_NET_ADMIN); CI runs this as root")
	}
	d, err := Open(Config{})
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.SetAddrs([]netip.Addr{l7Addr}))
	in4 := inner(t, false, "x")
	frame := gue(t, outer4(l7Addr, false, nil), guePort, in4, false)
	verdict, out := run(t, d.Program(), frame)
	assert.Equal(t, uint32(xdpPass), verdict)
	assert.Equal(t, frame, out, "untouched")
	verdict, out = run(t, d.Program(), tunnel4(t, l7Addr, false, in4, nil))
	assert.Equal(t, uint32(xdpPass), verdict)
	assert.Equal(t, decapped(t, false, in4), out)
	st, err := d.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Passed.Packets)
	assert.Equal(t, uint64(1), st.DecapV4.Packets)
	assert.Zero(t, st.GUEV4.Packets)
}
