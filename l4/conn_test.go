package l4

import (
	"fmt"
	"math"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// binomialPMF returns P(X = k) for k = 0..n of X ~ Binomial(n, p).
func binomialPMF(n int, p float64) []float64 {
	pmf := make([]float64, n+1)
	// Logarithms: n is in the thousands, the coefficients overflow.
	for k := 0; k <= n; k++ {
		lg, _ := math.Lgamma(float64(n + 1))
		lk, _ := math.Lgamma(float64(k + 1))
		lnk, _ := math.Lgamma(float64(n - k + 1))
		pmf[k] = math.Exp(lg - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	return pmf
}

// TestConnTableUsesEverySet fills the connection table (shared by all CPUs:
// ConnEntries per CPU times the CPUs) to the sizing the README documents
// (twice the live flows) with distinct SYNs, reads conn_map back and
// compares it with a uniform hash: n flows over m sets put Binomial(n, 1/m)
// flows in each set, of which a 4-way set keeps min(X, 4) and evicts
// max(X-4, 0). Both the histogram of set occupancies and the eviction count
// must lie within 6 standard deviations of that prediction. An index that
// reaches only half of the sets doubles the load of the sets it reaches:
// half the sets stay empty and about 19 % of the flows are evicted instead
// of about 3.7 %, far outside the bounds.
func TestConnTableUsesEverySet(t *testing.T) {
	const perCPU = 8192 // 2048 sets of 4 ways per CPU
	d := openTest(t, func(c *Config) { c.ConnEntries = perCPU; c.MaxBackends = 8 })
	entries := perCPU * d.ncpu
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	require.NoError(t, d.InstallTable(vip, ring(ids, 0)))

	ways := int(connWays)
	sets := entries / ways
	flows := entries / 2
	prog := d.Program()
	// Distinct 5-tuples: one client address per flow, ports varied too.
	for i := range flows {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%50000))
		v, _ := runProg(t, prog, pkt{src: src, dst: netip.AddrPortFrom(vip.Addr, 80), proto: TCP, syn: true}.build(t))
		require.Equal(t, "XDP_TX", verdictName(v))
	}

	hist := make([]int, ways+1)
	kept := 0
	usedEven, usedOdd := 0, 0
	for i := range sets {
		var s xlbConnSet
		require.NoError(t, d.objs.ConnMap.Lookup(uint32(i), &s))
		n := 0
		for _, tag := range s.Tag {
			if tag != 0 {
				n++
			}
		}
		hist[n]++
		kept += n
		if n > 0 {
			if i%2 == 0 {
				usedEven++
			} else {
				usedOdd++
			}
		}
	}
	evicted := flows - kept
	t.Logf("sets by occupancy 0..4: %v; used even %d, odd %d; evicted %d of %d", hist, usedEven, usedOdd, evicted, flows)

	pmf := binomialPMF(flows, 1/float64(sets))
	// Occupancy j < 4 has probability pmf[j]; occupancy 4 takes the tail.
	for j := 0; j <= ways; j++ {
		p := 0.0
		if j < ways {
			p = pmf[j]
		} else {
			for k := ways; k <= flows; k++ {
				p += pmf[k]
			}
		}
		mean := float64(sets) * p
		sd := math.Sqrt(float64(sets) * p * (1 - p))
		assert.InDelta(t, mean, float64(hist[j]), 6*sd+1, "sets holding %d flows", j)
	}
	// Evictions: the sum over sets of max(X-4, 0); the sets are nearly
	// independent at this size, so the variance is sets times one set's.
	var e1, e2 float64
	for k := ways + 1; k <= flows; k++ {
		x := float64(k - ways)
		e1 += x * pmf[k]
		e2 += x * x * pmf[k]
	}
	mean := float64(sets) * e1
	sd := math.Sqrt(float64(sets) * (e2 - e1*e1))
	assert.InDelta(t, mean, float64(evicted), 6*sd, "evicted flows (predicted %.1f ± %.1f, %.1f %%)", mean, sd, 100*mean/float64(flows))
	// Either parity of set number must be in use, nearly all of it.
	for _, used := range []int{usedEven, usedOdd} {
		assert.Greater(t, used, int(float64(sets/2)*(1-pmf[0])*0.9), fmt.Sprintf("used sets of one parity: %d of %d", used, sets/2))
	}
}

// TestConnHashMatchesKernel checks that connHash and connSet (Go) agree
// with conn_hash and conn_set_of (BPF): after a flow's first packet its
// entry is in the set and under the tag the Go mirror names, for both
// families and protocols and for one client to two VIP addresses.
func TestConnHashMatchesKernel(t *testing.T) {
	d := openTest(t, nil)
	ids4 := upsertBackends(t, d, "192.168.1.1", "192.168.1.2")
	ids6 := upsertBackends(t, d, "fd01::1", "fd01::2")
	vips := []struct {
		vip VIP
		ids []BackendID
	}{
		{VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}, ids4},
		{VIP{netip.MustParseAddr("203.0.113.11"), 80, TCP}, ids4},
		{VIP{netip.MustParseAddr("203.0.113.10"), 53, UDP}, ids4},
		{VIP{netip.MustParseAddr("2001:db8::10"), 80, TCP}, ids6},
		{VIP{netip.MustParseAddr("2001:db8::10"), 53, UDP}, ids6},
	}
	sets := d.objs.ConnMap.MaxEntries()
	prog := d.Program()
	for _, v := range vips {
		require.NoError(t, d.UpsertVIP(v.vip))
		require.NoError(t, d.InstallTable(v.vip, ring(v.ids, 0)))
		for i := range 20 {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), uint16(40000+i))
			if v.vip.Addr.Is6() {
				src = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 0xc, 15: byte(i + 1)}), uint16(40000+i))
			}
			p := pkt{src: src, dst: netip.AddrPortFrom(v.vip.Addr, v.vip.Port), proto: v.vip.Proto, syn: v.vip.Proto == TCP}
			verdict, _ := runProg(t, prog, p.build(t))
			require.Equal(t, "XDP_TX", verdictName(verdict))

			h := connHash(src, netip.AddrPortFrom(v.vip.Addr, v.vip.Port), v.vip.Proto)
			var s xlbConnSet
			require.NoError(t, d.objs.ConnMap.Lookup(connSet(h, sets), &s))
			found := false
			for w, tag := range s.Tag {
				k := s.E[w].Key
				if tag == h|1 && k.Src == addrWords(src.Addr()) && k.Dst == addrWords(v.vip.Addr) {
					found = true
				}
			}
			assert.True(t, found, "flow %s -> %s not in set %d under tag %#x", src, v.vip, connSet(h, sets), h|1)
		}
	}
}
