package maglev

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// DefaultSize is the default table size M: a prime comfortably above 100×N
// for the few hundred backends a VIP has in practice, so that equal weights
// come within 1 % of each other.
const DefaultSize = 65537

// MaxSize bounds M so a typo cannot ask for gigabytes of table.
const MaxSize = 1<<26 - 5 // 67108859, prime

// Backend is one entry of the table's input: a stable identity and a weight.
// Name is what the permutation is derived from, so it must be the same on
// every host (an address string or a configured name, never a pointer or an
// index). Weight 0 means "not in the table".
type Backend struct {
	Name   string
	Weight uint32
}

// Table is a populated Maglev table.
type Table struct {
	// Names are the backend identities in the caller's input order
	// (including weight-0 backends, which own no slot).
	Names []string
	// Slots has M entries; each is an index into Names. It is empty (length
	// 0) when no backend has a positive weight: callers must treat that as
	// "no backend", never as "keep the previous table".
	Slots []uint32
}

// Empty reports whether the table has no backend at all.
func (t Table) Empty() bool { return len(t.Slots) == 0 }

// Size is M, or 0 for an empty table.
func (t Table) Size() int { return len(t.Slots) }

// Lookup returns the index (into Names) of the backend owning hash's slot.
// ok is false for an empty table.
func (t Table) Lookup(hash uint64) (index int, ok bool) {
	if len(t.Slots) == 0 {
		return 0, false
	}
	return int(t.Slots[hash%uint64(len(t.Slots))]), true
}

// Counts returns how many slots each backend owns, indexed like Names.
func (t Table) Counts() []int {
	counts := make([]int, len(t.Names))
	for _, s := range t.Slots {
		counts[s]++
	}
	return counts
}

// Errors returned by Build; match them with errors.Is.
var (
	ErrSize    = errors.New("invalid table size")
	ErrBackend = errors.New("invalid backend")
)

// Build populates a table of size m (a prime, at least the number of
// backends with a positive weight) for the given backends.
//
// Each backend with weight w receives round(m·w/W) slots, W being the sum of
// weights (exactly within one slot, largest remainders first). Backends take
// turns in proportion to their weights; on its turn a backend claims the next
// free slot of its own permutation (offset + j·skip) mod m, as in the paper.
// The permutation is walked on the fly, so memory is O(N + M).
func Build(backends []Backend, m int) (Table, error) {
	if err := checkSize(m); err != nil {
		return Table{}, err
	}
	names := make([]string, len(backends))
	order := make([]int, 0, len(backends)) // indices of weighted backends, sorted by name
	seen := make(map[string]struct{}, len(backends))
	var total uint64
	for i, b := range backends {
		if b.Name == "" {
			return Table{}, fmt.Errorf("%w: backend %d has an empty name", ErrBackend, i)
		}
		if _, dup := seen[b.Name]; dup {
			return Table{}, fmt.Errorf("%w: duplicate backend name %q", ErrBackend, b.Name)
		}
		seen[b.Name] = struct{}{}
		names[i] = b.Name
		if b.Weight > 0 {
			order = append(order, i)
			total += uint64(b.Weight)
		}
	}
	if len(order) == 0 {
		return Table{Names: names}, nil
	}
	if len(order) > m {
		return Table{}, fmt.Errorf("%w: %d backends do not fit in %d slots; use a prime size of at least %d",
			ErrSize, len(order), m, 100*len(order))
	}
	// Sorting by name makes the turn order, and so the table, independent
	// of the caller's input order.
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })

	p := newPopulation(backends, order, total, m)
	return Table{Names: names, Slots: p.fill()}, nil
}

// population is the working state of one Build.
type population struct {
	m       uint64
	idx     []uint32 // caller index per participant
	weight  []uint64
	quota   []int    // slots each participant must end with
	taken   []int    // slots claimed so far
	pos     []uint64 // current position in the participant's permutation
	skip    []uint64
	wmax    uint64
	entries []uint32
	// used mirrors "entries[i] is filled" as a bitset: M/8 bytes stay in L1
	// cache where the 4·M-byte entries do not, and the probe loop below is
	// where Build spends its time (≈ M·ln M probes in all).
	used []uint64
	// filled counts claimed slots. Once only tailSize slots are free, they
	// move to the free list and claims switch from probing to a search of
	// that list (see claimFromFree).
	filled   int
	tailSize int
	free     []uint64
	offset   []uint64
	inv      []uint64 // skip⁻¹ mod m, computed lazily in tail mode (0 = not yet)
}

func newPopulation(backends []Backend, order []int, total uint64, m int) *population {
	n := len(order)
	p := &population{
		m:       uint64(m),
		idx:     make([]uint32, n),
		weight:  make([]uint64, n),
		quota:   make([]int, n),
		taken:   make([]int, n),
		pos:     make([]uint64, n),
		skip:    make([]uint64, n),
		entries: make([]uint32, m),
		used:    make([]uint64, (m+63)/64),
		offset:  make([]uint64, n),
		inv:     make([]uint64, n),
	}
	// With F slots free, probing costs O(M/F) expected steps per claim and
	// a search of the free list O(F) (two 64-bit divisions per entry). The
	// crossover measured for M=65537 lies near √M/4 (≈ 64 slots), where it
	// saves ~15 % of the build.
	p.tailSize = int(math.Sqrt(float64(m))) / 4
	for k, i := range order {
		b := backends[i]
		p.idx[k] = uint32(i)
		p.weight[k] = uint64(b.Weight)
		p.wmax = max(p.wmax, uint64(b.Weight))
		p.offset[k] = offsetHash(b.Name) % p.m
		p.pos[k] = p.offset[k]
		p.skip[k] = skipHash(b.Name)%(p.m-1) + 1
	}
	p.assignQuotas(total)
	return p
}

