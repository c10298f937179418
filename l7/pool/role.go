package pool

import (
	"fmt"
	"strings"
	"time"

	"github.com/xlbproject/xlb/l7/config"
)

// DBState is what the PostgreSQL health check last learnt about a server.
type DBState struct {
	// Up is the check's rise/fall verdict: the server accepts a session
	// and answers the query.
	Up bool
	// InRecovery is pg_is_in_recovery() of the last successful check: a
	// standby (replica) is in recovery, the primary is not.
	InRecovery bool
	// Lag is the replay lag of a standby (0 when it has replayed all it
	// received, and on a primary).
	Lag time.Duration
	// Err is why the last check failed, empty when it succeeded.
	Err string
}

// roleConfig is the PostgreSQL role a pool wants.
type roleConfig struct {
	role     string // "" for pools without a role
	maxLag   time.Duration
	fallback bool
}

func newRoleConfig(cfg config.Pool) roleConfig {
	rc := roleConfig{role: cfg.Role, fallback: cfg.ReplicaFallback}
	if pg := cfg.Health.Postgres; pg != nil {
		rc.maxLag = pg.MaxLag
	}
	return rc
}

// Role is the PostgreSQL role the pool wants, "" when it has none.
func (p *Pool) Role() string { return p.roles.role }

// Problem says why a pool with a role has no server for new connections
// (split brain, no primary, no usable replica) or uses a fallback; empty
// when all is as wanted.
func (p *Pool) Problem() string {
	if s := p.problem.Load(); s != nil {
		return *s
	}
	return ""
}

// SplitBrain reports whether more than one server claims to be primary.
func (p *Pool) SplitBrain() bool { return p.splitBrain.Load() }

// SetDB records the PostgreSQL check of b and recomputes which servers of
// the pool may take new connections for its role:
//
//   - role primary: the one server that is up and not in recovery. When
//     several claim it (split brain) none is used: writes to two primaries
//     diverge, refusing is the only safe answer until an operator or the
//     failover manager fences one.
//   - role replica: the servers up, in recovery, with a lag within
//     max_lag; with replica_fallback, the primary while none is.
//   - no role: every server that is up.
func (p *Pool) SetDB(b *Backend, st DBState, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.db.Store(&st)
	want := p.roleVerdictLocked()
	changed := false
	for _, o := range p.Backends {
		up := want[o]
		if o.activeUp.Load() != up {
			changed = true
			o.activeUp.Store(up)
			if up {
				o.upSince.Store(now.UnixNano())
				o.consecErrs.Store(0)
				o.consec5xx.Store(0)
			}
			p.log.Info("backend role verdict changed", "backend", o.Name, "role", p.roles.role, "usable", up)
		}
	}
	if changed {
		p.rebuildLocked(now)
	}
}

// roleVerdictLocked says which servers are usable for the pool's role and
// sets the pool's problem.
func (p *Pool) roleVerdictLocked() map[*Backend]bool {
	want := make(map[*Backend]bool, len(p.Backends))
	var primaries, replicas []*Backend
	for _, b := range p.Backends {
		st := b.db.Load()
		if st == nil || !st.Up {
			continue
		}
		if !st.InRecovery {
			primaries = append(primaries, b)
		} else if p.roles.maxLag <= 0 || st.Lag <= p.roles.maxLag {
			replicas = append(replicas, b)
		}
	}
	problem := ""
	split := false
	switch p.roles.role {
	case config.RolePrimary:
		switch len(primaries) {
		case 1:
			want[primaries[0]] = true
		case 0:
			problem = "no primary: no server is up and out of recovery"
		default:
			split = true
			problem = fmt.Sprintf("split brain: %s all claim to be primary (not in recovery); refusing new connections", names(primaries))
		}
	case config.RoleReplica:
		for _, b := range replicas {
			want[b] = true
		}
		if len(replicas) == 0 {
			switch {
			case p.roles.fallback && len(primaries) == 1:
				want[primaries[0]] = true
				problem = "no usable replica: falling back to primary " + primaries[0].Name
			case len(primaries) > 1:
				split = true
				problem = fmt.Sprintf("no usable replica, and split brain: %s all claim to be primary", names(primaries))
			default:
				problem = "no usable replica (up, in recovery, lag within max_lag)"
			}
		}
	default:
		for _, b := range p.Backends {
			if st := b.db.Load(); st != nil && st.Up {
				want[b] = true
			}
		}
	}
	if old := p.Problem(); old != problem {
		if problem != "" {
			p.log.Warn("pool role problem", "role", p.roles.role, "problem", problem)
		} else {
			p.log.Info("pool role problem resolved", "role", p.roles.role, "was", old)
		}
	}
	p.problem.Store(&problem)
	p.splitBrain.Store(split)
	return want
}

// DB returns the last PostgreSQL check of the server, nil before the first
// one or without a PostgreSQL check.
func (b *Backend) DB() *DBState { return b.db.Load() }

func names(bs []*Backend) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return strings.Join(out, ", ")
}
