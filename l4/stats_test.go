package l4

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every slot of enum xlb_counter has a Go name, a kind and a label unique
// within its kind: a counter added in C without its Go entry fails here.
func TestCounterKinds(t *testing.T) {
	names := map[string]bool{}
	labels := map[CounterKind]map[string]bool{}
	verdicts := 0
	for _, c := range AllCounters() {
		name := c.String()
		require.NotEqual(t, fmt.Sprintf("counter%d", uint32(c)), name, "slot %d has no name in counterInfos", uint32(c))
		assert.False(t, names[name], "name %q twice", name)
		names[name] = true
		k := c.Kind()
		if labels[k] == nil {
			labels[k] = map[string]bool{}
		}
		assert.False(t, labels[k][c.Label()], "label %q twice in kind %s", c.Label(), k)
		labels[k][c.Label()] = true
		if k == KindVerdict {
			verdicts++
		}
	}
	assert.Equal(t, 5, verdicts, "one verdict counter per XDP action")

	tests := []struct {
		c     Counter
		kind  CounterKind
		label string
	}{
		{CounterNotVIP, KindReason, "not_vip"},
		{CounterTooBig, KindReason, "too_big"},
		{CounterConnHit, KindConn, "hit"},
		{CounterConnMissSYN, KindConn, "miss_syn"},
		{CounterConnHitOtherCPU, KindConn, "hit_other_cpu"},
		{CounterXDPAborted, KindVerdict, "aborted"},
		{CounterXDPTx, KindVerdict, "tx"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.kind, tt.c.Kind(), tt.c.String())
		assert.Equal(t, tt.label, tt.c.Label(), tt.c.String())
	}
	unknown := Counter(numCounters + 3)
	assert.Equal(t, KindReason, unknown.Kind())
	assert.Equal(t, unknown.String(), unknown.Label())
}

func TestCheckCPUs(t *testing.T) {
	tests := []struct {
		ncpu int
		ok   bool
	}{
		{1, true}, {2, true}, {maxCPUs, true},
		{maxCPUs + 1, false}, {4 * maxCPUs, false}, {0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.ncpu), func(t *testing.T) {
			err := checkCPUs(tt.ncpu)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			if tt.ncpu > maxCPUs {
				assert.ErrorIs(t, err, ErrUnsupportedHost)
				assert.ErrorContains(t, err, fmt.Sprintf("%d possible cpus", tt.ncpu))
				assert.ErrorContains(t, err, fmt.Sprintf("at most %d", maxCPUs))
			}
		})
	}
	assert.Equal(t, 128, maxCPUs, "XLB_MAX_CPUS, read from the generated object")
}

// TestPairCounters: a packet's main reason and its verdict are counted in
// one pair_stats_map slot, which Stats adds to both counters, whatever the
// verdict: a connection hit or a new flow dropped as too big (IPv4 without
// DF) is its reason plus too_big plus xdp_drop, as forwarded it is its
// reason plus xdp_tx. Every counter gets exactly its packets and bytes.
func TestPairCounters(t *testing.T) {
	const mtu = 1400
	d := openTest(t, func(c *Config) { c.MTU = mtu })
	ids := upsertBackends(t, d, "192.168.1.1")
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
	prog := d.Program()

	big := func(p pkt) pkt {
		p.payload = make([]byte, mtu-20-20-20+1) // one byte over once wrapped, no DF
		return p
	}
	syn := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
	ack := tcpACK("198.51.100.1:40001", "203.0.113.10:80")
	steps := []struct {
		name    string
		p       pkt
		raw     func([]byte) []byte
		verdict uint32
		want    []Counter // counters bumped by one packet each; the first is the pair's reason
	}{
		{"syn forwarded", syn, nil, xdpTx, []Counter{CounterConnMissSYN, CounterXDPTx}},
		{"ack hit forwarded", ack, nil, xdpTx, []Counter{CounterConnHit, CounterXDPTx}},
		{"ack hit too big dropped", big(ack), nil, xdpDrop, []Counter{CounterConnHit, CounterTooBig, CounterXDPDrop}},
		{"syn too big dropped", big(syn), nil, xdpDrop, []Counter{CounterConnMissSYN, CounterTooBig, CounterXDPDrop}},
		{"non-vip passed", tcpACK("198.51.100.1:40001", "203.0.113.99:80"), nil, xdpPass, []Counter{CounterNotVIP, CounterXDPPass}},
		{"malformed dropped", ack, func(b []byte) []byte { return b[:14+10] }, xdpDrop, []Counter{CounterMalformed, CounterXDPDrop}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			slot := uint32((int(st.want[0])+1)*pairActions + int(st.verdict))
			before, err := d.Stats()
			require.NoError(t, err)
			slotBefore, err := sumStat(d.objs.PairStatsMap, slot)
			require.NoError(t, err)
			in := st.p.build(t)
			if st.raw != nil {
				in = st.raw(in)
			}
			v, _ := runProg(t, prog, in)
			require.Equal(t, verdictName(st.verdict), verdictName(v))
			after, err := d.Stats()
			require.NoError(t, err)
			want := map[Counter]bool{}
			for _, c := range st.want {
				want[c] = true
			}
			for _, c := range AllCounters() {
				got := Count{after.Counters[c].Packets - before.Counters[c].Packets, after.Counters[c].Bytes - before.Counters[c].Bytes}
				if want[c] {
					assert.Equal(t, Count{1, uint64(len(in))}, got, "counter %s", c)
				} else {
					assert.Zero(t, got, "counter %s", c)
				}
			}
			slotAfter, err := sumStat(d.objs.PairStatsMap, slot)
			require.NoError(t, err)
			assert.Equal(t, slotBefore.Packets+1, slotAfter.Packets, "counted in the pair slot of %s and verdict %s", st.want[0], verdictName(st.verdict))
		})
	}
}

// TestCountersDocumented: docs/datapath.md's counter table names every
// counter the program keeps, so a new reason is documented where operators
// look up what a label means.
func TestCountersDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/datapath.md")
	require.NoError(t, err)
	rows := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		for _, m := range regexp.MustCompile("`([a-z0-9_]+)`").FindAllStringSubmatch(first, -1) {
			rows[m[1]] = true
		}
	}
	for _, c := range AllCounters() {
		assert.True(t, rows[c.String()], "docs/datapath.md's counter table has no row for %s", c)
	}
}
