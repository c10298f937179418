package l4

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
)

// benchTable builds a table of size m cycling through ids, starting at shift.
func benchTable(ids []BackendID, m uint32, shift int) []BackendID {
	t := make([]BackendID, m)
	for i := range t {
		t[i] = ids[(i+shift)%len(ids)]
	}
	return t
}

// freshSwap is the previous install path, kept as the baseline: a fresh
// inner ARRAY per install, filled with one BatchUpdate (a kernel call per
// entry inside), swapped into an ARRAY_OF_MAPS (which waits for an RCU
// grace period). Its own outer map: ring_map's inner template is mmapable.
type freshSwap struct {
	inner *ebpf.MapSpec
	outer *ebpf.Map
	keys  []uint32
}

func newFreshSwap(tb testing.TB, m uint32) *freshSwap {
	tb.Helper()
	inner := &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: m}
	outer, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 1, InnerMap: inner})
	require.NoError(tb, err)
	tb.Cleanup(func() { outer.Close() })
	keys := make([]uint32, m)
	for i := range keys {
		keys[i] = uint32(i)
	}
	return &freshSwap{inner: inner, outer: outer, keys: keys}
}

func (f *freshSwap) install(tb testing.TB, table []BackendID) {
	vals := make([]uint32, len(table))
	for i, id := range table {
		vals[i] = uint32(id)
	}
	m, err := ebpf.NewMap(f.inner)
	require.NoError(tb, err)
	defer m.Close()
	_, err = m.BatchUpdate(f.keys, vals, nil)
	require.NoError(tb, err)
	require.NoError(tb, f.outer.Put(uint32(0), m))
}

// BenchmarkInstallTable compares, in one run and interleaved, the previous
// install path (fresh map + batch fill + map-in-map swap) with InstallTable
// (fill the standby table through its mapping + one atomic flip), at the
// production size M = 65537 with 100 backends. One op is two changes of
// the VIP back to back with each path: the second InstallTable rewrites the
// table the first one just retired, the case a grace-period design would
// have to wait for. Reported: ms per install of each path and the speed-up
// (fresh-swap time ÷ InstallTable time).
func BenchmarkInstallTable(b *testing.B) {
	const n = 100
	d := openTest(b, func(c *Config) { c.TableSize = DefaultTableSize; c.MaxBackends = 2 * n })
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{192, 168, byte(i / 250), byte(i%250 + 1)}).String()
	}
	ids := upsertBackends(b, d, addrs...)
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(b, d.UpsertVIP(vip))
	tables := [2][]BackendID{benchTable(ids, DefaultTableSize, 0), benchTable(ids, DefaultTableSize, 1)}
	base := newFreshSwap(b, DefaultTableSize)

	var baseTime, newTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		require.NoError(b, d.InstallTable(vip, tables[0]))
		require.NoError(b, d.InstallTable(vip, tables[1]))
		t1 := time.Now()
		base.install(b, tables[0])
		base.install(b, tables[1])
		newTime += t1.Sub(t0)
		baseTime += time.Since(t1)
	}
	installs := float64(2 * b.N)
	b.ReportMetric(float64(baseTime.Microseconds())/1000/installs, "fresh-swap-ms/install")
	b.ReportMetric(float64(newTime.Microseconds())/1000/installs, "xlb-ms/install")
	b.ReportMetric(float64(baseTime)/float64(max(newTime, 1)), "speedup")
}
