package admin

import (
	"fmt"
	"slices"
	"time"

	"github.com/xlbproject/xlb/l7/proxy"
)

// Pool is a pool as the API shows it.
type Pool struct {
	Name   string   `json:"name"`
	Policy string   `json:"policy"`
	Sticky bool     `json:"sticky"`
	Routes []string `json:"routes"`
	// Available is how many servers passing their checks may take new
	// clients; at 0 the pool's routes answer 503, unless it fails open.
	Available int `json:"available"`
	// FailingOpen: too few servers not draining pass their checks (none,
	// or fewer than health.fail_open_below) and new clients go to every
	// server not draining (health.all_down: fail_open); Problem then says
	// so.
	FailingOpen bool `json:"failing_open,omitempty"`
	// FailOpen is the pool's fail-open policy; nil unless all_down is
	// fail_open.
	FailOpen *FailOpen `json:"fail_open,omitempty"`
	Servers  []Server  `json:"servers"`
	// Role is the PostgreSQL role the pool wants (primary, replica), and
	// Problem why it has no server for it or uses its fallback (split
	// brain, no primary, no usable replica).
	Role    string `json:"role,omitempty"`
	Problem string `json:"problem,omitempty"`
	// SplitBrain is set while several servers claim primary: the pool
	// refuses new connections.
	SplitBrain bool `json:"split_brain,omitempty"`
}

// FailOpen is a pool's health.all_down: fail_open policy.
type FailOpen struct {
	// Below is health.fail_open_below in percent; 0 fails open only while
	// no server passes.
	Below int `json:"below,omitempty"`
}

// Server is a server as the API shows it.
type Server struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	// State is one of up, down (active health), ejected (passive health),
	// draining.
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
	// DrainDeadline is when sticky clients of a draining server are moved.
	DrainDeadline *time.Time `json:"drain_deadline,omitempty"`
	// StickySeen is the last request of a pinned client while draining.
	StickySeen *time.Time `json:"sticky_seen,omitempty"`
	// Empty is true for a draining server with no request in flight and no
	// sticky client left: none came back for the quiet period, or the
	// drain deadline has passed.
	Empty bool `json:"empty"`
	// Runtime is true when a runtime change (kept in the state file)
	// shapes this server.
	Runtime bool `json:"runtime"`
	// DB is the last PostgreSQL check of the server, for pools with one.
	DB *DBCheck `json:"db,omitempty"`
}

// DBCheck is what the PostgreSQL health check last learnt about a server.
type DBCheck struct {
	// Up is the check's rise/fall verdict: the server accepts a session
	// and answers (whether the pool uses it depends on its role).
	Up         bool    `json:"up"`
	InRecovery bool    `json:"in_recovery"`
	LagSeconds float64 `json:"lag_seconds"`
	// Error is why the last check failed (bad credentials, timeout).
	Error string `json:"error,omitempty"`
}

// describe reads the running generation's pools and servers.
func describe(p *proxy.Proxy, st State, now time.Time, quiet time.Duration) []Pool {
	cfg, dir := p.Running()
	runtime := map[[2]string]bool{}
	for _, o := range st.Overrides {
		runtime[[2]string{o.Pool, o.Name}] = true
	}
	routes := map[string][]string{}
	for _, r := range cfg.Routes {
		routes[r.Pool] = append(routes[r.Pool], r.Name)
	}
	var out []Pool
	for i, pl := range dir.Pools() {
		pc := cfg.Pools[i]
		view := pl.View(now)
		dp := Pool{
			Name:        pl.Name,
			Policy:      pc.Policy,
			Sticky:      pc.Sticky != nil,
			Routes:      slices.Clone(routes[pl.Name]),
			Available:   view.Passing(),
			FailingOpen: view.FailingOpen,
			Servers:     []Server{},
			Role:        pl.Role(),
			Problem:     pl.Problem(),
			SplitBrain:  pl.SplitBrain(),
		}
		if dp.Routes == nil {
			dp.Routes = []string{}
		}
		if pol := pc.Health.FailOpen(); pol.On {
			dp.FailOpen = &FailOpen{Below: pol.Below}
		}
		if dp.FailingOpen {
			dp.Problem = fmt.Sprintf("failing open: %d of %d servers pass their health checks, new clients go to every server not draining", view.Passing(), len(view.Avail))
		}
		for _, b := range pl.Backends {
			s := Server{
				Name: b.Name, Addr: b.Addr, Weight: b.Weight,
				InFlight: b.InFlight(),
				Runtime:  runtime[[2]string{pl.Name, b.Name}],
			}
			if db := b.DB(); db != nil {
				s.DB = &DBCheck{Up: db.Up, InRecovery: db.InRecovery, LagSeconds: db.Lag.Seconds(), Error: db.Err}
			}
			draining, deadline := b.Draining()
			switch {
			case draining:
				s.State = "draining"
			case !b.Up():
				s.State = "down"
			case b.Ejected(now):
				s.State = "ejected"
			default:
				s.State = "up"
			}
			if draining {
				s.DrainDeadline = &deadline
				if seen := b.StickySeen(); !seen.IsZero() {
					s.StickySeen = &seen
				}
				stickyGone := true
				if pc.Sticky != nil && now.Before(deadline) {
					// No pinned client for the quiet period since the drain
					// began or since the last one came.
					since := deadline.Add(-pc.Sticky.DrainTimeout)
					if s.StickySeen != nil && s.StickySeen.After(since) {
						since = *s.StickySeen
					}
					stickyGone = now.Sub(since) >= quiet
				}
				s.Empty = s.InFlight == 0 && stickyGone
			}
			dp.Servers = append(dp.Servers, s)
		}
		out = append(out, dp)
	}
	return out
}
