package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xlbproject/xlb/internal/statuspage"
)

// LiveStatus is the document GET /api/status serves on the daemon's
// metrics listener and the status page renders: Status and the rates
// between two Stats snapshots, joined per VIP and backend. See
// docs/status-page.md for every field.
type LiveStatus struct {
	Kind string    `json:"kind"` // always "edge"
	Time time.Time `json:"time"`
	// RateSeconds is the interval the rates were computed over; 0 on the
	// first request after start (no earlier snapshot yet: every rate 0).
	RateSeconds float64       `json:"rateSeconds"`
	Daemon      LiveDaemon    `json:"daemon"`
	Summary     LiveSummary   `json:"summary"`
	VIPs        []LiveVIP     `json:"vips"`
	Interfaces  []Interface   `json:"interfaces"`
	NextHops    NextHops      `json:"nextHops"`
	Reasons     []LiveReason  `json:"reasons"`
	Conntrack   LiveConntrack `json:"conntrack"`
	// BGP is the speaker's sessions and announcements, as in `xlb bgp
	// peers`; absent when BGP is off.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// LiveDaemon is the daemon's own state, as in `xlb status`.
type LiveDaemon struct {
	Version            string    `json:"version"`
	StartTime          time.Time `json:"startTime,omitzero"`
	ConfigPath         string    `json:"configPath,omitempty"`
	StatePath          string    `json:"statePath,omitempty"`
	Adopted            bool      `json:"adopted"`
	LastReconcile      time.Time `json:"lastReconcile,omitzero"`
	LastReconcileError string    `json:"lastReconcileError,omitempty"`
}

// LiveSummary counts what the top of the page shows.
type LiveSummary struct {
	VIPs     int `json:"vips"`
	Backends int `json:"backends"` // backend entries over all VIPs
	Active   int `json:"active"`
	Draining int `json:"draining"`
	Down     int `json:"down"`
	// VIPsWithoutBackend have no active backend and do not fail open:
	// their new flows are dropped.
	VIPsWithoutBackend int `json:"vipsWithoutBackend"`
	// VIPsFailingOpen have too few backends passing their checks and send
	// new flows to every backend not drained (VIP.FailingOpen).
	VIPsFailingOpen int `json:"vipsFailingOpen"`
	// InterfacesDetached are interfaces the program is not attached to.
	InterfacesDetached int `json:"interfacesDetached"`
	// NextHopsUnresolved are L7 hosts whose frames cannot go out now.
	NextHopsUnresolved int `json:"nextHopsUnresolved"`
}

// LiveVIP is one VIP with its traffic rates and backends.
type LiveVIP struct {
	Key       VIPKey `json:"key"`
	Mode      string `json:"mode"`
	TableSize uint32 `json:"tableSize"`
	Rate
	NewFlowsPS float64 `json:"newFlowsPerSecond"`
	Active     int     `json:"active"`
	Draining   int     `json:"draining"`
	Down       int     `json:"down"`
	// FailingOpen is VIP.FailingOpen.
	FailingOpen bool          `json:"failingOpen"`
	Backends    []LiveBackend `json:"backends"`
}

// LiveBackend is one backend of a VIP: its Backend fields, its share of
// the table and the rate of what was forwarded to it.
type LiveBackend struct {
	Backend
	// TableShare is TableSlots / TableSize (0..1).
	TableShare float64 `json:"tableShare"`
	Rate
}

// LiveReason is one data-path counter by reason (drops, passes and
// verdicts, the reason label of xlb_l4_drops_total).
type LiveReason struct {
	Reason    string  `json:"reason"`
	Packets   uint64  `json:"packets"`
	PerSecond float64 `json:"perSecond"`
}

// LiveConntrack is the connection table's lookup results and occupancy
// (Status.Conntrack: sampled in a large table).
type LiveConntrack struct {
	Hits            uint64  `json:"hits"`
	Misses          uint64  `json:"misses"`
	HitsPerSecond   float64 `json:"hitsPerSecond"`
	MissesPerSecond float64 `json:"missesPerSecond"`
	Entries         uint64  `json:"entries"`
	Capacity        uint64  `json:"capacity"`
	Exact           bool    `json:"exact"`
}

// LiveHandler serves GET /api/status from svc: one Status and one Stats per
// request, rates against an earlier Stats kept by the handler (about a
// second old when the page polls every second).
func LiveHandler(svc Service) http.Handler {
	return &liveHandler{svc: svc}
}

type liveHandler struct {
	svc     Service
	sampler statuspage.Sampler[Stats]
}

func (h *liveHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := h.svc.Status(ctx)
	if err != nil {
		statuspage.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("status: %w", err))
		return
	}
	cur, err := h.svc.Stats(ctx)
	if err != nil {
		statuspage.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("stats: %w", err))
		return
	}
	prev, _, ok := h.sampler.Add(cur.Time, cur)
	if !ok {
		prev = cur // no interval yet: every rate 0
	}
	statuspage.WriteJSON(w, BuildLiveStatus(st, ComputeRates(prev, cur)))
}

