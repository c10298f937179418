package l4

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUDPEntryExpiry(t *testing.T) {
	tests := []struct {
		name     string
		timeout  string
		wantSame bool
		reason   Counter
	}{
		{"fresh entry keeps the flow", "1h", true, CounterConnHit},
		// A 1ns timeout makes every entry stale by the next packet: the
		// expiry path without sleeping in a test.
		{"idle entry expires and the flow takes the table", "1ns", false, CounterConnExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := mustDuration(t, tt.timeout)
			d := openTest(t, func(c *Config) { c.UDPTimeout = timeout })
			ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2")
			addrs := d.Backends()
			vip := VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}
			require.NoError(t, d.UpsertVIP(vip))
			require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
			p := udp("198.51.100.1:5353", "203.0.113.10:53")
			in := p.build(t)
			slot := FlowHash(p.src, 53, UDP) % testM

			v, out := runProg(t, d.Program(), in)
			require.Equal(t, uint32(xdpTx), v)
			first := addrs[ring(ids, 0)[slot]]
			require.Equal(t, encapped(t, p, in, first), out)

			require.NoError(t, d.InstallTable(vip, ring(ids, 1)))
			v, out = runProg(t, d.Program(), in)
			require.Equal(t, uint32(xdpTx), v)
			want := addrs[ring(ids, 1)[slot]]
			if tt.wantSame {
				want = first
			}
			assert.Equal(t, encapped(t, p, in, want), out)
			s, err := d.Stats()
			require.NoError(t, err)
			assert.Equal(t, uint64(1), s.Counters[tt.reason].Packets)
		})
	}
}

// TestTCPEntryAfterClose: a TCP flow keeps its connection entry's host
// through the client's FIN or RST and for TCPCloseTimeout after it, then
// takes the table. Without the expiry an entry outlived its connection: when
// an edge host failed, ECMP moved to the survivors connections that had
// begun on it, and one whose client port an earlier connection through a
// survivor had used followed that connection's stale entry to another (in
// TestShop, a dead) L7 host, and hung.
func TestTCPEntryAfterClose(t *testing.T) {
	tests := []struct {
		name    string
		timeout string
		close   func(pkt) pkt // the client's closing packet, nil for none
		table   bool          // the next packet takes the new table
	}{
		{"open connection keeps its host", "1ns", nil, false},
		{"after FIN within the close timeout", "1h", func(p pkt) pkt { p.fin = true; return p }, false},
		// A 1ns timeout makes the close stale by the next packet: the
		// expiry path without sleeping in a test.
		{"after FIN past the close timeout", "1ns", func(p pkt) pkt { p.fin = true; return p }, true},
		{"after RST past the close timeout", "1ns", func(p pkt) pkt { p.rst, p.ack, p.payload = true, false, nil; return p }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := mustDuration(t, tt.timeout)
			d := openTest(t, func(c *Config) { c.TCPCloseTimeout = timeout })
			ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2")
			addrs := d.Backends()
			vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
			require.NoError(t, d.UpsertVIP(vip))
			require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
			syn := tcpSYN("198.51.100.1:40000", "203.0.113.10:80")
			ack := tcpACK("198.51.100.1:40000", "203.0.113.10:80")
			slot := FlowHash(syn.src, 80, TCP) % testM
			first, next := addrs[ring(ids, 0)[slot]], addrs[ring(ids, 1)[slot]]
			require.NotEqual(t, first, next)

			in := syn.build(t)
			v, out := runProg(t, d.Program(), in)
			require.Equal(t, uint32(xdpTx), v)
			require.Equal(t, encapped(t, syn, in, first), out)
			// The table changes: from here on only the entry keeps the
			// flow on its host.
			require.NoError(t, d.InstallTable(vip, ring(ids, 1)))
			if tt.close != nil {
				c := tt.close(ack)
				in := c.build(t)
				v, out := runProg(t, d.Program(), in)
				require.Equal(t, uint32(xdpTx), v)
				assert.Equal(t, encapped(t, c, in, first), out, "the close itself goes to the connection's host")
			}
			in = ack.build(t)
			v, out = runProg(t, d.Program(), in)
			require.Equal(t, uint32(xdpTx), v)
			want, expired := first, uint64(0)
			if tt.table {
				want, expired = next, 1
			}
			assert.Equal(t, encapped(t, ack, in, want), out)
			s, err := d.Stats()
			require.NoError(t, err)
			assert.Equal(t, expired, s.Counters[CounterConnExpired].Packets)
		})
	}
}

