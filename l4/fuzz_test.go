package l4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/topo"
)

// fuzzBed is a balancer with a few VIPs of both families and protocols,
// one of them port-wildcard, some in L2 DSR mode, and the backends each may
// go to. It runs frames as if they arrived on the interface of a namespace
// where the L2 DSR backends are on-link neighbours, since L2 DSR takes the
// backend's MAC from the FIB whatever next hop is configured.
type fuzzBed struct {
	d        *Dataplane
	backends map[VIP]map[netip.Addr]bool // IP-in-IP and GUE VIPs: backend addresses
	gue      map[VIP]bool                // VIPs in ModeGUE
	l2       map[VIP]map[string]bool     // L2 DSR VIPs: backend MACs
	lb       *topo.Host
	l2seen   int // XDP_TX frames checked as L2 DSR
}

func newFuzzBed(t testing.TB) *fuzzBed {
	d := openTest(t, nil)
	tp := topo.NewT(t, topo.Options{Subnet4: netip.MustParsePrefix("10.76.0.0/24"), Subnet6: netip.MustParsePrefix("fd76::/64")})
	// A router: the FIB answers a forwarding lookup only where
	// forwarding is on, as on an edge host.
	lb, err := tp.AddHost(topo.HostConfig{Name: "lb", Router: true})
	require.NoError(t, err)
	b := &fuzzBed{d: d, backends: map[VIP]map[netip.Addr]bool{}, gue: map[VIP]bool{}, l2: map[VIP]map[string]bool{}, lb: lb}
	l2MAC := map[string]net.HardwareAddr{
		"10.76.0.200": {0x02, 0xb1, 0, 0, 0, 0x01},
		"10.76.0.201": {0x02, 0xb1, 0, 0, 0, 0x02},
		"fd76::200":   {0x02, 0xb1, 0, 0, 0, 0x03},
	}
	for a, mac := range l2MAC {
		require.NoError(t, lb.AddNeigh(netip.MustParseAddr(a), mac))
	}
	for _, v := range []struct {
		vip      VIP
		backends []string
	}{
		{VIP{netip.MustParseAddr("203.0.113.30"), 80, TCP}, []string{"10.76.0.200", "10.76.0.201"}},
		{VIP{netip.MustParseAddr("203.0.113.30"), 53, UDP}, []string{"10.76.0.201"}},
		// The address of an IP-in-IP VIP, another port: the mode is per VIP.
		{VIP{netip.MustParseAddr("203.0.113.10"), 8080, TCP}, []string{"10.76.0.200"}},
		{VIP{netip.MustParseAddr("2001:db8::30"), 443, TCP}, []string{"fd76::200"}},
	} {
		require.NoError(t, d.UpsertVIP(v.vip, WithMode(ModeL2DSR)))
		ids := upsertBackends(t, d, v.backends...)
		require.NoError(t, d.InstallTable(v.vip, ring(ids, 0)))
		b.l2[v.vip] = map[string]bool{}
		for _, a := range v.backends {
			b.l2[v.vip][l2MAC[a].String()] = true
		}
	}
	for _, v := range []struct {
		vip      VIP
		backends []string
		mode     Mode
	}{
		{VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}, []string{"192.168.1.1", "192.168.1.2", "192.168.1.3"}, ModeIPIP},
		{VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}, []string{"192.168.1.4"}, ModeIPIP},
		{VIP{netip.MustParseAddr("203.0.113.20"), 0, TCP}, []string{"192.168.1.5", "192.168.1.6"}, ModeIPIP},
		{VIP{netip.MustParseAddr("2001:db8::10"), 443, TCP}, []string{"fd00::11", "fd00::12"}, ModeIPIP},
		{VIP{netip.MustParseAddr("2001:db8::10"), 443, UDP}, []string{"fd00::13"}, ModeIPIP},
		// Mixed families, in IP-in-IP and in GUE.
		{VIP{netip.MustParseAddr("203.0.113.35"), 80, TCP}, []string{"fd00::21"}, ModeIPIP},
		{VIP{netip.MustParseAddr("2001:db8::35"), 80, TCP}, []string{"192.168.1.21"}, ModeIPIP},
		{VIP{netip.MustParseAddr("203.0.113.40"), 80, TCP}, []string{"192.168.1.31", "fd00::31"}, ModeGUE},
		{VIP{netip.MustParseAddr("2001:db8::40"), 53, UDP}, []string{"192.168.1.32", "fd00::32"}, ModeGUE},
	} {
		require.NoError(t, d.UpsertVIP(v.vip, WithMode(v.mode)))
		b.gue[v.vip] = v.mode == ModeGUE
		ids := upsertBackends(t, d, v.backends...)
		require.NoError(t, d.InstallTable(v.vip, ring(ids, 0)))
		b.backends[v.vip] = map[netip.Addr]bool{}
		for _, a := range v.backends {
			b.backends[v.vip][netip.MustParseAddr(a)] = true
		}
	}
	return b
}

