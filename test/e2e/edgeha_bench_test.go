package e2e

import (
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBenchEdgeHostFailure measures how long the router keeps sending a
// VIP's packets to an edge host that died silently (its link down, then
// its daemon killed; the router's own link stays up, so only the BGP hold
// timer can tell): from the failure until the router's kernel route no
// longer lists the host, over XLB_BENCH_TRIALS trials (default 15), with
// hold time XLB_BENCH_HOLD (default 3s; keepalive a third of it). A
// measurement, not a test: it runs only with XLB_BENCH=edgeha
// (test/bench/edgeha.sh), and prints p50/p99.
func TestBenchEdgeHostFailure(t *testing.T) {
	if os.Getenv("XLB_BENCH") != "edgeha" {
		t.Skip("a benchmark: run test/bench/edgeha.sh (XLB_BENCH=edgeha)")
	}
	trials := 15
	if v := os.Getenv("XLB_BENCH_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "XLB_BENCH_TRIALS")
		trials = min(max(n, 1), 100)
	}
	hold := haHold
	if v := os.Getenv("XLB_BENCH_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "XLB_BENCH_HOLD")
		hold = d
	}
	b := newHABed(t, haOptions{hold: hold})
	for _, lb := range b.lbs {
		b.startLB(t, lb)
	}
	b.waitRouterUses(t, b.lbs)
	var took []time.Duration
	for i := range trials {
		victim := b.lbs[i%len(b.lbs)]
		start := time.Now()
		require.NoError(t, victim.host.SetLink(false))
		b.stopLB(t, victim, syscall.SIGKILL)
		require.Eventually(t, func() bool { return !b.uses(t, victim) }, hold+30*time.Second, 2*time.Millisecond,
			"trial %d: the router kept using %s", i, victim.host.Name)
		took = append(took, time.Since(start))
		// Back for the next trial: link up, daemon restarted (adopting
		// its pinned data path), announced again.
		require.NoError(t, victim.host.SetLink(true))
		b.startLB(t, victim)
		b.waitRouterUses(t, b.lbs)
	}
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[min(int(p*float64(len(took))), len(took)-1)] }
	t.Logf("edgehabench case=host_failure hold=%v keepalive=%v trials=%d min=%v p50=%v p99=%v max=%v",
		b.hold, b.keepalive, len(took), took[0].Round(time.Millisecond), q(0.50).Round(time.Millisecond),
		q(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}
