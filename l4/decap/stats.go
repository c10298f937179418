package decap

import (
	"fmt"
	"net"
)

// Counter is one counter slot summed over CPUs. Bytes count frames as
// received, outer header included.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Stats is a snapshot of the decapsulator's counters.
type Stats struct {
	// DecapV4 and DecapV6 count decapsulated packets by inner family.
	DecapV4 Counter `json:"decap_v4"`
	DecapV6 Counter `json:"decap_v6"`
	// NotForUs counts tunnel packets whose outer destination is not a
	// local address (passed untouched).
	NotForUs Counter `json:"not_for_us"`
	// Malformed counts tunnel packets for this host with a bad outer or
	// inner header (dropped).
	Malformed Counter `json:"malformed"`
	// Passed counts everything that is not a tunnel (passed untouched).
	Passed Counter `json:"passed"`
}

// Reasons lists the counters under stable names, for metric labels.
func (s Stats) Reasons() map[string]Counter {
	return map[string]Counter{
		"decap_v4":   s.DecapV4,
		"decap_v6":   s.DecapV6,
		"not_for_us": s.NotForUs,
		"malformed":  s.Malformed,
		"passed":     s.Passed,
	}
}

// Stats reads the per-CPU counters and sums them.
func (d *Decap) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s Stats
	if d.closed {
		return s, fmt.Errorf("read decap stats: %w", net.ErrClosed)
	}
	slots := []struct {
		key decapDecapCounter
		dst *Counter
	}{
		{decapDecapCounterDECAP_V4, &s.DecapV4},
		{decapDecapCounterDECAP_V6, &s.DecapV6},
		{decapDecapCounterDECAP_NOT_FOR_US, &s.NotForUs},
		{decapDecapCounterDECAP_MALFORMED, &s.Malformed},
		{decapDecapCounterDECAP_PASSED, &s.Passed},
	}
	var perCPU []decapXlbStat
	for _, sl := range slots {
		if err := d.objs.DecapStatsMap.Lookup(sl.key, &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read decap counter %d: %w", sl.key, err)
		}
		for _, c := range perCPU {
			sl.dst.Packets += c.Packets
			sl.dst.Bytes += c.Bytes
		}
	}
	return s, nil
}
