package l4

import "fmt"

// connSampleSets is how many connection-table sets ConnTableUsage reads:
// 1024 sets of 4 ways put the estimate within about 1.6 % of the capacity
// (two standard errors of a sampled fraction, at worst) for about 1 ms of
// map reads; a smaller table is read whole.
const connSampleSets = 1024

// ConnTableUsage is how full the connection table is. Entries are never
// removed, only replaced (a reused 5-tuple's SYN, or LRU within a full
// set), so Entries counts every way holding a flow, including flows that
// ended and have not been replaced yet: it says how much of the table is
// in use, and a table near Capacity replaces entries of live flows.
type ConnTableUsage struct {
	Capacity uint64 // entries: ConnEntries × CPUs
	// Entries is the ways in use: counted exactly when Exact, else
	// estimated from SampledSets sets spread evenly over the table (a
	// flow's set is taken from a hash, so any spread of sets is a uniform
	// sample).
	Entries     uint64
	SampledSets uint32
	Exact       bool
}

// ConnTableUsage reads the connection table's occupancy: no per-packet cost,
// connSampleSets map lookups per call.
func (d *Dataplane) ConnTableUsage() (ConnTableUsage, error) {
	sets := d.objs.ConnMap.MaxEntries()
	n := min(sets, uint32(connSampleSets))
	var used uint64
	var s xlbConnSet
	for i := range n {
		// Evenly spaced: set i of n at i*sets/n.
		key := uint32(uint64(i) * uint64(sets) / uint64(n))
		if err := d.objs.ConnMap.Lookup(key, &s); err != nil {
			return ConnTableUsage{}, fmt.Errorf("read connection table set %d: %w", key, err)
		}
		for _, tag := range s.Tag {
			if tag != 0 {
				used++
			}
		}
	}
	u := ConnTableUsage{Capacity: uint64(sets) * uint64(connWays), SampledSets: n, Exact: n == sets}
	// Scaled with rounding: used ways of n*ways sampled, over sets*ways.
	u.Entries = (used*uint64(sets) + uint64(n)/2) / uint64(n)
	return u, nil
}
