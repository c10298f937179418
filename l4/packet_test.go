package l4

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/require"
)

// Test fixtures share these addresses.
var (
	clientMAC  = net.HardwareAddr{0x02, 0xc0, 0, 0, 0, 0x01}
	lbMAC      = net.HardwareAddr{0x02, 0x1b, 0, 0, 0, 0x01}
	nextHopMAC = net.HardwareAddr{0x02, 0x0e, 0, 0, 0, 0x02}
	lbSrcV4    = netip.MustParseAddr("10.0.0.1")
	lbSrcV6    = netip.MustParseAddr("fd00::1")
)

// pkt describes a test packet; build turns it into wire bytes with valid
// checksums (gopacket computes them, independently of the BPF code).
type pkt struct {
	src, dst netip.AddrPort
	proto    Proto
	syn, ack bool
	fin, rst bool
	tos      uint8
	df       bool
	payload  []byte
}

func tcpSYN(src, dst string) pkt {
	return pkt{src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort(dst), proto: TCP, syn: true}
}

func tcpACK(src, dst string) pkt {
	return pkt{src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort(dst), proto: TCP, ack: true, payload: []byte("GET / HTTP/1.1\r\n\r\n")}
}

func udp(src, dst string) pkt {
	return pkt{src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort(dst), proto: UDP, payload: []byte("dns?")}
}

func (p pkt) is4() bool { return p.src.Addr().Is4() }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...)
	require.NoError(t, err)
	return append([]byte(nil), buf.Bytes()...)
}

func (p pkt) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: lbMAC}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	if p.is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, IHL: 5, TOS: p.tos, TTL: 64, Protocol: layers.IPProtocol(p.proto),
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		if p.df {
			v4.Flags = layers.IPv4DontFragment
		}
		ip, ipl = v4, v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, TrafficClass: p.tos, HopLimit: 64, NextHeader: layers.IPProtocol(p.proto),
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		ip, ipl = v6, v6
	}
	pl := gopacket.Payload(p.payload)
	switch p.proto {
	case TCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()),
			SYN: p.syn, ACK: p.ack, FIN: p.fin, RST: p.rst, Seq: 1000, Window: 65535}
		require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
		return serialize(t, eth, ipl, tcp, pl)
	default:
		u := &layers.UDP{SrcPort: layers.UDPPort(p.src.Port()), DstPort: layers.UDPPort(p.dst.Port())}
		require.NoError(t, u.SetNetworkLayerForChecksum(ip))
		return serialize(t, eth, ipl, u, pl)
	}
}

// encapped is the frame the balancer must emit for in sent to backend: new
// Ethernet header, outer IP header of the backend's family built by gopacket
// (checksum included), and the inner IP packet byte for byte.
func encapped(t testing.TB, p pkt, in []byte, backend netip.Addr) []byte {
	t.Helper()
	return wrapped(t, p, in, backend, outerSrcFor(backend), lbMAC, nextHopMAC, 0)
}

// encappedGUE is encapped for a GUE VIP: the outer header is followed by
// the UDP header of GUE variant 1 to testGUEPort.
func encappedGUE(t testing.TB, p pkt, in []byte, backend netip.Addr) []byte {
	t.Helper()
	return wrapped(t, p, in, backend, outerSrcFor(backend), lbMAC, nextHopMAC, testGUEPort)
}

// testGUEPort is the GUE port the test balancers are configured with.
const testGUEPort = 6080

func outerSrcFor(backend netip.Addr) netip.Addr {
	if backend.Is4() {
		return lbSrcV4
	}
	return lbSrcV6
}

// encappedVia is encapped with the given outer source address and MACs.
func encappedVia(t testing.TB, p pkt, in []byte, backend, outerSrc netip.Addr, srcMAC, dstMAC net.HardwareAddr) []byte {
	t.Helper()
	return wrapped(t, p, in, backend, outerSrc, srcMAC, dstMAC, 0)
}

// guePort is the UDP source port of a GUE frame for flow hash h: the hash
// folded to 15 bits, in 32768..65535.
func gueSourcePort(h uint32) uint16 { return uint16(0x8000 | ((h ^ h>>16) & 0x7fff)) }

