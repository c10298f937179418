package l4

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// testM is a small prime table size, so tables are cheap and every slot
// can be reasoned about.
const testM = 31

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load XDP programs (CI runs the kernel tests as root)")
	}
}

// onCPU pins the calling goroutine's thread to a CPU until the returned
// function runs.
func onCPU(t testing.TB, cpu int) func() {
	t.Helper()
	runtime.LockOSThread()
	var old, one unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &old))
	one.Set(cpu)
	require.NoError(t, unix.SchedSetaffinity(0, &one))
	return func() {
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		}
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, mod func(*Config)) *Dataplane {
	t.Helper()
	requireRoot(t)
	cfg := Config{
		MaxVIPs: 32, MaxBackends: 64, ConnEntries: 4096, TableSize: testM, GUEPort: testGUEPort,
		OuterSrcV4: lbSrcV4, OuterSrcV6: lbSrcV6, SrcMAC: lbMAC, NextHopMAC: nextHopMAC,
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := Open(cfg, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	return d
}

// runProg runs the live program once on in and returns verdict and output.
// It runs on CPU 0: the connection table is per CPU, as flows are on a NIC.
func runProg(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	return runProgOn(t, 0, prog, in)
}

func runProgOn(t testing.TB, cpu int, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	defer onCPU(t, cpu)()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
	v, err := prog.Run(opts)
	require.NoError(t, err)
	return v, opts.DataOut
}

// ring builds a table of size testM cycling through ids, starting at shift.
func ring(ids []BackendID, shift int) []BackendID {
	t := make([]BackendID, testM)
	for i := range t {
		t[i] = ids[(i+shift)%len(ids)]
	}
	return t
}

func upsertBackends(t testing.TB, d *Dataplane, addrs ...string) []BackendID {
	t.Helper()
	ids := make([]BackendID, len(addrs))
	for i, a := range addrs {
		id, err := d.UpsertBackend(netip.MustParseAddr(a))
		require.NoError(t, err)
		ids[i] = id
	}
	return ids
}

func verdictName(v uint32) string {
	return [...]string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}[v]
}

// step is one fixture row. Rows run in order against one Dataplane, because
// connection-table cases depend on what earlier packets left behind.
type step struct {
	name    string
	before  func(t *testing.T)
	p       pkt                    // packet, built with gopacket...
	raw     func(in []byte) []byte // ...optionally damaged after building
	verdict uint32
	to      func() netip.Addr // backend for XDP_TX
	vip     VIP               // counted VIP for XDP_TX
	reasons []Counter         // reason counters this packet bumps
	tci     uint16            // XDP_TX of a tagged frame: the tag the output keeps
	gue     bool              // XDP_TX of a GUE VIP's packet
}

func TestFixtures(t *testing.T) {
	d := openTest(t, nil)
	prog := d.Program()

	b4 := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	b6 := upsertBackends(t, d, "fd01::1", "fd01::2", "fd01::3")
	// The mixed-family and GUE VIPs' own IPv4 hosts (b4's get deleted below).
	b4x := upsertBackends(t, d, "192.168.2.1", "192.168.2.2")
	addrOf := d.Backends()

	vipTCP4 := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	vipUDP4 := VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}
	vipTCP6 := VIP{netip.MustParseAddr("2001:db8::10"), 80, TCP}
	vipUDP6 := VIP{netip.MustParseAddr("2001:db8::10"), 53, UDP}
	vipAny4 := VIP{netip.MustParseAddr("203.0.113.20"), 0, TCP}
	vipEmpty := VIP{netip.MustParseAddr("203.0.113.30"), 80, TCP}
	vipZero := VIP{netip.MustParseAddr("203.0.113.31"), 80, TCP}
	vip4in6 := VIP{netip.MustParseAddr("203.0.113.40"), 80, TCP}
	vip6in4 := VIP{netip.MustParseAddr("2001:db8::40"), 80, TCP}
	vipGUE4 := VIP{netip.MustParseAddr("203.0.113.50"), 80, TCP}
	vipGUE6 := VIP{netip.MustParseAddr("2001:db8::50"), 53, UDP}
	vipGUE4in6 := VIP{netip.MustParseAddr("203.0.113.51"), 80, TCP}
	vipGUE6in4 := VIP{netip.MustParseAddr("2001:db8::51"), 80, TCP}

	tables := map[VIP][]BackendID{
		vipTCP4: ring(b4, 0), vipUDP4: ring(b4, 0), vipTCP6: ring(b6, 0), vipUDP6: ring(b6, 0),
		vipAny4: ring(b4, 0), vipZero: make([]BackendID, testM),
		vip4in6: ring(b6, 0), vip6in4: ring(b4x, 0),
		vipGUE4: ring(b4x, 0), vipGUE6: ring(b6, 0), vipGUE4in6: ring(b6, 0), vipGUE6in4: ring(b4x, 0),
	}
	for _, v := range []VIP{vipTCP4, vipUDP4, vipTCP6, vipUDP6, vipAny4, vipEmpty, vipZero, vip4in6, vip6in4} {
		require.NoError(t, d.UpsertVIP(v))
		if tbl, ok := tables[v]; ok {
			require.NoError(t, d.InstallTable(v, tbl))
		}
	}
	for _, v := range []VIP{vipGUE4, vipGUE6, vipGUE4in6, vipGUE6in4} {
		require.NoError(t, d.UpsertVIP(v, WithMode(ModeGUE)))
		if tbl, ok := tables[v]; ok {
			require.NoError(t, d.InstallTable(v, tbl))
		}
	}
	install := func(v VIP, tbl []BackendID) {
		require.NoError(t, d.InstallTable(v, tbl))
		tables[v] = tbl
	}
	// pick is the backend the table installed now gives p: slot = FlowHash % M.
	pick := func(v VIP, p pkt) netip.Addr {
		slot := FlowHash(p.src, p.dst.Port(), p.proto) % testM
		return addrOf[tables[v][slot]]
	}
	// fixed freezes pick's answer at the time the row's closure runs first.
	var (
		c1TCP4  = tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
		c1Ack4  = tcpACK("198.51.100.1:40001", "203.0.113.10:80")
		c2Ack4  = tcpACK("198.51.100.2:40002", "203.0.113.10:80")
		c1TCP6  = tcpSYN("[2001:db8:c::1]:40001", "[2001:db8::10]:80")
		c1Ack6  = tcpACK("[2001:db8:c::1]:40001", "[2001:db8::10]:80")
		c1UDP4  = udp("198.51.100.1:5353", "203.0.113.10:53")
		c1UDP6  = udp("[2001:db8:c::1]:5353", "[2001:db8::10]:53")
		c3TCP4  = tcpSYN("198.51.100.3:40003", "203.0.113.10:80")
		c3Ack4  = tcpACK("198.51.100.3:40003", "203.0.113.10:80")
		c9TCP4  = tcpSYN("198.51.100.9:40009", "203.0.113.10:80")
		c10TCP4 = tcpSYN("198.51.100.10:40010", "203.0.113.10:80")
		c10Ack4 = tcpACK("198.51.100.10:40010", "203.0.113.10:80")
		c11UDP4 = udp("198.51.100.11:5300", "203.0.113.10:53")
	)
	var c10Before netip.Addr
	var c1Before, c3Before, udp4Before, udp6Before netip.Addr
	var reused BackendID

	reason := func(cs ...Counter) []Counter { return cs }
	steps := []step{
		{name: "tcp4 syn takes the table", p: c1TCP4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { c1Before = pick(vipTCP4, c1TCP4); return c1Before }, reasons: reason(CounterConnMissSYN)},
		{name: "tcp4 non-syn hits conntrack", p: c1Ack4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { return c1Before }, reasons: reason(CounterConnHit)},
		{name: "tcp4 non-syn without entry takes the table", p: c2Ack4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { return pick(vipTCP4, c2Ack4) }, reasons: reason(CounterConnMissNonSYN)},
		{name: "tcp4 conntrack survives a table swap that moves its slot",
			before: func(t *testing.T) {
				install(vipTCP4, ring(b4, 1))
				require.NotEqual(t, c1Before, pick(vipTCP4, c1Ack4), "the swap must move the flow's slot")
			},
			p: c1Ack4, verdict: xdpTx, vip: vipTCP4, to: func() netip.Addr { return c1Before }, reasons: reason(CounterConnHit)},
		{name: "tcp4 syn after the swap takes the new table", p: c1TCP4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { return pick(vipTCP4, c1TCP4) }, reasons: reason(CounterConnMissSYN)},
		{name: "tcp4 non-syn follows the rewritten entry", p: c1Ack4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { return pick(vipTCP4, c1Ack4) }, reasons: reason(CounterConnHit)},
		{name: "tcp6 syn takes the table", p: c1TCP6, verdict: xdpTx, vip: vipTCP6,
			to: func() netip.Addr { return pick(vipTCP6, c1TCP6) }, reasons: reason(CounterConnMissSYN)},
		{name: "tcp6 non-syn hits conntrack across a swap",
			before: func(t *testing.T) { install(vipTCP6, ring(b6, 1)) },
			p:      c1Ack6, verdict: xdpTx, vip: vipTCP6,
			to: func() netip.Addr { return addrOf[ring(b6, 0)[FlowHash(c1Ack6.src, 80, TCP)%testM]] }, reasons: reason(CounterConnHit)},
		{name: "udp4 first datagram takes the table", p: c1UDP4, verdict: xdpTx, vip: vipUDP4,
			to: func() netip.Addr { udp4Before = pick(vipUDP4, c1UDP4); return udp4Before }, reasons: reason(CounterConnMissNonSYN)},
		{name: "udp4 next datagram hits conntrack across a swap",
			before: func(t *testing.T) { install(vipUDP4, ring(b4, 1)) },
			p:      c1UDP4, verdict: xdpTx, vip: vipUDP4, to: func() netip.Addr { return udp4Before }, reasons: reason(CounterConnHit)},
		{name: "udp6 first datagram takes the table", p: c1UDP6, verdict: xdpTx, vip: vipUDP6,
			to: func() netip.Addr { udp6Before = pick(vipUDP6, c1UDP6); return udp6Before }, reasons: reason(CounterConnMissNonSYN)},
		{name: "udp6 next datagram hits conntrack across a swap",
			before: func(t *testing.T) { install(vipUDP6, ring(b6, 2)) },
			p:      c1UDP6, verdict: xdpTx, vip: vipUDP6, to: func() netip.Addr { return udp6Before }, reasons: reason(CounterConnHit)},
		{name: "tos and df are copied to the outer header",
			p:       pkt{src: netip.MustParseAddrPort("198.51.100.7:40007"), dst: netip.MustParseAddrPort("203.0.113.10:80"), proto: TCP, syn: true, tos: 0xb8, df: true},
			verdict: xdpTx, vip: vipTCP4, reasons: reason(CounterConnMissSYN),
			to: func() netip.Addr {
				return pick(vipTCP4, pkt{src: netip.MustParseAddrPort("198.51.100.7:40007"), dst: netip.MustParseAddrPort("203.0.113.10:80"), proto: TCP})
			}},
		{name: "port-wildcard vip takes any port", p: tcpSYN("198.51.100.1:40001", "203.0.113.20:8443"), verdict: xdpTx, vip: vipAny4,
			to: func() netip.Addr { return pick(vipAny4, tcpSYN("198.51.100.1:40001", "203.0.113.20:8443")) }, reasons: reason(CounterConnMissSYN)},
		{name: "port-wildcard vip does not take another protocol", p: udp("198.51.100.1:40001", "203.0.113.20:8443"),
			verdict: xdpPass, reasons: reason(CounterNotVIP)},
		{name: "non-vip address passes", p: tcpSYN("198.51.100.1:40001", "203.0.113.99:80"), verdict: xdpPass, reasons: reason(CounterNotVIP)},
		{name: "vip address on another port passes", p: tcpSYN("198.51.100.1:40001", "203.0.113.10:81"), verdict: xdpPass, reasons: reason(CounterNotVIP)},
		{name: "ipv6 non-vip passes", p: udp("[2001:db8:c::1]:5353", "[2001:db8::99]:53"), verdict: xdpPass, reasons: reason(CounterNotVIP)},
		{name: "ipv4 first fragment to a vip is dropped", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterFragment),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+6] |= 0x20 }) }},
		{name: "ipv4 later fragment to a vip is dropped", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterFragment),
			raw: func(b []byte) []byte { return ipv4Fragment(b[:14+20+8], 0x0003) }},
		{name: "ipv4 fragment to another address passes", p: tcpACK("198.51.100.1:40001", "203.0.113.99:80"), verdict: xdpPass, reasons: reason(CounterNotVIP),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+6] |= 0x20 }) }},
		{name: "ipv6 fragment to a vip is dropped", p: c1Ack6, verdict: xdpDrop, reasons: reason(CounterFragment),
			raw: ipv6Fragment},
		{name: "ipv6 fragment to another address passes", p: tcpACK("[2001:db8:c::1]:40001", "[2001:db8::99]:80"), verdict: xdpPass, reasons: reason(CounterNotVIP),
			raw: ipv6Fragment},
		{name: "icmp passes", p: c1Ack4, verdict: xdpPass, reasons: reason(CounterOtherL4),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+9] = 1 }) }},
		{name: "ipv6 extension header passes", p: c1Ack6, verdict: xdpPass, reasons: reason(CounterOtherL4),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+6] = 0 }) }},
		{name: "802.1Q tag cut short passes", p: c1Ack4, verdict: xdpPass, reasons: reason(CounterShortFrame),
			raw: func(b []byte) []byte { return vlanTag(b, 100)[:16] }},
		{name: "truncated: ethernet only", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return b[:14] }},
		{name: "truncated: ipv4 header", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return b[:14+12] }},
		{name: "truncated: tcp header", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte {
				return mutate(b[:14+20+10], func(b []byte) { binary.BigEndian.PutUint16(b[14+2:], 30) })
			}},
		{name: "truncated: udp header", p: c1UDP4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte {
				return mutate(b[:14+20+4], func(b []byte) { binary.BigEndian.PutUint16(b[14+2:], 24) })
			}},
		{name: "truncated: ipv6 header", p: c1Ack6, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return b[:14+30] }},
		{name: "truncated: tcp header over ipv6", p: c1Ack6, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte {
				return mutate(b[:14+40+12], func(b []byte) { binary.BigEndian.PutUint16(b[14+4:], 12) })
			}},
		{name: "bogus: ihl 4", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14] = 0x44 }) }},
		{name: "bogus: ihl 15 beyond total length", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte {
				return mutate(b, func(b []byte) { b[14] = 0x4f; binary.BigEndian.PutUint16(b[14+2:], 56) })
			}},
		{name: "bogus: ipv4 total length beyond the frame", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { binary.BigEndian.PutUint16(b[14+2:], 1400) }) }},
		{name: "bogus: ipv4 total length below the header", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { binary.BigEndian.PutUint16(b[14+2:], 12) }) }},
		{name: "bogus: ip version 5", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14] = 0x55 }) }},
		{name: "bogus: ipv6 payload length beyond the frame", p: c1Ack6, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { binary.BigEndian.PutUint16(b[14+4:], 1400) }) }},
		{name: "bogus: tcp data offset 4", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+20+12] = 0x40 }) }},
		{name: "bogus: tcp data offset beyond the packet", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { b[14+20+12] = 0xf0 }) }},
		{name: "bogus: udp length 7", p: c1UDP4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(b, func(b []byte) { binary.BigEndian.PutUint16(b[14+20+4:], 7) }) }},
		{name: "bogus: udp length beyond the ip payload", p: c1UDP6, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte {
				return mutate(b, func(b []byte) { binary.BigEndian.PutUint16(b[14+40+4:], 100) })
			}},
		{name: "vip without a table drops", p: tcpSYN("198.51.100.1:40001", "203.0.113.30:80"), verdict: xdpDrop,
			reasons: reason(CounterConnMissSYN, CounterNoBackend)},
		{name: "table of zeros drops", p: tcpSYN("198.51.100.1:40001", "203.0.113.31:80"), verdict: xdpDrop,
			reasons: reason(CounterConnMissSYN, CounterNoBackend)},
		{name: "ipv4 client, ipv6 backend: 4-in-6", p: tcpSYN("198.51.100.1:40001", "203.0.113.40:80"), verdict: xdpTx, vip: vip4in6,
			to: func() netip.Addr { return pick(vip4in6, tcpSYN("198.51.100.1:40001", "203.0.113.40:80")) }, reasons: reason(CounterConnMissSYN)},
		{name: "4-in-6 established flow hits conntrack", p: tcpACK("198.51.100.1:40001", "203.0.113.40:80"), verdict: xdpTx, vip: vip4in6,
			to: func() netip.Addr { return pick(vip4in6, tcpSYN("198.51.100.1:40001", "203.0.113.40:80")) }, reasons: reason(CounterConnHit)},
		{name: "ipv6 client, ipv4 backend: 6-in-4 (DF set)", p: tcpSYN("[2001:db8:c::1]:40001", "[2001:db8::40]:80"), verdict: xdpTx, vip: vip6in4,
			to: func() netip.Addr { return pick(vip6in4, tcpSYN("[2001:db8:c::1]:40001", "[2001:db8::40]:80")) }, reasons: reason(CounterConnMissSYN)},
		{name: "6-in-4 with a traffic class", p: func() pkt {
			p := udp("[2001:db8:c::2]:5353", "[2001:db8::40]:80")
			p.proto = TCP
			p.tos = 0xb8
			return p
		}(),
			verdict: xdpTx, vip: vip6in4, reasons: reason(CounterConnMissNonSYN),
			to: func() netip.Addr {
				p := udp("[2001:db8:c::2]:5353", "[2001:db8::40]:80")
				p.proto = TCP
				return pick(vip6in4, p)
			}},
		{name: "gue 4-in-4", p: tcpSYN("198.51.100.1:40001", "203.0.113.50:80"), verdict: xdpTx, vip: vipGUE4, gue: true,
			to: func() netip.Addr { return pick(vipGUE4, tcpSYN("198.51.100.1:40001", "203.0.113.50:80")) }, reasons: reason(CounterConnMissSYN)},
		{name: "gue 4-in-4 established, DF copied", p: func() pkt { p := tcpACK("198.51.100.1:40001", "203.0.113.50:80"); p.df = true; return p }(),
			verdict: xdpTx, vip: vipGUE4, gue: true,
			to: func() netip.Addr { return pick(vipGUE4, tcpSYN("198.51.100.1:40001", "203.0.113.50:80")) }, reasons: reason(CounterConnHit)},
		{name: "gue 6-in-6 udp", p: udp("[2001:db8:c::1]:5353", "[2001:db8::50]:53"), verdict: xdpTx, vip: vipGUE6, gue: true,
			to: func() netip.Addr { return pick(vipGUE6, udp("[2001:db8:c::1]:5353", "[2001:db8::50]:53")) }, reasons: reason(CounterConnMissNonSYN)},
		{name: "gue 4-in-6", p: tcpSYN("198.51.100.7:40007", "203.0.113.51:80"), verdict: xdpTx, vip: vipGUE4in6, gue: true,
			to: func() netip.Addr { return pick(vipGUE4in6, tcpSYN("198.51.100.7:40007", "203.0.113.51:80")) }, reasons: reason(CounterConnMissSYN)},
		{name: "gue 6-in-4", p: tcpSYN("[2001:db8:c::7]:40007", "[2001:db8::51]:80"), verdict: xdpTx, vip: vipGUE6in4, gue: true,
			to: func() netip.Addr { return pick(vipGUE6in4, tcpSYN("[2001:db8:c::7]:40007", "[2001:db8::51]:80")) }, reasons: reason(CounterConnMissSYN)},
		{name: "setup: a flow on the backend about to be deleted", p: c3TCP4, verdict: xdpTx, vip: vipTCP4,
			to: func() netip.Addr { c3Before = pick(vipTCP4, c3TCP4); return c3Before }, reasons: reason(CounterConnMissSYN)},
		{name: "deleted backend is not chosen again, even when its id is reused",
			before: func(t *testing.T) {
				gone := d.byAddr[c3Before]
				var others []BackendID
				for _, id := range b4 {
					if id != gone {
						others = append(others, id)
					}
				}
				err := d.DeleteBackend(gone)
				require.ErrorIs(t, err, ErrBackendInUse, "a backend in a table cannot be deleted")
				for _, v := range []VIP{vipTCP4, vipUDP4, vipAny4} {
					install(v, ring(others, 0))
				}
				require.NoError(t, d.DeleteBackend(gone))
				// The id comes back for another host; the flow's entry
				// must not follow it there.
				reused = upsertBackends(t, d, "192.168.1.99")[0]
				require.Equal(t, gone, reused, "the freed id is the lowest free one")
				addrOf = d.Backends()
			},
			p: c3Ack4, verdict: xdpTx, vip: vipTCP4, reasons: reason(CounterConnMissNonSYN),
			to: func() netip.Addr {
				a := pick(vipTCP4, c3Ack4)
				require.NotEqual(t, c3Before, a)
				require.NotEqual(t, netip.MustParseAddr("192.168.1.99"), a)
				return a
			}},
		{name: "arp passes", verdict: xdpPass, reasons: reason(CounterNotIP), raw: func([]byte) []byte { return arp(t) }},
		{name: "802.1Q-tagged arp passes", verdict: xdpPass, reasons: reason(CounterNotIP), raw: func([]byte) []byte { return vlanTag(arp(t), 100) }},
		{name: "ipv4 with options is forwarded unchanged", p: c9TCP4, verdict: xdpTx, vip: vipTCP4, reasons: reason(CounterConnMissSYN),
			raw: func(b []byte) []byte {
				// Four option bytes (NOP NOP NOP EOL) after the header: the
				// ports are found past IHL*4 and the inner packet keeps them.
				out := append(append(append([]byte(nil), b[:14+20]...), 1, 1, 1, 0), b[14+20:]...)
				out[14] = 0x46
				binary.BigEndian.PutUint16(out[14+2:], binary.BigEndian.Uint16(out[14+2:])+4)
				return out
			},
			to: func() netip.Addr { return pick(vipTCP4, c9TCP4) }},
		{name: "802.1Q-tagged tcp4 syn to a vip is forwarded, tag kept", p: c10TCP4, verdict: xdpTx, vip: vipTCP4, reasons: reason(CounterConnMissSYN),
			raw: func(b []byte) []byte { return vlanTag(b, 0x2064) }, tci: 0x2064,
			to: func() netip.Addr { c10Before = pick(vipTCP4, c10TCP4); return c10Before }},
		{name: "802.1Q-tagged tcp4 of the same flow hits conntrack, tag kept", p: c10Ack4, verdict: xdpTx, vip: vipTCP4, reasons: reason(CounterConnHit),
			raw: func(b []byte) []byte { return vlanTag(b, 0x2064) }, tci: 0x2064,
			to: func() netip.Addr { return c10Before }},
		{name: "802.1Q-tagged tcp6 syn to a vip is forwarded, tag kept", p: c1TCP6, verdict: xdpTx, vip: vipTCP6, reasons: reason(CounterConnMissSYN),
			raw: func(b []byte) []byte { return vlanTag(b, 0x0fff) }, tci: 0x0fff,
			to: func() netip.Addr { return pick(vipTCP6, c1TCP6) }},
		{name: "802.1Q-tagged udp4 to a vip is forwarded, tag kept", p: c11UDP4, verdict: xdpTx, vip: vipUDP4, reasons: reason(CounterConnMissNonSYN),
			raw: func(b []byte) []byte { return vlanTag(b, 7) }, tci: 7,
			to: func() netip.Addr { return pick(vipUDP4, c11UDP4) }},
		{name: "802.1Q-tagged non-vip passes untouched", p: tcpSYN("198.51.100.1:40001", "203.0.113.99:80"), verdict: xdpPass, reasons: reason(CounterNotVIP),
			raw: func(b []byte) []byte { return vlanTag(b, 100) }},
		{name: "802.1Q-tagged malformed ipv4 is dropped", p: c1Ack4, verdict: xdpDrop, reasons: reason(CounterMalformed),
			raw: func(b []byte) []byte { return mutate(vlanTag(b, 100), func(b []byte) { b[18] = 0x44 }) }},
		{name: "QinQ (two 802.1Q tags) passes", p: c1Ack4, verdict: xdpPass, reasons: reason(CounterVLANStacked),
			raw: func(b []byte) []byte { return vlanTag(vlanTag(b, 100), 200) }},
		{name: "802.1ad service tag passes", p: c1Ack4, verdict: xdpPass, reasons: reason(CounterVLANStacked),
			raw: func(b []byte) []byte {
				return mutate(vlanTag(vlanTag(b, 100), 200), func(b []byte) { b[12], b[13] = 0x88, 0xa8 })
			}},
	}

	tally := map[Counter]Count{}
	vipTally := map[VIP]VIPCount{}
	backendTally := map[netip.Addr]Count{}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			var in []byte
			if st.p.src.IsValid() {
				in = st.p.build(t)
			}
			if st.raw != nil {
				in = st.raw(in)
			}
			want := in
			var to netip.Addr
			if st.verdict == xdpTx {
				to = st.to()
				switch {
				case st.gue:
					want = encappedGUE(t, st.p, in, to)
				case st.tci != 0:
					want = vlanTag(encapped(t, st.p, vlanUntag(in), to), st.tci)
				default:
					want = encapped(t, st.p, in, to)
				}
			}
			verdict, out := runProg(t, prog, in)
			require.Equal(t, verdictName(st.verdict), verdictName(verdict))
			require.Equal(t, want, out, "output differs; got:\n%s\nwant:\n%s", hex.Dump(out), hex.Dump(want))

			n := uint64(len(in))
			for _, c := range append(st.reasons, CounterXDPAborted+Counter(verdict)) {
				tally[c] = Count{tally[c].Packets + 1, tally[c].Bytes + n}
			}
			if verdict == xdpTx {
				vc := vipTally[st.vip]
				vc.Packets++
				vc.Bytes += n
				for _, c := range st.reasons {
					if c == CounterConnMissSYN || c == CounterConnMissNonSYN {
						vc.NewFlows++
					}
				}
				vipTally[st.vip] = vc
				bc := backendTally[to]
				backendTally[to] = Count{bc.Packets + 1, bc.Bytes + n}
			}
		})
	}

	t.Run("counters after the suite", func(t *testing.T) {
		s, err := d.Stats()
		require.NoError(t, err)
		for _, c := range AllCounters() {
			assert.Equal(t, tally[c], s.Counters[c], "counter %s", c)
		}
		for _, v := range d.VIPs() {
			assert.Equal(t, vipTally[v], s.VIPs[v], "vip %s", v)
		}
		addrOf = d.Backends()
		for id, a := range addrOf {
			if id == reused {
				assert.Zero(t, s.Backends[id], "a reused id starts from zero")
				continue
			}
			assert.Equal(t, backendTally[a], s.Backends[id], "backend %s", a)
		}
	})
}

