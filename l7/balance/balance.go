package balance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/maglev"
)

// Rand is the randomness a policy needs. *rand.Rand from math/rand/v2
// satisfies it but is not safe for concurrent use; Default is.
type Rand interface {
	IntN(n int) int
}

// Default is a Rand backed by math/rand/v2's global, concurrency-safe
// source.
type Default struct{}

// IntN returns a uniform int in [0, n).
func (Default) IntN(n int) int { return rand.IntN(n) }

// Policy picks one of cands. key is the request's hash key (only the hash
// policy uses it). cands is never modified. Pick returns nil only when
// cands is empty.
type Policy interface {
	Pick(cands []*pool.Backend, key uint64, now time.Time) *pool.Backend
}

// New returns the policy named in cfg for a pool. slowStart scales weights
// (see pool.Backend.EffectiveWeight).
func New(cfg config.Pool, rnd Rand) (Policy, error) {
	if rnd == nil {
		rnd = Default{}
	}
	switch cfg.Policy {
	case config.PolicyP2C, "":
		return &P2C{Rand: rnd, SlowStart: cfg.SlowStart}, nil
	case config.PolicyLeastConn:
		return &LeastConn{Rand: rnd, SlowStart: cfg.SlowStart}, nil
	case config.PolicyRoundRobin:
		return NewRoundRobin(len(cfg.Servers), cfg.SlowStart), nil
	case config.PolicyHash:
		return &Hash{}, nil
	}
	return nil, fmt.Errorf("create policy %q: unknown policy", cfg.Policy)
}

// P2C is power of two choices on in-flight requests: two distinct random
// candidates, the one with less in flight per unit of weight wins. It
// spreads load nearly as well as least-conn without scanning the pool, and
// avoids least-conn's herd onto one server that just freed up.
type P2C struct {
	Rand      Rand
	SlowStart time.Duration
}

// Pick implements Policy.
func (p *P2C) Pick(cands []*pool.Backend, _ uint64, now time.Time) *pool.Backend {
	switch n := len(cands); n {
	case 0:
		return nil
	case 1:
		return cands[0]
	default:
		i := p.Rand.IntN(n)
		j := p.Rand.IntN(n - 1)
		if j >= i {
			j++
		}
		a, b := cands[i], cands[j]
		if lessLoaded(b, a, now, p.SlowStart) {
			return b
		}
		return a
	}
}

// lessLoaded reports (a.inflight+1)/a.weight < (b.inflight+1)/b.weight,
// cross-multiplied to stay in integers.
func lessLoaded(a, b *pool.Backend, now time.Time, slowStart time.Duration) bool {
	la := (a.InFlight() + 1) * b.EffectiveWeight(now, slowStart)
	lb := (b.InFlight() + 1) * a.EffectiveWeight(now, slowStart)
	return la < lb
}

// LeastConn picks the candidate with the fewest in-flight requests per unit
// of weight, scanning all of them. Ties go to the first found from a random
// start, so an idle pool still spreads its traffic. (At L7, where upstream
// connections are pooled, in-flight requests are the connections that
// matter, as in HAProxy's leastconn.)
type LeastConn struct {
	Rand      Rand
	SlowStart time.Duration
}

// Pick implements Policy.
func (l *LeastConn) Pick(cands []*pool.Backend, _ uint64, now time.Time) *pool.Backend {
	n := len(cands)
	if n == 0 {
		return nil
	}
	start := 0
	if n > 1 {
		start = l.Rand.IntN(n)
	}
	best := cands[start]
	for k := 1; k < n; k++ {
		c := cands[(start+k)%n]
		if lessLoaded(c, best, now, l.SlowStart) {
			best = c
		}
	}
	return best
}

// RoundRobin is smooth weighted round robin (as in nginx): over any window
// of sum(weights) picks each server gets its weight's share, interleaved
// rather than in bursts.
type RoundRobin struct {
	slowStart time.Duration
	mu        sync.Mutex
	current   []int64 // indexed by pool.Backend.Index
}

// NewRoundRobin returns a round-robin policy for a pool of n servers.
func NewRoundRobin(n int, slowStart time.Duration) *RoundRobin {
	return &RoundRobin{slowStart: slowStart, current: make([]int64, n)}
}

// Pick implements Policy.
func (r *RoundRobin) Pick(cands []*pool.Backend, _ uint64, now time.Time) *pool.Backend {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var total int64
	var best *pool.Backend
	for _, c := range cands {
		w := c.EffectiveWeight(now, r.slowStart)
		total += w
		r.current[c.Index] += w
		if best == nil || r.current[c.Index] > r.current[best.Index] {
			best = c
		}
	}
	r.current[best.Index] -= total
	return best
}

// Hash is consistent hashing on a request key through a Maglev table built
// over the candidates: the same key goes to the same server while it is
// available, on every L7 host with the same config, and when a server
// leaves only its own keys move.
type Hash struct {
	cache atomic.Pointer[hashTable]
}

type hashTable struct {
	data  **pool.Backend // identity of the candidate slice the table was built for
	n     int
	cands []*pool.Backend
	table maglev.Table
}

// Pick implements Policy.
func (h *Hash) Pick(cands []*pool.Backend, key uint64, _ time.Time) *pool.Backend {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	t := h.cache.Load()
	// The pool hands out immutable snapshots, so the same backing array
	// means the same candidate set.
	if t == nil || t.data != unsafe.SliceData(cands) || t.n != len(cands) {
		t = buildHashTable(cands)
		h.cache.Store(t)
	}
	i, ok := t.table.Lookup(key)
	if !ok {
		return cands[0]
	}
	return t.cands[i]
}

func buildHashTable(cands []*pool.Backend) *hashTable {
	in := make([]maglev.Backend, len(cands))
	for i, c := range cands {
		in[i] = maglev.Backend{Name: c.Name, Weight: uint32(max(c.Weight, 1))}
	}
	t := &hashTable{data: unsafe.SliceData(cands), n: len(cands), cands: cands}
	// L7 pools are small; 4093 slots keep each server within a few per
	// cent of its share for up to ~40 servers and build in microseconds.
	size := 4093
	if len(cands)*100 > size {
		size = maglev.DefaultSize
	}
	tbl, err := maglev.Build(in, size)
	if err == nil {
		t.table = tbl
	}
	return t
}

// HashBytes is FNV-1a over b: the request-key hash for the hash policy.
// It is deterministic across processes (unlike hash/maphash), so every L7
// host maps a key to the same server.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

var (
	_ Policy = (*P2C)(nil)
	_ Policy = (*LeastConn)(nil)
	_ Policy = (*RoundRobin)(nil)
	_ Policy = (*Hash)(nil)
)
