package etcdstore

import (
	"context"
	"sync"
	"time"
)

// Applied is the newest store revision a host has applied, and a way to
// wait for one: a change is acknowledged only once it is live on the host
// that made it, not merely committed.
type Applied struct {
	mu  sync.Mutex
	rev int64
	ch  chan struct{} // closed at the next Set
}

// NewApplied returns an Applied at revision 0.
func NewApplied() *Applied { return &Applied{ch: make(chan struct{})} }

// Set records that the host has applied the state at revision rev and
// wakes every waiter.
func (a *Applied) Set(rev int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rev = rev
	close(a.ch)
	a.ch = make(chan struct{})
}

// Wait blocks until a revision ≥ rev has been applied (true), or ctx ends
// or timeout passes first (false).
func (a *Applied) Wait(ctx context.Context, rev int64, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		done, ch := a.rev >= rev, a.ch
		a.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		}
	}
}
