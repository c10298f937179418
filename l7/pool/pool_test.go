package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func poolConfig(n int) config.Pool {
	cfg := config.Pool{
		Name: "checkout",
		Health: config.Health{Passive: config.Passive{
			ConsecutiveErrors: 3,
			Consecutive5xx:    2,
			BaseEjection:      10 * time.Second,
			MaxEjection:       40 * time.Second,
			MaxEjectedPercent: 50,
		}},
		Sticky: &config.Sticky{DrainTimeout: time.Minute},
	}
	for i := range n {
		cfg.Servers = append(cfg.Servers, config.Server{Name: string(rune('a' + i)), Addr: "127.0.0.1:1", Weight: 1})
	}
	return cfg
}

func names(bs []*pool.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func fail(p *pool.Pool, b *pool.Backend, n int, now time.Time) {
	for range n {
		p.Report(b, true, 0, now)
	}
}

func TestNew(t *testing.T) {
	p := pool.New(2, poolConfig(3), 10, nil, t0)
	require.Len(t, p.Backends, 3)
	assert.Equal(t, 10, p.Backends[0].ID)
	assert.Equal(t, 12, p.Backends[2].ID)
	assert.Equal(t, 2, p.Index)
	assert.Equal(t, pool.ServerKey("checkout", "b"), p.Backends[1].Key)
	assert.Same(t, p.Backends[1], p.ByKey(p.Backends[1].Key))
	assert.Same(t, p.Backends[2], p.ByName("c"))
	assert.Equal(t, []string{"a", "b", "c"}, names(p.Available(t0)))
}

func TestPassiveEjection(t *testing.T) {
	tests := []struct {
		name      string
		report    func(p *pool.Pool, b *pool.Backend)
		wantEject bool
	}{
		{"connect errors below threshold", func(p *pool.Pool, b *pool.Backend) { fail(p, b, 2, t0) }, false},
		{"connect errors at threshold", func(p *pool.Pool, b *pool.Backend) { fail(p, b, 3, t0) }, true},
		{"5xx at threshold", func(p *pool.Pool, b *pool.Backend) {
			p.Report(b, false, 503, t0)
			p.Report(b, false, 500, t0)
		}, true},
		{"no response counts as 5xx", func(p *pool.Pool, b *pool.Backend) {
			p.Report(b, false, 0, t0)
			p.Report(b, false, 0, t0)
		}, true},
		{"success resets the streak", func(p *pool.Pool, b *pool.Backend) {
			fail(p, b, 2, t0)
			p.Report(b, false, 200, t0)
			fail(p, b, 2, t0)
		}, false},
		{"4xx is a success", func(p *pool.Pool, b *pool.Backend) {
			p.Report(b, false, 500, t0)
			p.Report(b, false, 404, t0)
			p.Report(b, false, 500, t0)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pool.New(0, poolConfig(4), 0, nil, t0)
			b := p.Backends[1]
			tt.report(p, b)
			assert.Equal(t, tt.wantEject, b.Ejected(t0))
			if tt.wantEject {
				assert.Equal(t, uint64(1), b.Ejections())
				assert.Equal(t, []string{"a", "c", "d"}, names(p.Available(t0)))
			} else {
				assert.Len(t, p.Available(t0), 4)
			}
		})
	}
}

func TestPassiveDisabled(t *testing.T) {
	cfg := poolConfig(2)
	cfg.Health.Passive.Disabled = true
	p := pool.New(0, cfg, 0, nil, t0)
	fail(p, p.Backends[0], 100, t0)
	assert.False(t, p.Backends[0].Ejected(t0))
}

func TestEjectCap(t *testing.T) {
	tests := []struct {
		name        string
		servers     int
		percent     int
		failing     int
		wantEjected int
	}{
		{"single server is never ejected", 1, 100, 1, 0},
		{"half of four", 4, 50, 4, 2},
		{"a third of three rounds down to one", 3, 34, 3, 1},
		{"100 percent still keeps the last server", 3, 100, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := poolConfig(tt.servers)
			cfg.Health.Passive.MaxEjectedPercent = tt.percent
			p := pool.New(0, cfg, 0, nil, t0)
			for _, b := range p.Backends[:tt.failing] {
				fail(p, b, 3, t0)
			}
			ejected := 0
			for _, b := range p.Backends {
				if b.Ejected(t0) {
					ejected++
				}
			}
			assert.Equal(t, tt.wantEjected, ejected)
			assert.NotEmpty(t, p.Available(t0), "passive ejection never empties a pool")
		})
	}
}

