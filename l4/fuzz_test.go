package l4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
)

// fuzzBed is a balancer with a few VIPs of both families and protocols,
// one of them port-wildcard, and the backends each may go to.
type fuzzBed struct {
	d        *Dataplane
	backends map[VIP]map[netip.Addr]bool
}

func newFuzzBed(t testing.TB) *fuzzBed {
	d := openTest(t, nil)
	b := &fuzzBed{d: d, backends: map[VIP]map[netip.Addr]bool{}}
	for _, v := range []struct {
		vip      VIP
		backends []string
	}{
		{VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}, []string{"192.168.1.1", "192.168.1.2", "192.168.1.3"}},
		{VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}, []string{"192.168.1.4"}},
		{VIP{netip.MustParseAddr("203.0.113.20"), 0, TCP}, []string{"192.168.1.5", "192.168.1.6"}},
		{VIP{netip.MustParseAddr("2001:db8::10"), 443, TCP}, []string{"fd00::11", "fd00::12"}},
		{VIP{netip.MustParseAddr("2001:db8::10"), 443, UDP}, []string{"fd00::13"}},
	} {
		require.NoError(t, d.UpsertVIP(v.vip))
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
	} {
		out = append(out, p.build(t))
	}
	return append(out, arp(t), make([]byte, 14))
}

// check runs one frame through the balancer and checks what must hold for every input:
// never XDP_ABORTED; XDP_PASS leaves the bytes untouched; XDP_TX sends the
// input's IP packet, unchanged, inside an outer header addressed to a
// backend of the VIP the inner packet is addressed to.
func (b *fuzzBed) check(t testing.TB, in []byte) uint32 {
	t.Helper()
	if len(in) > 3000 {
		in = in[:3000] // one page at most: the program has no xdp.frags
	}
	opts := &ebpf.RunOptions{Data: append([]byte(nil), in...), DataOut: make([]byte, len(in)+256)}
	verdict, err := b.d.Program().Run(opts)
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
		dst, inner, ok := outerOf(out)
		if !ok {
			fail("XDP_TX of a frame that is not IP-in-IP")
		}
		if !bytes.Equal(inner, in[14:]) {
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
	default:
		fail("verdict %d", verdict)
	}
	return verdict
}

// outerOf parses the outer header of an IP-in-IP frame: its destination and
// what follows it.
func outerOf(f []byte) (netip.Addr, []byte, bool) {
	if len(f) < 14 {
		return netip.Addr{}, nil, false
	}
	ip := f[14:]
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(ip) < 20 || ip[0] != 0x45 || (ip[9] != 4 && ip[9] != 41) {
			return netip.Addr{}, nil, false
		}
		return netip.AddrFrom4([4]byte(ip[16:20])), ip[20:], true
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 || (ip[6] != 4 && ip[6] != 41) {
			return netip.Addr{}, nil, false
		}
		return netip.AddrFrom16([16]byte(ip[24:40])), ip[40:], true
	}
	return netip.Addr{}, nil, false
}

// vipOf reads the destination (address, port, protocol) of an IP packet.
func vipOf(p []byte) (VIP, bool) {
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
// normal suite: 3000 mutations of the seeds, reaching every verdict.
func TestBalancerMutations(t *testing.T) {
	b := newFuzzBed(t)
	rnd := rand.New(rand.NewPCG(3, 4))
	seeds := balancerSeeds(t)
	seen := map[uint32]int{}
	for i := 0; i < 3000; i++ {
		seen[b.check(t, scramble(rnd, seeds[i%len(seeds)]))]++
	}
	t.Logf("tx %d, pass %d, drop %d", seen[xdpTx], seen[xdpPass], seen[xdpDrop])
	for _, v := range []uint32{xdpTx, xdpPass, xdpDrop} {
		if seen[v] == 0 {
			t.Errorf("no mutation ended with %s", verdictName(v))
		}
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
