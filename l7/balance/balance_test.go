package balance_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/balance"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// seqRand returns the given values in turn (modulo n): a deterministic
// stand-in for the random source.
type seqRand struct {
	vals []int
	i    int
}

func (s *seqRand) IntN(n int) int {
	v := s.vals[s.i%len(s.vals)] % n
	s.i++
	return v
}

func newPool(t testing.TB, weights ...int) *pool.Pool {
	t.Helper()
	cfg := config.Pool{Name: "p", Health: config.Health{Passive: config.Passive{
		ConsecutiveErrors: 1, Consecutive5xx: 1, BaseEjection: time.Second, MaxEjection: time.Second, MaxEjectedPercent: 100,
	}}}
	for i, w := range weights {
		cfg.Servers = append(cfg.Servers, config.Server{Name: fmt.Sprintf("s%d", i), Addr: "127.0.0.1:1", Weight: w})
	}
	return pool.New(0, cfg, 0, nil, t0)
}

func setInFlight(b *pool.Backend, n int) {
	for b.InFlight() < int64(n) {
		b.Acquire()
	}
	for b.InFlight() > int64(n) {
		b.Release()
	}
}

func TestP2C(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inflight []int
		rand     []int // first draw i, second draw j' (j = j' or j'+1)
		want     int
	}{
		{"less loaded of the two wins", []int{1, 1, 1}, []int{5, 1, 0}, []int{0, 0}, 1},
		{"order of the draw does not matter", []int{1, 1, 1}, []int{5, 1, 0}, []int{1, 0}, 1},
		{"the third server is not considered", []int{1, 1, 1}, []int{5, 4, 0}, []int{0, 0}, 1},
		{"collision is skipped", []int{1, 1, 1}, []int{0, 3, 1}, []int{1, 1}, 2},
		{"tie keeps the first draw", []int{1, 1}, []int{2, 2}, []int{1, 0}, 1},
		{"weight scales the load", []int{3, 1}, []int{3, 0}, []int{0, 0}, 1},
		{"heavier server takes more", []int{4, 1}, []int{2, 0}, []int{1, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.weights...)
			for i, n := range tt.inflight {
				setInFlight(p.Backends[i], n)
			}
			pol := &balance.P2C{Rand: &seqRand{vals: tt.rand}}
			got := pol.Pick(p.Available(t0), 0, t0)
			require.NotNil(t, got)
			assert.Equal(t, tt.want, got.Index)
		})
	}
}

func TestPickEmptyAndSingle(t *testing.T) {
	p := newPool(t, 1)
	one := p.Available(t0)
	for name, pol := range map[string]balance.Policy{
		"p2c":        &balance.P2C{Rand: balance.Default{}},
		"least_conn": &balance.LeastConn{Rand: balance.Default{}},
		"wrr":        balance.NewRoundRobin(1, 0),
		"hash":       &balance.Hash{},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Nil(t, pol.Pick(nil, 1, t0))
			assert.Same(t, one[0], pol.Pick(one, 1, t0))
		})
	}
}

func TestLeastConn(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inflight []int
		start    int
		want     int
	}{
		{"fewest in flight", []int{1, 1, 1, 1}, []int{3, 2, 0, 1}, 0, 2},
		{"tie goes to the first from the random start", []int{1, 1, 1}, []int{0, 0, 0}, 2, 2},
		{"tie wraps around", []int{1, 1, 1}, []int{1, 0, 0}, 0, 1},
		{"weighted", []int{1, 5}, []int{1, 4}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.weights...)
			for i, n := range tt.inflight {
				setInFlight(p.Backends[i], n)
			}
			pol := &balance.LeastConn{Rand: &seqRand{vals: []int{tt.start}}}
			assert.Equal(t, tt.want, pol.Pick(p.Available(t0), 0, t0).Index)
		})
	}
}

func TestRoundRobinDistribution(t *testing.T) {
	p := newPool(t, 5, 1, 1)
	pol := balance.NewRoundRobin(3, 0)
	cands := p.Available(t0)
	var seq []int
	counts := make([]int, 3)
	for range 70 {
		b := pol.Pick(cands, 0, t0)
		counts[b.Index]++
		if len(seq) < 7 {
			seq = append(seq, b.Index)
		}
	}
	assert.Equal(t, []int{50, 10, 10}, counts, "exact shares over whole cycles")
	assert.Equal(t, []int{0, 0, 1, 0, 2, 0, 0}, seq, "smooth: the light servers are interleaved, not bunched")
}

