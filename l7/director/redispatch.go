package director

import (
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/l7/route"
)

// Redispatch moves a forwarded request whose server failed to another
// available server of the same pool, for a retry. The caller must have
// ended the failed try with Done. Servers already tried for this decision
// are skipped. On a sticky pool the client is re-pinned: dec.SetCookie
// names the new server (HAProxy's "option redispatch"), so the client does
// not come back to the server that failed it. It returns false, leaving
// dec without a server, when no other server is available.
//
// r must be the request Decide was given, with the same header view.
func (d *Director) Redispatch(r *Request, dec *Decision) bool {
	if dec.Backend == nil || !dec.done {
		return false
	}
	ps := d.pools[dec.Route.PoolIndex]
	dec.markTried(dec.Backend)
	now := d.opts.now()
	dec.scratch = dec.scratch[:0]
	for _, b := range ps.pool.Available(now) {
		if !dec.wasTried(b) {
			dec.scratch = append(dec.scratch, b)
		}
	}
	dec.Backend = nil
	if len(dec.scratch) == 0 {
		return false
	}
	if r.Headers == nil {
		r.Headers = noHeaders{}
	}
	var b *pool.Backend
	if ps.hashKind != hashNone {
		// Not the hash policy: it caches its table by the identity of the
		// pool's immutable candidate snapshot, and scratch is neither. A
		// retry needs no consistency beyond being repeatable for the key.
		var pathBuf [512]byte
		key := requestKey(ps, r, route.CleanPath(pathBuf[:0], r.Path))
		b = dec.scratch[key%uint64(len(dec.scratch))]
	} else {
		b = ps.policy.Pick(dec.scratch, 0, now)
	}
	if b == nil {
		return false
	}
	if ps.sticky != nil && dec.Sticky != StickyPending {
		dec.Sticky = StickyRepinned
		ps.stats.Repins.Add(1)
		d.setCookie(ps, b, r, now, dec)
	}
	b.Acquire()
	dec.Backend = b
	dec.done = false
	return true
}

func (dec *Decision) markTried(b *pool.Backend) {
	if b.Index < 64 {
		dec.tried |= 1 << b.Index
	}
}

func (dec *Decision) wasTried(b *pool.Backend) bool {
	if b == dec.Backend {
		return true
	}
	return b.Index < 64 && dec.tried&(1<<b.Index) != 0
}
