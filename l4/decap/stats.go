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
	// DecapV4 and DecapV6 count IP-in-IP packets decapsulated, by inner
	// family.
	DecapV4 Counter `json:"decap_v4"`
	DecapV6 Counter `json:"decap_v6"`
	// GUEV4 and GUEV6 count GUE packets decapsulated, by inner family.
	GUEV4 Counter `json:"gue_v4"`
	GUEV6 Counter `json:"gue_v6"`
	// NotForUs counts tunnel packets whose outer destination is not a
	// local address (passed untouched).
	NotForUs Counter `json:"not_for_us"`
	// Malformed counts tunnel packets for this host with a bad outer or
	// inner header (dropped).
	Malformed Counter `json:"malformed"`
	// Passed counts everything that is not a tunnel (passed untouched).
	Passed Counter `json:"passed"`
}

// counterSlot ties a counter slot of decap_stats_map (enum decap_counter in
// bpf/include/decap_types.h) to its metric label and its Stats field.
type counterSlot struct {
	key  decapDecapCounter
	name string
	dst  *Counter
}

// slots lists every slot once; TestSlots checks that it covers the C enum.
func (s *Stats) slots() []counterSlot {
	return []counterSlot{
		{decapDecapCounterDECAP_V4, "decap_v4", &s.DecapV4},
		{decapDecapCounterDECAP_V6, "decap_v6", &s.DecapV6},
		{decapDecapCounterDECAP_NOT_FOR_US, "not_for_us", &s.NotForUs},
		{decapDecapCounterDECAP_MALFORMED, "malformed", &s.Malformed},
		{decapDecapCounterDECAP_PASSED, "passed", &s.Passed},
		{decapDecapCounterDECAP_GUE_V4, "gue_v4", &s.GUEV4},
		{decapDecapCounterDECAP_GUE_V6, "gue_v6", &s.GUEV6},
	}
}

// Reasons lists the counters under stable names, for metric labels.
func (s Stats) Reasons() map[string]Counter {
	out := map[string]Counter{}
	for _, sl := range s.slots() {
		out[sl.name] = *sl.dst
	}
	return out
}

// Stats reads the per-CPU counters and sums them.
func (d *Decap) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s Stats
	if d.closed {
		return s, fmt.Errorf("read decap stats: %w", net.ErrClosed)
	}
	var perCPU []decapXlbStat
	for _, sl := range s.slots() {
		if err := d.objs.DecapStatsMap.Lookup(sl.key, &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read decap counter %s: %w", sl.name, err)
		}
		for _, c := range perCPU {
			sl.dst.Packets += c.Packets
			sl.dst.Bytes += c.Bytes
		}
	}
	return s, nil
}
