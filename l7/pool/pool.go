package pool

import (
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xlbproject/xlb/internal/failopen"
	"github.com/xlbproject/xlb/l7/config"
)

// Pool is one app-server pool.
type Pool struct {
	Name     string
	Index    int
	Backends []*Backend
	// Budget bounds the retries to the pool's servers.
	Budget *Budget

	passive config.Passive
	// failOpen: when too few servers not draining pass their checks,
	// new clients go to all of those (config.Health.FailOpen).
	failOpen failopen.Policy
	log      *slog.Logger
	byKey    map[uint64]*Backend
	byName   map[string]*Backend

	mu   sync.Mutex // serialises state transitions and snapshot rebuilds
	snap atomic.Pointer[snapshot]

	roles      roleConfig
	problem    atomic.Pointer[string]
	splitBrain atomic.Bool
}

type snapshot struct {
	avail   []*Backend
	expires int64 // unix nanos of the earliest ejection end; 0 = none
	// failingOpen: avail holds every server not draining, failing ones
	// included, because too few pass; passing is how many do.
	failingOpen bool
	passing     int
}

// ServerKey is the stable identity of a server used in sticky cookies and
// consistent hashing.
func ServerKey(pool, server string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(pool))
	h.Write([]byte{0})
	h.Write([]byte(server))
	return h.Sum64()
}

// New builds a pool from validated config. firstID is the director-wide ID
// of its first server. Servers marked drain in the config start draining
// with a deadline of now plus the sticky drain timeout (or now when the pool
// is not sticky).
func New(index int, cfg config.Pool, firstID int, log *slog.Logger, now time.Time) *Pool {
	return NewFrom(index, cfg, firstID, log, now, nil)
}

// NewFrom builds the next generation of prev (which may be nil): a server
// with the same name and address as one of prev keeps its state (health,
// ejection, drain, slow start, in-flight count). A server new to the pool
// starts its slow start now, and the config's drain flag is applied to
// every server: set starts a drain unless one is already running, unset
// ends one.
func NewFrom(index int, cfg config.Pool, firstID int, log *slog.Logger, now time.Time, prev *Pool) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		Name:     cfg.Name,
		Index:    index,
		passive:  cfg.Health.Passive,
		failOpen: cfg.Health.FailOpen(),
		log:      log.With("pool", cfg.Name),
		byKey:    make(map[uint64]*Backend, len(cfg.Servers)),
		byName:   make(map[string]*Backend, len(cfg.Servers)),
		Budget:   NewBudgetFrom(cfg.RetryBudget, prevBudget(prev)),
		roles:    newRoleConfig(cfg),
	}
	for i, s := range cfg.Servers {
		b := &Backend{
			ID:     firstID + i,
			Index:  i,
			Name:   s.Name,
			Addr:   s.Addr,
			Pool:   cfg.Name,
			Weight: max(s.Weight, 1),
			Key:    ServerKey(cfg.Name, s.Name),
		}
		var old *Backend
		if prev != nil {
			old = prev.byName[s.Name]
		}
		if old != nil && old.Addr == s.Addr {
			b.state = old.state
		} else {
			b.state = &state{}
			// A pool with a role uses no server before its first check
			// says which role it has: a write endpoint must never reach a
			// standby, nor a read endpoint the primary unasked.
			b.activeUp.Store(cfg.Role == "")
			if prev != nil {
				// Added to a running pool: ramp up like a server that came back.
				b.upSince.Store(now.UnixNano())
			}
		}
		switch {
		case s.Drain && b.drainDeadline.Load() == 0:
			deadline := now
			if cfg.Sticky != nil {
				deadline = now.Add(cfg.Sticky.DrainTimeout)
			}
			b.drainDeadline.Store(max(deadline.UnixNano(), 1))
		case !s.Drain && b.drainDeadline.Load() != 0 && old != nil:
			b.drainDeadline.Store(0)
		}
		p.Backends = append(p.Backends, b)
		p.byKey[b.Key] = b
		p.byName[b.Name] = b
	}
	p.mu.Lock()
	if cfg.Health.Postgres != nil {
		// Servers kept from prev carry their last check; the verdict
		// follows this generation's role and bounds. Only servers whose
		// verdict changes are touched: the state is shared with the
		// running generation, whose open TCP connections close when
		// their server reads as down even for a moment.
		want := p.roleVerdictLocked()
		for _, b := range p.Backends {
			if b.activeUp.Load() != want[b] {
				b.activeUp.Store(want[b])
			}
		}
	}
	var was *snapshot
	if prev != nil {
		was = prev.snap.Load()
		if prev.failOpen != p.failOpen {
			p.log.Info("fail-open policy changed", "from", prev.failOpen.String(), "to", p.failOpen.String())
		}
	}
	p.rebuildFromLocked(now, was)
	p.mu.Unlock()
	return p
}