// TestHashMatchesKernel checks that FlowHash (Go) and flow_hash (BPF) agree:
// with one distinct backend per slot, the backend the kernel picks names the
// slot it computed.
func TestHashMatchesKernel(t *testing.T) {
	d := openTest(t, func(c *Config) { c.MaxBackends = 2*testM + 1 })
	ids4 := make([]BackendID, testM)
	ids6 := make([]BackendID, testM)
	for i := range testM {
		ids4[i] = upsertBackends(t, d, netip.AddrFrom4([4]byte{192, 168, 2, byte(i + 1)}).String())[0]
		ids6[i] = upsertBackends(t, d, netip.AddrFrom16([16]byte{0xfd, 2, 15: byte(i + 1)}).String())[0]
	}
	tests := []struct {
		name string
		vip  VIP
		ids  []BackendID
		src  func(i int) netip.AddrPort
	}{
		{"ipv4 tcp", VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}, ids4,
			func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(1024+i*7))
			}},
		{"ipv4 udp", VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}, ids4,
			func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), 3, 4}), uint16(40000+i))
			}},
		{"ipv6 tcp", VIP{netip.MustParseAddr("2001:db8::10"), 443, TCP}, ids6,
			func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 7: byte(i), 14: byte(i >> 8), 15: byte(i)}), uint16(50000+i))
			}},
		{"ipv6 udp", VIP{netip.MustParseAddr("2001:db8::10"), 53, UDP}, ids6,
			func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 5: byte(i), 15: 9}), uint16(3000+i*13))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, d.UpsertVIP(tt.vip))
			require.NoError(t, d.InstallTable(tt.vip, tt.ids))
			addrs := d.Backends()
			for i := range 200 {
				src := tt.src(i)
				id, addr, err := d.Lookup(t.Context(), Flow{Src: src, Dst: netip.AddrPortFrom(tt.vip.Addr, tt.vip.Port), Proto: tt.vip.Proto})
				require.NoError(t, err)
				want := tt.ids[FlowHash(src, tt.vip.Port, tt.vip.Proto)%testM]
				require.Equal(t, want, id, "flow %s", src)
				assert.Equal(t, addrs[want], addr)
			}
		})
	}
}