// wrapped builds the expected frame: IP-in-IP, or GUE to guePort when it is
// not 0 (UDP checksum 0, as the balancer sends it).
func wrapped(t testing.TB, p pkt, in []byte, backend, outerSrc netip.Addr, srcMAC, dstMAC net.HardwareAddr, guePort uint16) []byte {
	t.Helper()
	// The outer length covers the inner datagram only; Ethernet padding of
	// a short frame stays behind it as trailer, as the program leaves it.
	var ipLen int
	if p.is4() {
		ipLen = int(binary.BigEndian.Uint16(in[14+2:]))
	} else {
		ipLen = 40 + int(binary.BigEndian.Uint16(in[14+4:]))
	}
	h := FlowHash(p.src, p.dst.Port(), p.proto)
	payload := append([]byte(nil), in[14:14+ipLen]...)
	proto := layers.IPProtocolIPv4
	if !p.is4() {
		proto = layers.IPProtocolIPv6
	}
	if guePort != 0 {
		u := make([]byte, 8, 8+len(payload))
		binary.BigEndian.PutUint16(u[0:], gueSourcePort(h))
		binary.BigEndian.PutUint16(u[2:], guePort)
		binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
		payload = append(u, payload...)
		proto = layers.IPProtocolUDP
	}
	inner := gopacket.Payload(payload)
	trailer := in[14+ipLen:]
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC}
	if backend.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		o := &layers.IPv4{Version: 4, IHL: 5, TOS: p.tos, TTL: 64, Protocol: proto,
			SrcIP: outerSrc.AsSlice(), DstIP: backend.AsSlice()}
		if p.df || !p.is4() {
			o.Flags = layers.IPv4DontFragment
		}
		out := serialize(t, eth, o, inner)
		require.Zero(t, ipv4HeaderSum(out[14:34]), "outer IPv4 checksum must verify")
		return append(out, trailer...)
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	o := &layers.IPv6{Version: 6, TrafficClass: p.tos, FlowLabel: h & 0xfffff, HopLimit: 64,
		NextHeader: proto, SrcIP: outerSrc.AsSlice(), DstIP: backend.AsSlice()}
	return append(serialize(t, eth, o, inner), trailer...)
}

// ipv4HeaderSum returns the folded one's complement sum of a header; 0 when
// its checksum is right.
func ipv4HeaderSum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = (s & 0xffff) + s>>16
	}
	return ^uint16(s)
}

// arp returns an ARP request frame.
func arp(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: clientMAC, SourceProtAddress: []byte{192, 0, 2, 9},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{192, 0, 2, 80}}
	return serialize(t, eth, a)
}

// mutate returns a copy of b changed by f (bogus header fields).
func mutate(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

// vlanTag returns b with an 802.1Q tag (tci) after the MAC addresses.
func vlanTag(b []byte, tci uint16) []byte {
	out := append([]byte(nil), b[:12]...)
	out = append(out, 0x81, 0x00, byte(tci>>8), byte(tci))
	return append(out, b[12:]...)
}

// vlanUntag returns b without its first 802.1Q tag.
func vlanUntag(b []byte) []byte {
	return append(append([]byte(nil), b[:12]...), b[16:]...)
}

// ipv6Ext inserts IPv6 extension headers of the given types (hop-by-hop 0,
// routing 43, destination options 60) between the IPv6 header and what
// followed it, each 8 bytes: next header, length 0, and a PadN option (or,
// for routing, type 4 with no segments left), with the payload length
// grown to match.
func ipv6Ext(b []byte, types ...byte) []byte {
	out := append([]byte(nil), b[:14+40]...)
	next := out[14+6]
	chain := append(append([]byte(nil), types...), next)
	out[14+6] = chain[0]
	binary.BigEndian.PutUint16(out[14+4:], binary.BigEndian.Uint16(out[14+4:])+uint16(8*len(types)))
	for i, typ := range types {
		if typ == 43 {
			out = append(out, chain[i+1], 0, 4, 0, 0, 0, 0, 0) // routing type 4, segments left 0
		} else {
			out = append(out, chain[i+1], 0, 1, 4, 0, 0, 0, 0) // PadN of 4
		}
	}
	return append(out, b[14+40:]...)
}

// ipv4Fragment makes an IPv4 frame a fragment: the given fragment offset
// (in 8-byte units) and more-fragments bit, total length and checksum
// fixed up for the bytes it keeps.
func ipv4Fragment(b []byte, off uint16) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint16(c[14+2:], uint16(len(c)-14))
	binary.BigEndian.PutUint16(c[14+6:], 0x2000|off)
	c[14+10], c[14+11] = 0, 0
	binary.BigEndian.PutUint16(c[14+10:], ipv4HeaderSum(c[14:34]))
	return c
}

// ipv6Fragment puts an IPv6 fragment header (first fragment, more to
// come) between the IPv6 header and its payload.
func ipv6Fragment(b []byte) []byte {
	out := append([]byte(nil), b[:14+40]...)
	next := out[14+6]
	out[14+6] = 44
	binary.BigEndian.PutUint16(out[14+4:], binary.BigEndian.Uint16(out[14+4:])+8)
	out = append(out, next, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef)
	return append(out, b[14+40:]...)
}
