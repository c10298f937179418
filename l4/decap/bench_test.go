package decap

import (
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/google/gopacket/layers"
	"github.com/stretchr/testify/require"
)

// BenchmarkDecap measures the kernel-reported cost per packet the way
// Katran's perf tester does: one BPF_PROG_TEST_RUN with repeat 1 per
// sample (with repeat > 1 the kernel would re-run on the already
// decapsulated buffer), the median of b.N samples per case. The cases and
// a trivial XDP_PASS floor are interleaved in every round, so they share
// the machine's state; the figure to read is over_floor_ns.
//
//	go test -run '^$' -bench Decap -benchtime 200000x ./l4/decap/
func BenchmarkDecap(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading XDP programs needs root")
	}
	d, err := Open(Config{GUEPort: guePort})
	require.NoError(b, err)
	defer d.Close()
	t := b
	require.NoError(b, d.SetAddrs([]netip.Addr{l7Addr, l7Addr6}))

	floor, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	require.NoError(b, err)
	defer floor.Close()

	in4 := inner(t, false, "payload")
	in6 := inner(t, true, "payload")
	cases := []struct {
		name string
		prog *ebpf.Program
		in   []byte
	}{
		{"floor", floor, tunnel4(t, l7Addr, false, in4, nil)},
		{"v4_in_v4", d.Program(), tunnel4(t, l7Addr, false, in4, nil)},
		{"v6_in_v6", d.Program(), tunnel6(t, l7Addr6, true, in6)},
		{"gue_v4_in_v4", d.Program(), gue(t, outer4(l7Addr, false, nil), guePort, in4, false)},
		{"gue_v6_in_v6", d.Program(), gue(t, outer6(l7Addr6, true), guePort, in6, true)},
		{"not_for_us", d.Program(), tunnel4(t, other4, false, in4, nil)},
		{"plain_pass", d.Program(), append(l2(layers.EthernetTypeIPv4), in4...)},
	}
	samples := make([][]time.Duration, len(cases))
	b.ResetTimer()
	for range b.N {
		for i, c := range cases {
			_, dur, err := c.prog.Benchmark(c.in, 1, nil)
			if err != nil {
				b.Fatalf("run %s: %v", c.name, err)
			}
			samples[i] = append(samples[i], dur)
		}
	}
	b.StopTimer()
	// Each sample is one run timed by the kernel, so it is coarse (tens
	// of ns); the mean over many samples resolves what the median cannot.
	mean := func(s []time.Duration) float64 {
		var sum time.Duration
		for _, d := range s {
			sum += d
		}
		return float64(sum.Nanoseconds()) / float64(len(s))
	}
	median := func(s []time.Duration) float64 {
		slices.Sort(s)
		return float64(s[len(s)/2].Nanoseconds())
	}
	floorMean, floorMedian := mean(samples[0]), median(samples[0])
	for i, c := range cases[1:] {
		m, med := mean(samples[i+1]), median(samples[i+1])
		b.ReportMetric(m-floorMean, c.name+"_over_floor_ns")
		if b.N >= 1000 { // the first, one-sample round only calibrates
			b.Logf("decapbench case=%s ns=%.1f floor_ns=%.1f over_floor_ns=%.1f median_ns=%.0f floor_median_ns=%.0f",
				c.name, m, floorMean, m-floorMean, med, floorMedian)
		}
	}
}
