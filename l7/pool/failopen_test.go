package pool_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
)

// withBelow sets the threshold as Load would.
func withBelow(cfg config.Pool, pct int) config.Pool {
	cfg.Health.AllDown = config.AllDownFailOpen
	cfg.Health.FailOpenBelowPercent = pct
	return cfg
}

// TestFailOpenBelow: with a threshold the pool fails open while fewer
// than that share of its servers not draining pass, and new clients then
// go to every one of those; drained servers are not counted.
func TestFailOpenBelow(t *testing.T) {
	p := pool.New(0, withBelow(poolConfig(4), 50), 0, nil, t0)
	a, b, c, d := p.ByName("a"), p.ByName("b"), p.ByName("c"), p.ByName("d")
	steps := []struct {
		name        string
		apply       func()
		wantAvail   []string
		wantOpen    bool
		wantPassing int
	}{
		{"all pass", func() {}, []string{"a", "b", "c", "d"}, false, 4},
		{"2 of 4 pass: not below 50%", func() { p.SetUp(c, false, t0); p.SetUp(d, false, t0) }, []string{"a", "b"}, false, 2},
		{"1 of 4 passes: every server", func() { p.SetUp(b, false, t0) }, []string{"a", "b", "c", "d"}, true, 1},
		{"d drained: 1 of 3 passes, d out", func() { p.Drain(d, t0.Add(time.Hour), t0) }, []string{"a", "b", "c"}, true, 1},
		{"b back: 2 of 3 pass", func() { p.SetUp(b, true, t0) }, []string{"a", "b"}, false, 2},
		{"a fails: 1 of 3", func() { p.SetUp(a, false, t0) }, []string{"a", "b", "c"}, true, 1},
	}
	for _, st := range steps {
		st.apply()
		v := p.View(t0)
		assert.Equal(t, st.wantAvail, names(v.Avail), st.name)
		assert.Equal(t, st.wantOpen, v.FailingOpen, st.name)
		assert.Equal(t, st.wantPassing, v.Passing(), st.name)
		assert.Equal(t, st.wantPassing > 0, v.Healthy(), st.name)
	}
	// While failing open a client pinned to a failing server stays there.
	assert.True(t, p.FailOpenKeeps(a, t0))
	assert.False(t, p.FailOpenKeeps(d, t0), "not a drained one")

	// Unset, one passing server is enough to end failing open.
	q := pool.New(0, withBelow(poolConfig(4), 0), 0, nil, t0)
	for _, n := range []string{"b", "c", "d"} {
		q.SetUp(q.ByName(n), false, t0)
	}
	assert.False(t, q.FailingOpen(t0))
	assert.Equal(t, []string{"a"}, names(q.Available(t0)))
}

// TestFailOpenLogs: failing open is logged once at WARN when it starts and
// once when it ends, however the servers' health moves in between; a
// reload that changes the policy logs the change and, if it moves the
// pool in or out of failing open, that too.
func TestFailOpenLogs(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const (
		enter  = "too few servers pass their health checks: failing open, new clients go to every server not draining"
		leave  = "pool no longer failing open"
		policy = "fail-open policy changed"
	)
	p := pool.New(0, withBelow(poolConfig(4), 50), 0, log, t0)
	a, b, c, d := p.ByName("a"), p.ByName("b"), p.ByName("c"), p.ByName("d")
	p.SetUp(a, false, t0)
	p.SetUp(b, false, t0)
	p.SetUp(c, false, t0)
	require.True(t, p.FailingOpen(t0))
	p.SetUp(d, false, t0)
	p.SetUp(c, true, t0)
	p.Drain(c, t0.Add(time.Hour), t0)
	assert.Equal(t, 1, logs.Count(enter), "one warning for one episode:\n%s", logs.String())
	assert.Zero(t, logs.Count(leave))

	// Reloaded with the same policy: nothing new.
	p2 := pool.NewFrom(0, withBelow(poolConfig(4), 50), 0, log, t0, p)
	require.True(t, p2.FailingOpen(t0))
	assert.Equal(t, 1, logs.Count(enter))
	assert.Zero(t, logs.Count(policy))

	// Reloaded to refuse: the policy change and the end are logged once.
	p3 := pool.NewFrom(0, poolConfig(4), 0, log, t0, p2)
	require.False(t, p3.FailingOpen(t0))
	assert.Equal(t, 1, logs.Count(policy))
	assert.Equal(t, 1, logs.Count(leave))

	// And back to fail_open: a new episode.
	p4 := pool.NewFrom(0, withBelow(poolConfig(4), 50), 0, log, t0, p3)
	require.True(t, p4.FailingOpen(t0))
	assert.Equal(t, 2, logs.Count(policy))
	assert.Equal(t, 2, logs.Count(enter))
	p4.SetUp(p4.ByName("a"), true, t0)
	p4.SetUp(p4.ByName("b"), true, t0)
	assert.False(t, p4.FailingOpen(t0))
	assert.Equal(t, 2, logs.Count(leave))
}