// assignQuotas gives each participant floor(m·w/W) slots and hands the
// remainder out by largest fractional part, ties broken by name order, so
// shares match weights within one slot.
func (p *population) assignQuotas(total uint64) {
	n := len(p.weight)
	rem := make([]uint64, n)
	assigned := 0
	for k, w := range p.weight {
		// m·w fits in uint64: m < 2^26 and w < 2^32.
		q := p.m * w / total
		rem[k] = p.m * w % total
		p.quota[k] = int(q)
		assigned += int(q)
	}
	left := int(p.m) - assigned
	if left == 0 {
		return
	}
	byRem := make([]int, n)
	for k := range byRem {
		byRem[k] = k
	}
	slices.SortStableFunc(byRem, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for _, k := range byRem[:left] {
		p.quota[k]++
	}
}

// fill runs the turns. In round r a participant may hold up to
// ceil(r·w/wmax) slots (capped by its quota), so heavier backends take
// proportionally more turns throughout instead of all at the end; that keeps
// their slots spread over the permutation order as in unweighted Maglev.
func (p *population) fill() []uint32 {
	// active holds the participants still below quota, in name order;
	// finished ones are dropped so skewed weights cost O(M) rounds of work
	// over the heavy backends only, not O(M·N).
	active := make([]int, len(p.weight))
	for k := range active {
		active[k] = k
	}
	for round := uint64(1); len(active) > 0; round++ {
		kept := active[:0]
		for _, k := range active {
			target := int((round*p.weight[k] + p.wmax - 1) / p.wmax)
			target = min(target, p.quota[k])
			for p.taken[k] < target {
				p.claim(k)
			}
			if p.taken[k] < p.quota[k] {
				kept = append(kept, k)
			}
		}
		active = kept
	}
	return p.entries
}

// claim gives participant k the next free slot of its permutation.
func (p *population) claim(k int) {
	if p.free != nil {
		p.claimFromFree(k)
		return
	}
	pos, skip, m := p.pos[k], p.skip[k], p.m
	for p.used[pos>>6]&(1<<(pos&63)) != 0 {
		pos += skip
		if pos >= m {
			pos -= m
		}
	}
	p.take(k, pos)
	pos += skip
	if pos >= m {
		pos -= m
	}
	p.pos[k] = pos
	if int(p.m)-p.filled == p.tailSize {
		p.collectFree()
	}
}

// claimFromFree finds the same slot the probe loop would: the free slot that
// comes first in k's permutation. Slot s sits at index (s-offset)·skip⁻¹ mod m
// of the permutation; every slot before k's current position was already
// seen filled, and slots are never freed, so the free slot with the smallest
// index is the next one the probe would reach.
func (p *population) claimFromFree(k int) {
	m := p.m
	if p.inv[k] == 0 {
		p.inv[k] = modInverse(p.skip[k], m)
	}
	best, bestIdx := 0, m
	for i, s := range p.free {
		// s, offset < m < 2^26, so the product stays below 2^52.
		idx := (s + m - p.offset[k]) % m * p.inv[k] % m
		if idx < bestIdx {
			best, bestIdx = i, idx
		}
	}
	s := p.free[best]
	p.free[best] = p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.take(k, s)
}

func (p *population) take(k int, pos uint64) {
	p.used[pos>>6] |= 1 << (pos & 63)
	p.entries[pos] = p.idx[k]
	p.taken[k]++
	p.filled++
}

func (p *population) collectFree() {
	p.free = make([]uint64, 0, p.tailSize)
	for s := uint64(0); s < p.m; s++ {
		if p.used[s>>6]&(1<<(s&63)) == 0 {
			p.free = append(p.free, s)
		}
	}
}

// modInverse returns x⁻¹ mod m for prime m by Fermat's little theorem.
func modInverse(x, m uint64) uint64 {
	result, base, exp := uint64(1), x%m, m-2
	for exp > 0 {
		if exp&1 == 1 {
			result = result * base % m
		}
		base = base * base % m
		exp >>= 1
	}
	return result
}

func checkSize(m int) error {
	if m < 2 || m > MaxSize {
		return fmt.Errorf("%w: %d is outside 2..%d", ErrSize, m, MaxSize)
	}
	if !IsPrime(m) {
		return fmt.Errorf("%w: %d is not prime (Maglev needs a prime size; %d is the default)", ErrSize, m, DefaultSize)
	}
	return nil
}

// IsPrime reports whether n is prime. Trial division is plenty for table
// sizes up to MaxSize (at most ~4,100 divisions).
func IsPrime(n int) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := 3; d*d <= n; d += 2 {
		if n%d == 0 {
			return false
		}
	}
	return true
}