func TestEjectCapCountsActiveDown(t *testing.T) {
	p := pool.New(0, poolConfig(2), 0, nil, t0)
	p.SetUp(p.Backends[0], false, t0)
	fail(p, p.Backends[1], 10, t0)
	assert.False(t, p.Backends[1].Ejected(t0), "the only available server stays")
}

func TestEjectionBackoff(t *testing.T) {
	p := pool.New(0, poolConfig(4), 0, nil, t0)
	b := p.Backends[0]
	now := t0
	var got []time.Duration
	for range 5 {
		fail(p, b, 3, now)
		require.True(t, b.Ejected(now))
		// find the ejection end by stepping: the end is now + d
		d := time.Duration(0)
		for b.Ejected(now.Add(d)) {
			d += time.Second
		}
		got = append(got, d)
		now = now.Add(d) // back in, and fails again at once
		assert.Contains(t, names(p.Available(now)), "a", "back after the ejection")
	}
	assert.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}, got)

	// After staying in longer than max_ejection the back-off restarts.
	now = now.Add(time.Minute)
	fail(p, b, 3, now)
	assert.True(t, b.Ejected(now.Add(9*time.Second)))
	assert.False(t, b.Ejected(now.Add(10*time.Second)))
	assert.Equal(t, uint64(6), b.Ejections())
}

func TestActiveHealth(t *testing.T) {
	p := pool.New(0, poolConfig(2), 0, nil, t0)
	a, b := p.Backends[0], p.Backends[1]
	assert.True(t, p.SetUp(a, false, t0))
	assert.False(t, p.SetUp(a, false, t0), "no change, no transition")
	assert.Equal(t, []string{"b"}, names(p.Available(t0)))
	assert.True(t, p.Healthy(t0))
	p.SetUp(b, false, t0)
	assert.False(t, p.Healthy(t0))
	assert.True(t, p.SetUp(a, true, t0))
	assert.Equal(t, []string{"a"}, names(p.Available(t0)))
}

func TestSlowStart(t *testing.T) {
	p := pool.New(0, poolConfig(2), 0, nil, t0)
	b := p.Backends[0]
	ss := 100 * time.Second
	assert.Equal(t, int64(1000), b.EffectiveWeight(t0, ss), "up from the start: full weight")
	p.SetUp(b, false, t0)
	p.SetUp(b, true, t0.Add(time.Second))
	tests := []struct {
		after time.Duration
		want  int64
	}{
		{0, 100},
		{5 * time.Second, 100},
		{50 * time.Second, 500},
		{99 * time.Second, 990},
		{100 * time.Second, 1000},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, b.EffectiveWeight(t0.Add(time.Second+tt.after), ss), "after %s", tt.after)
	}
	assert.Equal(t, int64(1000), b.EffectiveWeight(t0.Add(2*time.Second), 0), "no slow start configured")

	// An ejection's end starts a slow start too.
	c := p.Backends[1]
	fail(p, c, 3, t0)
	assert.Equal(t, int64(100), c.EffectiveWeight(t0.Add(10*time.Second), ss))
	assert.Equal(t, int64(500), c.EffectiveWeight(t0.Add(60*time.Second), ss))
}