func TestRoundRobinSkipsUnavailable(t *testing.T) {
	p := newPool(t, 1, 1, 1)
	pol := balance.NewRoundRobin(3, 0)
	p.SetUp(p.Backends[1], false, t0)
	counts := make([]int, 3)
	for range 10 {
		counts[pol.Pick(p.Available(t0), 0, t0).Index]++
	}
	assert.Equal(t, []int{5, 0, 5}, counts)
}

func TestHashConsistency(t *testing.T) {
	p := newPool(t, 1, 1, 1, 1)
	pol := &balance.Hash{}
	const keys = 4000
	before := make([]int, keys)
	counts := make([]int, 4)
	for k := range keys {
		b := pol.Pick(p.Available(t0), balance.HashBytes(fmt.Appendf(nil, "/products/%d", k)), t0)
		before[k] = b.Index
		counts[b.Index]++
	}
	for i, c := range counts {
		assert.InDelta(t, keys/4, c, keys/4*0.15, "server %d share", i)
	}
	// Same key, same server, every time and in a fresh policy (another L7
	// host).
	other := &balance.Hash{}
	for k := range 100 {
		key := balance.HashBytes(fmt.Appendf(nil, "/products/%d", k))
		assert.Equal(t, before[k], other.Pick(p.Available(t0), key, t0).Index)
	}
	// Removing a server moves only its own keys.
	p.SetUp(p.Backends[2], false, t0)
	moved := 0
	for k := range keys {
		b := pol.Pick(p.Available(t0), balance.HashBytes(fmt.Appendf(nil, "/products/%d", k)), t0)
		if before[k] == 2 {
			assert.NotEqual(t, 2, b.Index)
			continue
		}
		if b.Index != before[k] {
			moved++
		}
	}
	assert.Less(t, moved, keys/20, "keys of remaining servers mostly stay")
}

func TestSlowStartShiftsLoad(t *testing.T) {
	p := newPool(t, 1, 1)
	p.SetUp(p.Backends[0], false, t0)
	p.SetUp(p.Backends[0], true, t0)
	pol := &balance.P2C{Rand: rand.New(rand.NewPCG(1, 2)), SlowStart: time.Minute}
	counts := make([]int, 2)
	for range 1000 {
		b := pol.Pick(p.Available(t0.Add(time.Second)), 0, t0)
		b.Acquire()
		counts[b.Index]++
	}
	// At 10 % weight the returning server holds about a tenth of the
	// in-flight requests.
	assert.InDelta(t, 91, counts[0], 15)
}

func TestNew(t *testing.T) {
	tests := []struct {
		policy string
		want   any
	}{
		{config.PolicyP2C, &balance.P2C{}},
		{"", &balance.P2C{}},
		{config.PolicyLeastConn, &balance.LeastConn{}},
		{config.PolicyRoundRobin, &balance.RoundRobin{}},
		{config.PolicyHash, &balance.Hash{}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			pol, err := balance.New(config.Pool{Policy: tt.policy, Servers: make([]config.Server, 2)}, nil)
			require.NoError(t, err)
			assert.IsType(t, tt.want, pol)
		})
	}
	_, err := balance.New(config.Pool{Policy: "random"}, nil)
	assert.Error(t, err)
}

func TestPickNoAlloc(t *testing.T) {
	p := newPool(t, 1, 2, 3)
	cands := p.Available(t0)
	pols := []balance.Policy{
		&balance.P2C{Rand: balance.Default{}},
		&balance.LeastConn{Rand: balance.Default{}},
		balance.NewRoundRobin(3, time.Minute),
		&balance.Hash{},
	}
	for _, pol := range pols {
		pol.Pick(cands, 1, t0) // the hash policy builds its table once
		allocs := testing.AllocsPerRun(100, func() { pol.Pick(cands, 12345, t0) })
		assert.Zero(t, allocs, "%T", pol)
	}
}