// Refresh rebuilds the set of available servers from their state. A new
// generation calls it once it receives the state transitions, to pick up
// any that reached only the previous generation's pool meanwhile.
func (p *Pool) Refresh(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuildLocked(now)
}

// ByKey returns the server with the given Key, or nil.
func (p *Pool) ByKey(key uint64) *Backend { return p.byKey[key] }

// ByName returns the server with the given name, or nil.
func (p *Pool) ByName(name string) *Backend { return p.byName[name] }

// Available returns the servers that may take new clients at now: while
// the pool fails open, every server not draining. The slice is shared
// and immutable: do not modify it.
func (p *Pool) Available(now time.Time) []*Backend { return p.snapshotAt(now).avail }

func (p *Pool) snapshotAt(now time.Time) *snapshot {
	s := p.snap.Load()
	if s.expires != 0 && now.UnixNano() >= s.expires {
		s = p.refresh(now)
	}
	return s
}

// View is what a pool offers new clients at one instant, read from one
// snapshot so that readers reporting several of its figures never mix two.
type View struct {
	// Avail is Available: while FailingOpen, every server not draining.
	Avail []*Backend
	// FailingOpen: too few servers not draining pass their checks (none,
	// or fewer than health.fail_open_below) and new clients go to all of
	// them.
	FailingOpen bool
	// passing counts the servers in Avail that pass their checks.
	passing int
}

// Passing is how many servers passing their checks may take new clients:
// while the pool fails open, fewer than Avail holds.
func (v View) Passing() int { return v.passing }

// Healthy reports whether at least one server passing its checks may take
// new clients.
func (v View) Healthy() bool { return v.Passing() > 0 }

// View returns the pool's View at now.
func (p *Pool) View(now time.Time) View {
	s := p.snapshotAt(now)
	return View{Avail: s.avail, FailingOpen: s.failingOpen, passing: s.passing}
}

// Healthy is View(now).Healthy().
func (p *Pool) Healthy(now time.Time) bool { return p.View(now).Healthy() }

// FailingOpen is View(now).FailingOpen.
func (p *Pool) FailingOpen(now time.Time) bool { return p.View(now).FailingOpen }

// FailOpenKeeps reports whether a client pinned to b may stay on it
// although b fails its checks, because the pool fails open with b in it:
// without this every request of a session would be re-pinned, and the
// few servers still passing would collect every session.
func (p *Pool) FailOpenKeeps(b *Backend, now time.Time) bool {
	s := p.snapshotAt(now)
	return s.failingOpen && slices.Contains(s.avail, b)
}

func (p *Pool) refresh(now time.Time) *snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.snap.Load()
	if s.expires != 0 && now.UnixNano() >= s.expires {
		for _, b := range p.Backends {
			if u := b.ejectedUntil.Load(); u >= s.expires && u <= now.UnixNano() {
				p.log.Info("backend ejection over", "backend", b.Name)
			}
		}
		s = p.rebuildLocked(now)
	}
	return s
}

func (p *Pool) rebuildLocked(now time.Time) *snapshot {
	return p.rebuildFromLocked(now, p.snap.Load())
}

