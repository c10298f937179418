package l4

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewFlowGuard: established flows survive a flood of distinct SYNs
// larger than the whole connection table while the new-flow guard is on,
// and are evicted by the same flood with the guard off. Either way every
// flood SYN is forwarded, with the exact bytes, to the host the Maglev
// table names. Everything runs on CPU 0, whose one-second window the
// guard counts in; a window that ends during the flood lets at most one
// more limit's worth of flood flows in, which the skip count bounds.
func TestNewFlowGuard(t *testing.T) {
	const established = 16
	for _, tt := range []struct {
		name  string
		limit uint32
	}{
		{"guard on", established},
		{"guard off", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := openTest(t, func(c *Config) { c.ConnEntries = 64; c.NewFlowRateLimit = tt.limit })
			entries := 64 * d.ncpu
			flood := 4 * entries
			ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
			addrs := d.Backends()
			vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
			require.NoError(t, d.UpsertVIP(vip))
			table := ring(ids, 0)
			require.NoError(t, d.InstallTable(vip, table))
			prog := d.Program()
			send := func(p pkt) {
				t.Helper()
				in := p.build(t)
				v, out := runProg(t, prog, in)
				require.Equal(t, "XDP_TX", verdictName(v))
				want := encapped(t, p, in, addrs[table[FlowHash(p.src, 80, TCP)%testM]])
				require.Equal(t, want, out[:len(want)], "exact bytes of %v", p.src)
			}
			client := func(i int) string { return fmt.Sprintf("198.51.100.%d:%d", 1+i%200, 1024+i) }
			counts := func() (hit, skipped uint64) {
				s, err := d.Stats()
				require.NoError(t, err)
				return s.Counters[CounterConnHit].Packets, s.Counters[CounterConnInsertSkipped].Packets
			}

			for i := range established {
				send(tcpSYN(client(i), "203.0.113.10:80"))
			}
			hit0, _ := counts()
			for i := range established {
				send(tcpACK(client(i), "203.0.113.10:80"))
			}
			hit1, _ := counts()
			require.Equal(t, uint64(established), hit1-hit0, "every established flow has its entry before the flood")

			for i := range flood {
				send(tcpSYN(fmt.Sprintf("192.0.2.%d:%d", 1+i%250, 2000+i), "203.0.113.10:80"))
			}
			_, skipped := counts()
			for i := range established {
				send(tcpACK(client(i), "203.0.113.10:80"))
			}
			hit2, _ := counts()
			t.Logf("flood of %d SYNs into a table of %d entries: %d not inserted, %d of %d established flows still hit", flood, entries, skipped, hit2-hit1, established)
			if tt.limit == 0 {
				assert.Zero(t, skipped, "nothing is skipped with the guard off")
				assert.Zero(t, hit2-hit1, "the flood evicts every established flow")
				return
			}
			assert.GreaterOrEqual(t, skipped, uint64(flood)-uint64(tt.limit), "the flood is past the limit (at most one new window within it)")
			assert.Equal(t, uint64(established), hit2-hit1, "every established flow still hits its entry")
		})
	}
}
