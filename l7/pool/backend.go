package pool

import (
	"sync/atomic"
	"time"
)

// Backend is one app server as one config generation sees it. Exported
// fields are set at construction and never change. The state behind the
// methods (in flight, health, ejection, drain, slow start) lives in a
// separate record that a later generation built with NewFrom shares when
// the server keeps its name and address: a reload or a runtime change does
// not reset it.
type Backend struct {
	ID     int // index in the director's Backends(); stable for a config
	Index  int // index in its pool's Backends
	Name   string
	Addr   string
	Pool   string
	Weight int
	// Key is a stable hash of pool and server name. Sticky cookies carry it
	// instead of the address, and every L7 host with the same config
	// computes the same key.
	Key uint64

	*state
}

// state is a server's runtime state, shared by every generation that has
// the server. All of it is atomic because two generations' pools may touch
// it at once while requests of the older one finish.
type state struct {
	inflight      atomic.Int64
	activeUp      atomic.Bool
	ejectedUntil  atomic.Int64 // unix nanos; 0 = never ejected
	ejections     atomic.Uint64
	consecErrs    atomic.Int32
	consec5xx     atomic.Int32
	drainDeadline atomic.Int64 // unix nanos; 0 = not draining
	upSince       atomic.Int64 // unix nanos of the last down→up; 0 = up from the start
	ejectStreak   atomic.Int32
	lastEjectEnd  atomic.Int64
	stickySeen    atomic.Int64 // unix nanos of the last sticky request while draining
	db            atomic.Pointer[DBState]
}

// InFlight is the number of requests currently forwarded to the server.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// Acquire counts a request as in flight; Release undoes it.
func (b *Backend) Acquire() { b.inflight.Add(1) }

// Release ends an in-flight request.
func (b *Backend) Release() { b.inflight.Add(-1) }

// Up reports the active health view (true when no active check runs).
func (b *Backend) Up() bool { return b.activeUp.Load() }

// Ejected reports whether passive health has the server ejected at now.
func (b *Backend) Ejected(now time.Time) bool { return b.ejectedUntil.Load() > now.UnixNano() }

// Ejections is how many times the server has been passively ejected.
func (b *Backend) Ejections() uint64 { return b.ejections.Load() }

// Draining reports whether the server is draining and its deadline.
func (b *Backend) Draining() (bool, time.Time) {
	d := b.drainDeadline.Load()
	if d == 0 {
		return false, time.Time{}
	}
	return true, time.Unix(0, d)
}

// Available reports whether the server may take new clients at now.
func (b *Backend) Available(now time.Time) bool {
	return b.activeUp.Load() && !b.Ejected(now) && b.drainDeadline.Load() == 0
}

// StickyOK reports whether a client already pinned to the server may stay:
// healthy and not ejected, and if draining, before the drain deadline.
func (b *Backend) StickyOK(now time.Time) bool {
	if !b.activeUp.Load() || b.Ejected(now) {
		return false
	}
	d := b.drainDeadline.Load()
	return d == 0 || now.UnixNano() < d
}

// NoteStickyWhileDraining records that a client pinned to the draining
// server came back at now; drain status reports it so an operator can wait
// for the sticky clients to be gone as well as the in-flight requests.
func (b *Backend) NoteStickyWhileDraining(now time.Time) {
	if b.drainDeadline.Load() != 0 {
		b.stickySeen.Store(now.UnixNano())
	}
}

// StickySeen is when a pinned client last came to the server while it was
// draining (zero: none did).
func (b *Backend) StickySeen() time.Time {
	if n := b.stickySeen.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// EffectiveWeight is Weight×1000, scaled down during slow start: a server
// that came back (active check up, or ejection over) ramps linearly from
// 10 % to 100 % over slowStart, so a cold cache is not flooded.
func (b *Backend) EffectiveWeight(now time.Time, slowStart time.Duration) int64 {
	w := int64(b.Weight) * 1000
	if slowStart <= 0 {
		return w
	}
	start := max(b.upSince.Load(), b.ejectedUntil.Load())
	if start == 0 {
		return w
	}
	elapsed := now.UnixNano() - start
	if elapsed >= int64(slowStart) || elapsed < 0 {
		return w
	}
	frac := max(elapsed*1000/int64(slowStart), 100)
	return int64(b.Weight) * frac
}