func TestTooBig(t *testing.T) {
	d := openTest(t, func(c *Config) { c.MTU = 100 })
	ids := upsertBackends(t, d, "192.168.1.1")
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
	tests := []struct {
		name    string
		payload int
		verdict uint32
	}{
		{"fits after encapsulation", 100 - 20 - 40, xdpTx},
		{"one byte too many", 100 - 20 - 40 + 1, xdpDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
			p.payload = make([]byte, tt.payload)
			in := p.build(t)
			v, out := runProg(t, d.Program(), in)
			require.Equal(t, verdictName(tt.verdict), verdictName(v))
			if v == xdpDrop {
				assert.Equal(t, in, out)
			}
		})
	}
	s, err := d.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), s.Counters[CounterTooBig].Packets)
}

// TestLookupLeavesNoTrace: Lookup runs the dry-run twin, which must neither
// create connection entries nor count.
func TestLookupLeavesNoTrace(t *testing.T) {
	d := openTest(t, nil)
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
	src := netip.MustParseAddrPort("198.51.100.1:40001")
	flow := Flow{Src: src, Dst: netip.MustParseAddrPort("203.0.113.10:80"), Proto: TCP}

	before, err := d.Stats()
	require.NoError(t, err)
	id, addr, err := d.Lookup(t.Context(), flow)
	require.NoError(t, err)
	assert.Equal(t, ring(ids, 0)[FlowHash(src, 80, TCP)%testM], id)
	assert.Equal(t, d.Backends()[id], addr)
	flow.Established = true
	restore := onCPU(t, 0)
	_, _, err = d.Lookup(t.Context(), flow)
	restore()
	require.NoError(t, err)
	after, err := d.Stats()
	require.NoError(t, err)
	assert.Equal(t, before, after, "lookup must not count")
	assert.Zero(t, countEntries(t, d), "lookup must not create connection entries")

	// The live program does create one, proving the check above can fail.
	v, _ := runProg(t, d.Program(), tcpSYN(src.String(), "203.0.113.10:80").build(t))
	require.Equal(t, uint32(xdpTx), v)
	assert.Equal(t, 1, countEntries(t, d))
}

func countEntries(t *testing.T, d *Dataplane) int {
	t.Helper()
	var (
		k   uint32
		set xlbConnSet
		n   int
	)
	it := d.objs.ConnMap.Iterate()
	for it.Next(&k, &set) {
		for _, tag := range set.Tag {
			if tag != 0 {
				n++
			}
		}
	}
	require.NoError(t, it.Err())
	return n
}