func TestDrain(t *testing.T) {
	p := pool.New(0, poolConfig(2), 0, nil, t0)
	a := p.Backends[0]
	p.Drain(a, t0.Add(time.Minute), t0)
	draining, deadline := a.Draining()
	assert.True(t, draining)
	assert.True(t, t0.Add(time.Minute).Equal(deadline))
	assert.Equal(t, []string{"b"}, names(p.Available(t0)), "no new clients")
	assert.True(t, a.StickyOK(t0.Add(59*time.Second)), "sticky clients stay until the deadline")
	assert.False(t, a.StickyOK(t0.Add(time.Minute)))
	p.Drain(a, time.Time{}, t0)
	assert.Len(t, p.Available(t0), 2)
	assert.True(t, a.StickyOK(t0.Add(time.Hour)))
}

func TestDrainFromConfig(t *testing.T) {
	cfg := poolConfig(2)
	cfg.Servers[1].Drain = true
	p := pool.New(0, cfg, 0, nil, t0)
	assert.Equal(t, []string{"a"}, names(p.Available(t0)))
	assert.True(t, p.Backends[1].StickyOK(t0.Add(30*time.Second)))
	assert.False(t, p.Backends[1].StickyOK(t0.Add(time.Minute)))
}

func TestStickyOKUnhealthy(t *testing.T) {
	p := pool.New(0, poolConfig(3), 0, nil, t0)
	p.SetUp(p.Backends[0], false, t0)
	fail(p, p.Backends[1], 3, t0)
	assert.False(t, p.Backends[0].StickyOK(t0))
	assert.False(t, p.Backends[1].StickyOK(t0))
	assert.True(t, p.Backends[2].StickyOK(t0))
}

func TestAvailableNoAlloc(t *testing.T) {
	p := pool.New(0, poolConfig(3), 0, nil, t0)
	allocs := testing.AllocsPerRun(100, func() {
		b := p.Available(t0)[0]
		b.Acquire()
		p.Report(b, false, 200, t0)
		b.Release()
	})
	assert.Zero(t, allocs)
}

// TestNewFromKeepsState: the next generation of a pool shares the state of
// servers that keep their name and address (ejection and its back-off,
// drain, in flight), starts afresh for a server whose address changed, and
// slow-starts a server new to the pool; the config's drain flag applies.
func TestNewFromKeepsState(t *testing.T) {
	cfg := poolConfig(3)
	cfg.SlowStart = time.Minute
	p1 := pool.New(0, cfg, 0, nil, t0)
	a, b := p1.ByName("a"), p1.ByName("b")
	fail(p1, a, 3, t0) // ejected
	require.True(t, a.Ejected(t0))
	b.Acquire()
	p1.ByName("c").Acquire()

	next := poolConfig(3)
	next.SlowStart = time.Minute
	next.Servers[2].Addr = "127.0.0.1:2" // c moved
	next.Servers[1].Drain = true
	next.Servers = append(next.Servers, config.Server{Name: "d", Addr: "127.0.0.1:4", Weight: 1})
	now := t0.Add(time.Second)
	p2 := pool.NewFrom(0, next, 10, nil, now, p1)

	a2, b2, c2, d2 := p2.ByName("a"), p2.ByName("b"), p2.ByName("c"), p2.ByName("d")
	assert.True(t, a2.Ejected(now), "ejection carried over")
	assert.Equal(t, uint64(1), a2.Ejections())
	assert.Equal(t, int64(1), b2.InFlight(), "in flight carried over")
	b2.Release()
	assert.Zero(t, b.InFlight(), "one count, seen by both generations")
	draining, _ := b2.Draining()
	assert.True(t, draining, "config drain applied")
	assert.Zero(t, c2.InFlight(), "a server whose address changed starts afresh")
	assert.Less(t, c2.EffectiveWeight(now, time.Minute), int64(1000), "and slow-starts, like a new one")
	assert.Less(t, d2.EffectiveWeight(now, time.Minute), int64(1000), "new server slow-starts")
	assert.Equal(t, []string{"c", "d"}, names(p2.Available(now)))
	assert.Equal(t, 10, a2.ID)
}
