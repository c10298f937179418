package l4

import (
	"math"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// synFlows sends n distinct new flows (SYNs) to vip and returns how many
// ways of conn_map hold an entry afterwards, counted over every set.
func synFlows(t *testing.T, d *Dataplane, vip VIP, n int) int {
	t.Helper()
	prog := d.Program()
	for i := range n {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%50000))
		v, _ := runProg(t, prog, pkt{src: src, dst: netip.AddrPortFrom(vip.Addr, vip.Port), proto: TCP, syn: true}.build(t))
		require.Equal(t, "XDP_TX", verdictName(v))
	}
	return countEntries(t, d)
}

// TestConnTableUsage: in a table small enough to be read whole the
// occupancy is the exact number of ways in use after real packets; in a
// larger one the sampled estimate lies within 6 standard errors of the
// exact count (all sets read by the test).
func TestConnTableUsage(t *testing.T) {
	t.Run("small table: exact", func(t *testing.T) {
		d := openTest(t, func(c *Config) { c.ConnEntries = 256 }) // 64 sets per CPU
		ids := upsertBackends(t, d, "192.168.1.1")
		vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
		require.NoError(t, d.UpsertVIP(vip))
		require.NoError(t, d.InstallTable(vip, ring(ids, 0)))

		u, err := d.ConnTableUsage()
		require.NoError(t, err)
		assert.Equal(t, ConnTableUsage{Capacity: uint64(256 * d.ncpu), SampledSets: uint32(64 * d.ncpu), Exact: true}, u, "empty")

		used := synFlows(t, d, vip, 100)
		require.Positive(t, used)
		u, err = d.ConnTableUsage()
		require.NoError(t, err)
		assert.True(t, u.Exact)
		assert.Equal(t, uint64(used), u.Entries)
		// A flow's second packet (its ACK) writes no entry.
		v, _ := runProg(t, d.Program(), tcpACK("10.0.0.0:1024", "203.0.113.10:80").build(t))
		require.Equal(t, "XDP_TX", verdictName(v))
		u, err = d.ConnTableUsage()
		require.NoError(t, err)
		assert.Equal(t, uint64(used), u.Entries, "a hit adds no entry")
	})
	t.Run("large table: sampled", func(t *testing.T) {
		const perCPU = 8192 // 2048 sets per CPU: more than are sampled
		d := openTest(t, func(c *Config) { c.ConnEntries = perCPU; c.MaxBackends = 8 })
		ids := upsertBackends(t, d, "192.168.1.1")
		vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
		require.NoError(t, d.UpsertVIP(vip))
		require.NoError(t, d.InstallTable(vip, ring(ids, 0)))

		used := synFlows(t, d, vip, perCPU*d.ncpu/4)
		u, err := d.ConnTableUsage()
		require.NoError(t, err)
		capacity := uint64(perCPU * d.ncpu)
		require.Equal(t, capacity, u.Capacity)
		require.False(t, u.Exact)
		require.Equal(t, uint32(connSampleSets), u.SampledSets)
		// The fraction of ways in use, sampled over SampledSets*4 ways.
		p := float64(used) / float64(capacity)
		sd := float64(capacity) * math.Sqrt(p*(1-p)/float64(connSampleSets*connWays))
		t.Logf("ways in use %d of %d, estimate %d (± %.0f)", used, capacity, u.Entries, sd)
		assert.InDelta(t, float64(used), float64(u.Entries), 6*sd)
	})
}