// balancerSeeds are packets to every VIP, to non-VIP ports and addresses,
// and non-IP frames.
func balancerSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, p := range []pkt{
		tcpSYN("198.51.100.1:40001", "203.0.113.10:80"),
		tcpACK("198.51.100.1:40001", "203.0.113.10:80"),
		udp("198.51.100.2:5353", "203.0.113.10:53"),
		tcpSYN("198.51.100.3:40002", "203.0.113.20:8443"),
		tcpACK("[2001:db8:1::1]:40003", "[2001:db8::10]:443"),
		udp("[2001:db8:1::2]:40004", "[2001:db8::10]:443"),
		tcpSYN("198.51.100.1:40001", "203.0.113.10:81"),
		udp("198.51.100.1:40001", "192.0.2.1:53"),
		tcpSYN("[2001:db8:1::1]:40003", "[2001:db8::99]:443"),
		// L2 DSR VIPs.
		tcpSYN("198.51.100.4:40005", "203.0.113.30:80"),
		tcpACK("198.51.100.4:40005", "203.0.113.30:80"),
		udp("198.51.100.5:5353", "203.0.113.30:53"),
		tcpSYN("198.51.100.6:40006", "203.0.113.10:8080"),
		tcpACK("[2001:db8:1::3]:40007", "[2001:db8::30]:443"),
		// Mixed families and GUE.
		tcpSYN("198.51.100.8:40009", "203.0.113.35:80"),
		tcpACK("[2001:db8:1::4]:40010", "[2001:db8::35]:80"),
		tcpSYN("198.51.100.9:40011", "203.0.113.40:80"),
		udp("[2001:db8:1::5]:40012", "[2001:db8::40]:53"),
	} {
		out = append(out, p.build(t))
	}
	// ICMP errors about VIP flows, which go to the flow's host.
	out = append(out,
		icmpAbout(t, tcpSYN("198.51.100.1:40001", "203.0.113.10:80"), netip.MustParseAddr("192.0.2.254"), 3, 4),
		icmpAbout(t, udp("[2001:db8:1::2]:40004", "[2001:db8::10]:443"), netip.MustParseAddr("2001:db8:ff::1"), 2, 0),
		icmpAbout(t, tcpSYN("198.51.100.9:40011", "203.0.113.40:80"), netip.MustParseAddr("192.0.2.254"), 3, 4))
	// One 802.1Q tag, kept on the way out in both modes.
	out = append(out,
		vlanTag(tcpSYN("198.51.100.7:40008", "203.0.113.10:80").build(t), 0x0064),
		vlanTag(tcpSYN("198.51.100.7:40008", "203.0.113.30:80").build(t), 0x0064))
	return append(out, arp(t), make([]byte, 14))
}

