package director

import (
	"cmp"
	"slices"
	"time"

	"github.com/xlbproject/xlb/l7/pool"
)

// A server is added to a pool one L7 host after the other (`xlb pool
// server add` against each admin socket, or etcd's watch delay), so for a
// while some hosts know it and others do not. A client pinned to it by a
// host that has it may next reach one that does not. Re-pinning there
// would move the client off its server for good; instead, while the
// cookie is younger than the pool's propagation grace, that host serves
// the request on a stand-in and leaves the cookie alone, and the client is
// back on its server at its first request after the server reaches the
// host. The cookie's issue time tells how recent the pin is: only a host
// that has the server writes a cookie naming it, and it rewrites it past
// half the max age at the latest, so a cookie issued within the grace means
// some host of the fleet had the server that recently.
//
// A server this host removed itself is gone, not coming: its clients are
// re-pinned at once, as are the clients of a cookie older than the grace.

// maxGone bounds the removals a pool remembers; beyond it the oldest are
// forgotten, and a recent cookie naming one of those gets a stand-in until
// the grace is over, like any server this host never had.
const maxGone = 4096

// goneFrom returns the removals the next generation p of prev's pool
// remembers: prev's own, while a cookie naming them may still be valid
// (maxAge) and as long as the server has not come back, plus the servers
// of prev that p lacks, removed now.
func goneFrom(prev *poolState, p *pool.Pool, maxAge time.Duration, now time.Time) map[uint64]int64 {
	if prev == nil {
		return nil
	}
	at := now.UnixNano()
	var gone map[uint64]int64 // most reloads remove nothing: no map then
	remember := func(k uint64, when int64) {
		if gone == nil {
			gone = map[uint64]int64{}
		}
		gone[k] = when
	}
	for k, when := range prev.gone {
		if at-when < int64(maxAge) && p.ByKey(k) == nil {
			remember(k, when)
		}
	}
	for _, b := range prev.pool.Backends {
		if p.ByKey(b.Key) == nil {
			remember(b.Key, at)
		}
	}
	if over := len(gone) - maxGone; over > 0 {
		keys := make([]uint64, 0, len(gone))
		for k := range gone {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b uint64) int { return cmp.Compare(gone[a], gone[b]) })
		for _, k := range keys[:over] {
			delete(gone, k)
		}
	}
	return gone
}

// standIn returns the server that serves a client whose valid cookie names
// key, a server this pool does not have, when the cookie is recent enough
// for the server to be still on its way here; nil when the client is to be
// re-pinned (grace off or over, server removed here, nothing available).
func (ps *poolState) standIn(key uint64, issued, now time.Time) *pool.Backend {
	if ps.grace <= 0 || now.Sub(issued) >= ps.grace {
		return nil
	}
	if _, removed := ps.gone[key]; removed {
		return nil
	}
	// The hash policy's consistent hashing on the cookie's server key: the
	// same stand-in for every request of the client, on every host with
	// the same servers, so what the client does meanwhile lands on one
	// server rather than on whichever the pool's policy would pick each
	// time. It ignores load: it only serves the clients of servers still
	// being added, and only for the grace at most.
	return ps.standIns.Pick(ps.pool.Available(now), key, now)
}