func TestAPIErrors(t *testing.T) {
	d := openTest(t, func(c *Config) { c.MaxVIPs = 2; c.MaxBackends = 3 })
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.UpsertVIP(vip), "upsert is idempotent")
	a, err := d.UpsertBackend(netip.MustParseAddr("192.168.1.1"))
	require.NoError(t, err)
	again, err := d.UpsertBackend(netip.MustParseAddr("192.168.1.1"))
	require.NoError(t, err)
	require.Equal(t, a, again, "one id per address")
	_, err = d.UpsertBackend(netip.MustParseAddr("192.168.1.2"))
	require.NoError(t, err)

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"table of the wrong size", func() error { return d.InstallTable(vip, make([]BackendID, testM-1)) }, ErrBadTable},
		{"table of an unknown vip", func() error {
			return d.InstallTable(VIP{netip.MustParseAddr("203.0.113.11"), 80, TCP}, ring([]BackendID{a}, 0))
		}, ErrUnknownVIP},
		{"table naming an unknown backend", func() error { return d.InstallTable(vip, ring([]BackendID{a, 9}, 0)) }, ErrUnknownBackend},
		{"delete an unknown vip", func() error { return d.DeleteVIP(VIP{netip.MustParseAddr("203.0.113.11"), 80, TCP}) }, ErrUnknownVIP},
		{"delete an unknown backend", func() error { return d.DeleteBackend(7) }, ErrUnknownBackend},
		{"vip of another protocol", func() error { return d.UpsertVIP(VIP{netip.MustParseAddr("203.0.113.12"), 80, Proto(1)}) }, ErrInvalid},
		{"too many backends", func() error { _, err := d.UpsertBackend(netip.MustParseAddr("192.168.1.3")); return err }, ErrFull},
		{"too many vips", func() error {
			if err := d.UpsertVIP(VIP{netip.MustParseAddr("203.0.113.12"), 80, TCP}); err != nil {
				return err
			}
			return d.UpsertVIP(VIP{netip.MustParseAddr("203.0.113.13"), 80, TCP})
		}, ErrFull},
		{"lookup of a non-vip flow", func() error {
			_, _, err := d.Lookup(t.Context(), Flow{Src: netip.MustParseAddrPort("198.51.100.1:1"), Dst: netip.MustParseAddrPort("203.0.113.99:80"), Proto: TCP})
			return err
		}, ErrNotVIP},
		{"lookup of a vip without table", func() error {
			_, _, err := d.Lookup(t.Context(), Flow{Src: netip.MustParseAddrPort("198.51.100.1:1"), Dst: netip.MustParseAddrPort("203.0.113.10:80"), Proto: TCP})
			return err
		}, ErrNoBackend},
		{"attach to a missing interface", func() error { return d.Attach("xlbt-nosuch0", AttachGeneric) }, ErrNoInterface},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, tt.call(), tt.want)
		})
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	require.NoError(t, err)
	return d
}

// TestFlowChangesCPU: a flow's packets may reach the balancer on another CPU
// (RSS rehash, veth, generic XDP). The flow's one entry in the shared
// table is found from any CPU (hit_other_cpu once, when it moves), and a
// SYN replaces it for every CPU.
func TestFlowChangesCPU(t *testing.T) {
	requireRoot(t)
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	d := openTest(t, nil)
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	addrs := d.Backends()
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
	syn := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
	ack := tcpACK("198.51.100.1:40001", "203.0.113.10:80")
	slot := FlowHash(syn.src, 80, TCP) % testM
	oldB, newB := addrs[ring(ids, 0)[slot]], addrs[ring(ids, 1)[slot]]

	steps := []struct {
		name   string
		cpu    int
		p      pkt
		swap   int // install ring(ids, swap) first; -1: keep
		want   netip.Addr
		reason Counter
	}{
		{"syn on cpu 0", 0, syn, -1, oldB, CounterConnMissSYN},
		{"ack on cpu 1 after a swap finds cpu 0's entry", 1, ack, 1, oldB, CounterConnHitOtherCPU},
		{"next ack on cpu 1 is an ordinary hit", 1, ack, -1, oldB, CounterConnHit},
		{"a new syn with the same ports on cpu 0 takes the new table", 0, syn, -1, newB, CounterConnMissSYN},
		{"ack on cpu 1 no longer sees the old connection", 1, ack, -1, newB, CounterConnHitOtherCPU},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.swap >= 0 {
				require.NoError(t, d.InstallTable(vip, ring(ids, st.swap)))
			}
			before, err := d.Stats()
			require.NoError(t, err)
			in := st.p.build(t)
			v, out := runProgOn(t, st.cpu, d.Program(), in)
			require.Equal(t, uint32(xdpTx), v)
			assert.Equal(t, encapped(t, st.p, in, st.want), out)
			after, err := d.Stats()
			require.NoError(t, err)
			assert.Equal(t, before.Counters[st.reason].Packets+1, after.Counters[st.reason].Packets, "counter %s", st.reason)
		})
	}
}
