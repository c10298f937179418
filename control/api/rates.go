package api

import (
	"net/netip"
	"time"
)

// Rate is a per-second rate of a Counter.
type Rate struct {
	PPS float64 `json:"pps"` // packets per second
	BPS float64 `json:"bps"` // bits per second
}

// StatsRates are the rates between two Stats snapshots: what `xlb stats`
// shows.
type StatsRates struct {
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"`
	VIPs    []VIPRates         `json:"vips"`
	Reasons map[string]float64 `json:"reasons,omitempty"` // packets per second per reason
	Current Stats              `json:"current"`           // the later snapshot, for totals
	// Connection-table lookups per second that found (hits) or did not
	// find (misses) an entry.
	ConntrackHitsPS   float64 `json:"conntrackHitsPerSecond"`
	ConntrackMissesPS float64 `json:"conntrackMissesPerSecond"`
}

// VIPRates are the rates of one VIP.
type VIPRates struct {
	Key        VIPKey         `json:"key"`
	Rate                      // traffic received for the VIP
	NewFlowsPS float64        `json:"newFlowsPerSecond"`
	Backends   []BackendRates `json:"backends"`
}

// BackendRates are the rates of one backend.
type BackendRates struct {
	Addr netip.Addr `json:"addr"`
	Rate
}

// ComputeRates derives rates from two snapshots taken at prev.Time and
// cur.Time. VIPs and backends are those of cur; one missing from prev (just
// added) counts from zero. A counter that went backwards (the data path was
// reloaded with fresh maps) gives rate 0 rather than a huge wrap-around.
func ComputeRates(prev, cur Stats) StatsRates {
	r := StatsRates{From: prev.Time, To: cur.Time, Current: cur, VIPs: make([]VIPRates, 0, len(cur.VIPs))}
	secs := cur.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		secs = 0 // all rates 0: no interval to divide by
	}
	per := func(now, before uint64) float64 {
		if secs == 0 || now < before {
			return 0
		}
		return float64(now-before) / secs
	}
	rate := func(now, before Counter) Rate {
		return Rate{PPS: per(now.Packets, before.Packets), BPS: 8 * per(now.Bytes, before.Bytes)}
	}
	prevVIPs := make(map[VIPKey]VIPStats, len(prev.VIPs))
	for _, v := range prev.VIPs {
		prevVIPs[v.Key] = v
	}
	for _, v := range cur.VIPs {
		pv := prevVIPs[v.Key]
		prevBE := make(map[netip.Addr]Counter, len(pv.Backends))
		for _, b := range pv.Backends {
			prevBE[b.Addr] = b.Counter
		}
		vr := VIPRates{Key: v.Key, Rate: rate(v.Counter, pv.Counter), NewFlowsPS: per(v.NewFlows, pv.NewFlows),
			Backends: make([]BackendRates, 0, len(v.Backends))}
		for _, b := range v.Backends {
			vr.Backends = append(vr.Backends, BackendRates{Addr: b.Addr, Rate: rate(b.Counter, prevBE[b.Addr])})
		}
		r.VIPs = append(r.VIPs, vr)
	}
	r.ConntrackHitsPS = per(cur.ConntrackHits, prev.ConntrackHits)
	r.ConntrackMissesPS = per(cur.ConntrackMisses, prev.ConntrackMisses)
	if len(cur.Reasons) > 0 {
		r.Reasons = make(map[string]float64, len(cur.Reasons))
		for k, n := range cur.Reasons {
			r.Reasons[k] = per(n, prev.Reasons[k])
		}
	}
	return r
}
