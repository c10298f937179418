package pool

import (
	"sync/atomic"
	"time"

	"github.com/xlbproject/xlb/l7/config"
)

// budgetBuckets is how many slices the sliding window is cut into: the
// window slides by a tenth of its length, which is fine enough for a budget
// that only needs to be roughly right.
const budgetBuckets = 10

// Budget is a pool's retry budget: retries are allowed while the retries of
// the last window stay within max(percent of its requests, a floor). Like
// Envoy's retry budget and Finagle's RetryBudget, it stops retries from
// multiplying an overload: when every server is failing, each request is
// tried about once, not max-retries times.
//
// It is lock-free and approximate: a bucket that rolls over while another
// goroutine counts into it may lose that count. The hot path (Request) is
// one atomic load and one atomic add.
type Budget struct {
	cfg     config.RetryBudget
	percent int64
	floor   int64 // retries always allowed per window
	width   int64 // bucket width, nanoseconds

	buckets [budgetBuckets]budgetBucket

	retries   atomic.Uint64 // allowed, ever
	exhausted atomic.Uint64 // refused, ever
}

type budgetBucket struct {
	epoch    atomic.Int64 // now / width of the period the counts belong to
	requests atomic.Int64
	retries  atomic.Int64
}

// NewBudget builds a budget from validated config.
func NewBudget(c config.RetryBudget) *Budget {
	w := max(c.Window, time.Second)
	return &Budget{
		cfg:     c,
		percent: int64(c.Percent),
		floor:   int64(c.MinPerSecond) * int64(w/time.Second),
		width:   int64(w) / budgetBuckets,
	}
}

// NewBudgetFrom is the budget of a pool's next generation: prev's own, so
// the window's counts carry over a reload, unless the budget's config
// changed.
func NewBudgetFrom(c config.RetryBudget, prev *Budget) *Budget {
	if prev != nil && prev.cfg == c {
		return prev
	}
	return NewBudget(c)
}

func prevBudget(prev *Pool) *Budget {
	if prev == nil {
		return nil
	}
	return prev.Budget
}

func (b *Budget) bucket(now time.Time) (*budgetBucket, int64) {
	e := now.UnixNano() / b.width
	k := &b.buckets[e%budgetBuckets]
	if k.epoch.Load() != e {
		if old := k.epoch.Swap(e); old != e {
			k.requests.Store(0)
			k.retries.Store(0)
		}
	}
	return k, e
}

// Request counts one request (its first try) at now.
func (b *Budget) Request(now time.Time) {
	k, _ := b.bucket(now)
	k.requests.Add(1)
}

// AllowRetry reports whether one more retry fits the budget at now, and
// counts it (as a retry or as refused).
func (b *Budget) AllowRetry(now time.Time) bool {
	cur, e := b.bucket(now)
	var reqs, retries int64
	for i := range b.buckets {
		k := &b.buckets[i]
		if ke := k.epoch.Load(); ke > e-budgetBuckets && ke <= e {
			reqs += k.requests.Load()
			retries += k.retries.Load()
		}
	}
	if retries+1 > max(b.floor, reqs*b.percent/100) {
		b.exhausted.Add(1)
		return false
	}
	cur.retries.Add(1)
	b.retries.Add(1)
	return true
}

// Retries is how many retries the budget has allowed.
func (b *Budget) Retries() uint64 { return b.retries.Load() }

// Exhausted is how many retries the budget has refused.
func (b *Budget) Exhausted() uint64 { return b.exhausted.Load() }