// check runs one frame through the balancer and checks what must hold for every input:
// never XDP_ABORTED; XDP_PASS leaves the bytes untouched; XDP_TX either
// sends the input's IP packet, unchanged, inside an outer header addressed
// (IP-in-IP, or GUE for a GUE VIP) to a backend of the VIP the inner packet
// is addressed to (for an ICMP error, the VIP of the quoted packet), or
// (L2 DSR) sends the input with only its MAC addresses changed: to the MAC
// of a backend of the L2 DSR VIP the packet is addressed to, from the
// interface's own.
func (b *fuzzBed) check(t testing.TB, in []byte) uint32 {
	t.Helper()
	if len(in) > 3000 {
		in = in[:3000] // one page at most: the program has no xdp.frags
	}
	opts := &ebpf.RunOptions{Data: append([]byte(nil), in...), DataOut: make([]byte, len(in)+256),
		Context: xdpMd{DataEnd: uint32(len(in)), IngressIfindex: uint32(b.lb.Ifindex)}}
	var verdict uint32
	// In lb's namespace: bpf_fib_lookup asks the FIB of the ingress
	// interface, which the test run looks up in the caller's namespace.
	err := b.lb.Do(func() (err error) {
		verdict, err = b.d.Program().Run(opts)
		return err
	})
	if len(in) < 14 {
		return xdpAborted // not run: the kernel never hands XDP such a frame
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	out := opts.DataOut
	// Checked by hand: the hex dump is built only for a failure.
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nin:\n%sout:\n%s", append(args, hex.Dump(in), hex.Dump(out))...)
	}
	switch verdict {
	case xdpDrop:
	case xdpPass:
		if !bytes.Equal(in, out) {
			fail("XDP_PASS changed the frame")
		}
	case xdpTx:
		l3 := l3Of(in)
		if len(out) == len(in) && bytes.Equal(out[12:], in[12:]) {
			vip, ok := vipOf(in[l3:])
			if !ok {
				fail("L2 DSR of a packet without a TCP or UDP destination")
			}
			macs, ok := b.l2[vip]
			if !ok {
				fail("XDP_TX with only the MACs changed of a packet to %s, which is no L2 DSR VIP", vip)
			}
			if dst := net.HardwareAddr(out[:6]); !macs[dst.String()] {
				fail("L2 DSR to %s, which is the MAC of no backend of %s", dst, vip)
			}
			if src := net.HardwareAddr(out[6:12]); !bytes.Equal(src, b.lb.MAC) {
				fail("L2 DSR from %s, not the interface's own %s", src, b.lb.MAC)
			}
			b.l2seen++
			return verdict
		}
		dst, inner, gue, ok := outerOf(out)
		if !ok {
			fail("XDP_TX of a frame that is neither IP-in-IP, GUE nor the input with new MACs")
		}
		if !bytes.Equal(inner, in[l3:]) {
			fail("the inner packet is not the input's IP packet")
		}
		vip, ok := vipOf(inner)
		if !ok {
			fail("XDP_TX of a packet without a TCP or UDP destination")
		}
		backends, ok := b.backends[vip]
		if !ok {
			vip.Port = 0
			backends, ok = b.backends[vip]
		}
		if !ok {
			fail("XDP_TX of a packet to %s, which is no VIP", vip)
		}
		if !backends[dst] {
			fail("XDP_TX to %s, which is no backend of %s", dst, vip)
		}
		if gue != b.gue[vip] {
			fail("XDP_TX of %s in GUE %v, its mode says %v", vip, gue, b.gue[vip])
		}
	default:
		fail("verdict %d", verdict)
	}
	return verdict
}

// l3Of is where a frame's IP header starts: after the Ethernet header and
// one 802.1Q tag if there is one.
func l3Of(f []byte) int {
	if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == 0x8100 {
		return 18
	}
	return 14
}

// outerOf parses the outer header of an IP-in-IP or GUE frame (after one
// 802.1Q tag, if any): its destination, what follows the tunnel headers,
// and whether it was GUE (variant 1 to testGUEPort: a source port in
// 32768..65535 and a UDP length that covers the inner packet's own).
func outerOf(f []byte) (dst netip.Addr, rest []byte, gue bool, ok bool) {
	if len(f) < 14 {
		return netip.Addr{}, nil, false, false
	}
	l3 := l3Of(f)
	ip := f[l3:]
	var proto byte
	switch binary.BigEndian.Uint16(f[l3-2:]) {
	case 0x0800:
		if len(ip) < 20 || ip[0] != 0x45 {
			return netip.Addr{}, nil, false, false
		}
		dst, proto, rest = netip.AddrFrom4([4]byte(ip[16:20])), ip[9], ip[20:]
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return netip.Addr{}, nil, false, false
		}
		dst, proto, rest = netip.AddrFrom16([16]byte(ip[24:40])), ip[6], ip[40:]
	default:
		return netip.Addr{}, nil, false, false
	}
	switch proto {
	case 4, 41:
		return dst, rest, false, true
	case 17:
		if len(rest) < 8+20 || binary.BigEndian.Uint16(rest[0:]) < 0x8000 || binary.BigEndian.Uint16(rest[2:]) != testGUEPort {
			return netip.Addr{}, nil, false, false
		}
		udpLen := int(binary.BigEndian.Uint16(rest[4:]))
		innerLen := int(binary.BigEndian.Uint16(rest[8+2:])) // IPv4 total length
		if rest[8]>>4 == 6 {
			innerLen = 40 + int(binary.BigEndian.Uint16(rest[8+4:]))
		}
		if udpLen != 8+innerLen || udpLen > len(rest) {
			return netip.Addr{}, nil, false, false
		}
		return dst, rest[8:], true, true
	}
	return netip.Addr{}, nil, false, false
}

