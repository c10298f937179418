package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
)

func rolePool(t *testing.T, role string, fallback bool, maxLag time.Duration) *pool.Pool {
	t.Helper()
	cfg := poolConfig(3)
	cfg.Sticky = nil
	cfg.Role = role
	cfg.ReplicaFallback = fallback
	cfg.Health.Postgres = &config.PostgresHealth{MaxLag: maxLag}
	p := pool.New(0, cfg, 0, nil, t0)
	require.Empty(t, p.Available(t0), "no server is used before its first check")
	return p
}

var (
	primary = pool.DBState{Up: true}
	replica = pool.DBState{Up: true, InRecovery: true}
	down    = pool.DBState{Err: "connect: refused"}
)

func TestPrimaryRoleKeepsOnlyThePrimary(t *testing.T) {
	p := rolePool(t, config.RolePrimary, false, 0)
	p.SetDB(p.ByName("a"), primary, t0)
	p.SetDB(p.ByName("b"), replica, t0)
	p.SetDB(p.ByName("c"), down, t0)
	assert.Equal(t, []string{"a"}, names(p.Available(t0)))
	assert.Empty(t, p.Problem())

	// Failover: a goes down, b is promoted.
	p.SetDB(p.ByName("a"), down, t0)
	assert.Empty(t, p.Available(t0))
	assert.Contains(t, p.Problem(), "no primary")
	p.SetDB(p.ByName("b"), primary, t0)
	assert.Equal(t, []string{"b"}, names(p.Available(t0)))
	assert.Empty(t, p.Problem())
}

func TestPrimaryRoleRefusesSplitBrain(t *testing.T) {
	p := rolePool(t, config.RolePrimary, false, 0)
	p.SetDB(p.ByName("a"), primary, t0)
	p.SetDB(p.ByName("b"), primary, t0)
	assert.Empty(t, p.Available(t0), "two primaries: no server takes writes")
	assert.True(t, p.SplitBrain())
	assert.Contains(t, p.Problem(), "split brain: a, b")
	p.SetDB(p.ByName("b"), replica, t0)
	assert.Equal(t, []string{"a"}, names(p.Available(t0)))
	assert.False(t, p.SplitBrain())
}

func TestReplicaRoleLagAndFallback(t *testing.T) {
	p := rolePool(t, config.RoleReplica, true, 5*time.Second)
	p.SetDB(p.ByName("a"), primary, t0)
	p.SetDB(p.ByName("b"), replica, t0)
	p.SetDB(p.ByName("c"), pool.DBState{Up: true, InRecovery: true, Lag: time.Minute}, t0)
	assert.Equal(t, []string{"b"}, names(p.Available(t0)), "c lags beyond max_lag")

	p.SetDB(p.ByName("b"), down, t0)
	assert.Equal(t, []string{"a"}, names(p.Available(t0)), "no replica usable: fall back to the primary")
	assert.Contains(t, p.Problem(), "falling back to primary a")

	noFallback := rolePool(t, config.RoleReplica, false, 0)
	noFallback.SetDB(noFallback.ByName("a"), primary, t0)
	assert.Empty(t, noFallback.Available(t0))
	assert.Contains(t, noFallback.Problem(), "no usable replica")
}

// A reload keeps the servers' last checks: the new generation's pool knows
// the primary at once instead of refusing until the next probe.
func TestRoleVerdictSurvivesNewGeneration(t *testing.T) {
	p := rolePool(t, config.RolePrimary, false, 0)
	p.SetDB(p.ByName("a"), replica, t0)
	p.SetDB(p.ByName("b"), primary, t0)
	cfg := poolConfig(3)
	cfg.Sticky = nil
	cfg.Role = config.RolePrimary
	cfg.Health.Postgres = &config.PostgresHealth{}
	next := pool.NewFrom(0, cfg, 0, nil, t0, p)
	assert.Equal(t, []string{"b"}, names(next.Available(t0)))
}