// BuildLiveStatus joins a Status with the rates between two Stats.
func BuildLiveStatus(st Status, rates StatsRates) LiveStatus {
	out := LiveStatus{
		Kind:       statuspage.KindEdge,
		Time:       st.Time,
		Interfaces: st.Interfaces,
		NextHops:   st.NextHops,
		BGP:        st.BGP,
		VIPs:       []LiveVIP{},
		Reasons:    []LiveReason{},
		Daemon: LiveDaemon{
			Version: st.Version, StartTime: st.StartTime, ConfigPath: st.ConfigPath, StatePath: st.StatePath,
			Adopted: st.Adopted, LastReconcile: st.LastReconcile, LastReconcileError: st.LastReconcileError,
		},
	}
	if out.Time.IsZero() {
		out.Time = rates.To
	}
	if out.Interfaces == nil {
		out.Interfaces = []Interface{}
	}
	if secs := rates.To.Sub(rates.From).Seconds(); secs > 0 {
		out.RateSeconds = secs
	}
	vipRates := make(map[VIPKey]VIPRates, len(rates.VIPs))
	for _, v := range rates.VIPs {
		vipRates[v.Key] = v
	}
	for _, v := range st.VIPs {
		vr := vipRates[v.Key]
		beRates := map[string]Rate{}
		for _, b := range vr.Backends {
			beRates[b.Addr.String()] = b.Rate
		}
		lv := LiveVIP{Key: v.Key, Mode: v.Mode, TableSize: v.TableSize, Rate: vr.Rate, NewFlowsPS: vr.NewFlowsPS,
			FailingOpen: v.FailingOpen, Backends: []LiveBackend{}}
		for _, b := range v.Backends {
			lb := LiveBackend{Backend: b, Rate: beRates[b.Addr.String()]}
			if v.TableSize > 0 {
				lb.TableShare = float64(b.TableSlots) / float64(v.TableSize)
			}
			switch b.State {
			case StateActive:
				lv.Active++
			case StateDraining:
				lv.Draining++
			case StateDown:
				lv.Down++
			}
			lv.Backends = append(lv.Backends, lb)
		}
		out.Summary.Active += lv.Active
		out.Summary.Draining += lv.Draining
		out.Summary.Down += lv.Down
		out.Summary.Backends += len(lv.Backends)
		switch {
		case lv.FailingOpen:
			out.Summary.VIPsFailingOpen++
		case lv.Active == 0:
			out.Summary.VIPsWithoutBackend++
		}
		out.VIPs = append(out.VIPs, lv)
	}
	out.Summary.VIPs = len(out.VIPs)
	for _, i := range st.Interfaces {
		if !i.Attached {
			out.Summary.InterfacesDetached++
		}
	}
	for _, h := range st.NextHops.Hosts {
		if !h.Resolved {
			out.Summary.NextHopsUnresolved++
		}
	}
	cur := rates.Current
	for reason, n := range cur.Reasons {
		if n == 0 {
			continue
		}
		out.Reasons = append(out.Reasons, LiveReason{Reason: reason, Packets: n, PerSecond: rates.Reasons[reason]})
	}
	slices.SortFunc(out.Reasons, func(a, b LiveReason) int { return strings.Compare(a.Reason, b.Reason) })
	out.Conntrack = LiveConntrack{Hits: cur.ConntrackHits, Misses: cur.ConntrackMisses,
		HitsPerSecond: rates.ConntrackHitsPS, MissesPerSecond: rates.ConntrackMissesPS,
		Entries: st.Conntrack.Entries, Capacity: st.Conntrack.Capacity, Exact: st.Conntrack.Exact}
	return out
}