// vipOf reads the destination (address, port, protocol) of an IP packet;
// for an ICMP error, the VIP it is about: the source of the quoted packet.
func vipOf(p []byte) (VIP, bool) {
	if v, ok := quotedVIPOf(p); ok {
		return v, true
	}
	return destOf(p)
}

// quotedVIPOf reads the quoted packet's source of an ICMP or ICMPv6 error.
func quotedVIPOf(p []byte) (VIP, bool) {
	var q []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4 && p[9] == 1 && len(p) >= int(p[0]&0xf)*4+8:
		q = p[int(p[0]&0xf)*4+8:]
	case len(p) >= 40+8 && p[0]>>4 == 6 && p[6] == 58:
		q = p[40+8:]
	default:
		return VIP{}, false
	}
	var v VIP
	var l4 []byte
	switch {
	case len(q) >= 20 && q[0]>>4 == 4 && len(q) >= int(q[0]&0xf)*4:
		v.Addr, v.Proto, l4 = netip.AddrFrom4([4]byte(q[12:16])), Proto(q[9]), q[int(q[0]&0xf)*4:]
	case len(q) >= 40 && q[0]>>4 == 6:
		v.Addr, v.Proto, l4 = netip.AddrFrom16([16]byte(q[8:24])), Proto(q[6]), q[40:]
	default:
		return VIP{}, false
	}
	if (v.Proto != TCP && v.Proto != UDP) || len(l4) < 2 {
		return VIP{}, false
	}
	v.Port = binary.BigEndian.Uint16(l4)
	return v, true
}

// destOf reads the destination (address, port, protocol) of an IP packet.
func destOf(p []byte) (VIP, bool) {
	var (
		v   VIP
		l4  []byte
		ver = p[0] >> 4
	)
	switch {
	case ver == 4 && len(p) >= 20 && len(p) >= int(p[0]&0xf)*4:
		v.Addr, v.Proto, l4 = netip.AddrFrom4([4]byte(p[16:20])), Proto(p[9]), p[int(p[0]&0xf)*4:]
	case ver == 6 && len(p) >= 40:
		v.Addr, v.Proto, l4 = netip.AddrFrom16([16]byte(p[24:40])), Proto(p[6]), p[40:]
	default:
		return v, false
	}
	if (v.Proto != TCP && v.Proto != UDP) || len(l4) < 4 {
		return v, false
	}
	v.Port = binary.BigEndian.Uint16(l4[2:])
	return v, true
}

// FuzzBalancer feeds arbitrary frames through the real balancer. `go
// test` runs the seeds; `go test -fuzz FuzzBalancer ./l4` explores.
func FuzzBalancer(f *testing.F) {
	b := newFuzzBed(f)
	for _, s := range balancerSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) { b.check(t, in) })
}

// TestBalancerMutations is a bounded, deterministic fuzz run inside the
// normal suite: 3000 mutations of the seeds, reaching every verdict and
// both forms of XDP_TX.
func TestBalancerMutations(t *testing.T) {
	b := newFuzzBed(t)
	rnd := rand.New(rand.NewPCG(3, 4))
	seeds := balancerSeeds(t)
	seen := map[uint32]int{}
	for i := 0; i < 3000; i++ {
		seen[b.check(t, scramble(rnd, seeds[i%len(seeds)]))]++
	}
	t.Logf("tx %d (l2 dsr %d), pass %d, drop %d", seen[xdpTx], b.l2seen, seen[xdpPass], seen[xdpDrop])
	for _, v := range []uint32{xdpTx, xdpPass, xdpDrop} {
		if seen[v] == 0 {
			t.Errorf("no mutation ended with %s", verdictName(v))
		}
	}
	if b.l2seen == 0 || b.l2seen == seen[xdpTx] {
		t.Errorf("%d of %d XDP_TX were L2 DSR: want both forms", b.l2seen, seen[xdpTx])
	}
}

// scramble returns a copy of b with a few random edits, mostly in the
// headers, and sometimes cut short or extended.
func scramble(rnd *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	for n := 1 + rnd.IntN(3); n > 0 && len(out) > 0; n-- {
		i := rnd.IntN(min(len(out), 14+40+20))
		out[i] = byte(rnd.Uint32())
	}
	switch rnd.IntN(6) {
	case 0:
		out = out[:rnd.IntN(len(out)+1)]
	case 1:
		out = append(out, make([]byte, rnd.IntN(32))...)
	}
	return out
}