// rebuildFromLocked builds and stores the snapshot at now; was is the one
// it follows (the previous generation's on a reload), against which
// failing open starting or ending is logged, once each.
func (p *Pool) rebuildFromLocked(now time.Time, was *snapshot) *snapshot {
	s := &snapshot{avail: make([]*Backend, 0, len(p.Backends))}
	failing := 0
	for _, b := range p.Backends {
		switch {
		case b.Available(now):
			s.avail = append(s.avail, b)
		case b.drainDeadline.Load() == 0:
			// Fails its active checks or is ejected.
			failing++
		}
		if u := b.ejectedUntil.Load(); u > now.UnixNano() && (s.expires == 0 || u < s.expires) {
			s.expires = u
		}
	}
	s.passing = len(s.avail)
	if p.failOpen.Open(s.passing, failing) {
		s.avail = s.avail[:0]
		for _, b := range p.Backends {
			if b.drainDeadline.Load() == 0 {
				s.avail = append(s.avail, b)
			}
		}
		s.failingOpen = true
	}
	if was != nil && was.failingOpen != s.failingOpen {
		attrs := []any{"passing", s.passing, "servers", s.passing + failing, "fail_open", p.failOpen.String()}
		if s.failingOpen {
			p.log.Warn("too few servers pass their health checks: failing open, new clients go to every server not draining", attrs...)
		} else {
			p.log.Info("pool no longer failing open", attrs...)
		}
	}
	p.snap.Store(s)
	return s
}

// SetUp records the active health view of b and reports whether it changed.
func (p *Pool) SetUp(b *Backend, up bool, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.activeUp.Load() == up {
		return false
	}
	b.activeUp.Store(up)
	if up {
		b.upSince.Store(now.UnixNano())
		b.consecErrs.Store(0)
		b.consec5xx.Store(0)
	}
	p.rebuildLocked(now)
	p.log.Info("backend health changed", "backend", b.Name, "up", up)
	return true
}

// Drain stops new clients from going to b; sticky clients stay until
// deadline. A zero deadline ends draining.
func (p *Pool) Drain(b *Backend, deadline time.Time, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d int64
	if !deadline.IsZero() {
		d = max(deadline.UnixNano(), 1)
	}
	b.drainDeadline.Store(d)
	p.rebuildLocked(now)
	p.log.Info("backend drain changed", "backend", b.Name, "draining", d != 0, "deadline", deadline)
}

// Report feeds one request outcome into passive health. connectErr means
// no connection could be made; otherwise status is the upstream status, 0
// when the upstream failed after connecting (reset, timeout). now is only
// read for failures, so callers may pass the zero time for a success.
func (p *Pool) Report(b *Backend, connectErr bool, status int, now time.Time) {
	if p.passive.Disabled {
		return
	}
	switch {
	case connectErr:
		if b.consecErrs.Add(1) >= int32(p.passive.ConsecutiveErrors) {
			p.tryEject(b, now, "connect_errors")
		}
	case status == 0 || status >= 500:
		if b.consec5xx.Add(1) >= int32(p.passive.Consecutive5xx) {
			p.tryEject(b, now, "5xx")
		}
	default:
		// Load first: on the common path both are zero and a store would
		// bounce the cache line between cores for nothing.
		if b.consecErrs.Load() != 0 {
			b.consecErrs.Store(0)
		}
		if b.consec5xx.Load() != 0 {
			b.consec5xx.Store(0)
		}
	}
}

// tryEject ejects b unless the eject cap or the last-server rule forbids it.
func (p *Pool) tryEject(b *Backend, now time.Time, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.Ejected(now) {
		return
	}
	ejected, othersAvail := 0, 0
	for _, o := range p.Backends {
		if o.Ejected(now) {
			ejected++
		}
		if o != b && o.Available(now) {
			othersAvail++
		}
	}
	if ejected+1 > len(p.Backends)*p.passive.MaxEjectedPercent/100 || othersAvail == 0 {
		// Keep the counters: the server is still failing, and the next
		// failure retries once the cap has room.
		p.log.Debug("backend ejection refused by cap", "backend", b.Name, "reason", reason)
		return
	}
	n := now.UnixNano()
	// The back-off grows while ejections follow each other; a server that
	// stayed in for longer than max_ejection starts again from the base.
	if last := b.lastEjectEnd.Load(); last != 0 && n-last > int64(p.passive.MaxEjection) {
		b.ejectStreak.Store(0)
	}
	d := p.passive.BaseEjection
	for i := int32(0); i < b.ejectStreak.Load() && d < p.passive.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, p.passive.MaxEjection)
	b.ejectStreak.Add(1)
	until := n + int64(d)
	b.lastEjectEnd.Store(until)
	b.ejectedUntil.Store(until)
	b.ejections.Add(1)
	b.consecErrs.Store(0)
	b.consec5xx.Store(0)
	p.rebuildLocked(now)
	p.log.Info("backend ejected", "backend", b.Name, "reason", reason, "duration", d)
}
