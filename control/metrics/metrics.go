package metrics

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/health"
	"github.com/xlbproject/xlb/control/reconcile"
	"github.com/xlbproject/xlb/l4"
)

// Source is what the collector reads from the data path at scrape time;
// *l4.Dataplane implements it.
type Source interface {
	Stats() (l4.Stats, error)
	ConnTableUsage() (l4.ConnTableUsage, error)
	Backends() map[l4.BackendID]netip.Addr
	AttachModes() map[string]l4.AttachMode
}

// BackendView is one backend of one VIP as the daemon sees it now.
type BackendView struct {
	VIP     string
	Backend string
	Up      bool   // passes its health checks
	State   string // effective state: active, draining, down
	Slots   int    // Maglev table entries pointing at it
	// VIPFailingOpen: the VIP sends new flows to every backend not
	// drained because too few pass (the same on each of its backends'
	// views).
	VIPFailingOpen bool
	// NextHopKnown is set when next hops come from the kernel's FIB and
	// the daemon looks after them; NextHopResolved then says whether the
	// host's next hop has a usable neighbour entry (else its packets are
	// passed to the kernel, not forwarded).
	NextHopKnown, NextHopResolved bool
}

// ViewFunc returns the daemon's current backends; called at scrape time.
type ViewFunc func() []BackendView

// States a backend can be in, exported as xlb_backend_state{state=...}.
var states = []string{api.StateActive, api.StateDraining, api.StateDown}

var (
	vipPackets = prometheus.NewDesc("xlb_l4_vip_packets_total",
		"Packets received for a VIP by the XDP balancer.", []string{"vip"}, nil)
	vipBytes = prometheus.NewDesc("xlb_l4_vip_bytes_total",
		"Bytes (frames as received) for a VIP.", []string{"vip"}, nil)
	vipNewFlows = prometheus.NewDesc("xlb_l4_vip_new_flows_total",
		"Flows of a VIP that took a Maglev decision (connection entries created).", []string{"vip"}, nil)
	backendPackets = prometheus.NewDesc("xlb_l4_backend_packets_total",
		"Packets forwarded to an L7 host.", []string{"backend"}, nil)
	backendBytes = prometheus.NewDesc("xlb_l4_backend_bytes_total",
		"Bytes (frames before encapsulation) forwarded to an L7 host.", []string{"backend"}, nil)
	reasonPackets = prometheus.NewDesc("xlb_l4_reason_packets_total",
		"Packets by why the balancer passed or dropped them (not_vip, no_backend, malformed, encap_fail, too_big, fragment).", []string{"reason"}, nil)
	actionPackets = prometheus.NewDesc("xlb_l4_xdp_actions_total",
		"XDP verdicts of the balancer (aborted, drop, pass, tx, redirect).", []string{"action"}, nil)
	actionBytes = prometheus.NewDesc("xlb_l4_xdp_action_bytes_total",
		"Bytes by XDP verdict.", []string{"action"}, nil)
	conntrack = prometheus.NewDesc("xlb_l4_conntrack_total",
		"Connection table lookups by result (hit, hit_other_cpu, miss_syn, miss_non_syn, expired, insert_skipped: a new flow past dataplane.new_flow_rate_limit, forwarded without an entry).", []string{"result"}, nil)
	conntrackEntries = prometheus.NewDesc("xlb_l4_conntrack_entries",
		"Connection-table ways holding a flow (estimated from a sample of 1024 sets in a larger table): entries are replaced, never removed, so ended flows count until replaced.", nil, nil)
	conntrackCapacity = prometheus.NewDesc("xlb_l4_conntrack_capacity",
		"Connection-table entries in all: conntrack_entries entries per CPU times the CPUs.", nil, nil)
	backendUp = prometheus.NewDesc("xlb_backend_up",
		"1 while the L7 host passes its health checks (its /ready says its pools can serve).", []string{"vip", "backend"}, nil)
	backendState = prometheus.NewDesc("xlb_backend_state",
		"1 for the backend's effective state (active, draining or down), 0 for the others.", []string{"vip", "backend", "state"}, nil)
	backendSlots = prometheus.NewDesc("xlb_backend_table_slots",
		"Entries of the VIP's Maglev table pointing at the backend.", []string{"vip", "backend"}, nil)
	vipFailingOpen = prometheus.NewDesc("xlb_vip_failing_open",
		"1 while too few backends of the VIP pass their health checks (none, or fewer than health.fail_open_below) and new flows go to every backend not drained (health.all_down: fail_open); absent for a VIP without backends.", []string{"vip"}, nil)
	nextHopResolved = prometheus.NewDesc("xlb_backend_next_hop_resolved",
		"1 while the L7 host's next hop (from the kernel's FIB) is resolved, 0 while its packets are passed to the kernel instead; absent with a configured next-hop MAC.", []string{"vip", "backend"}, nil)
	attached = prometheus.NewDesc("xlb_l4_attached",
		"1 for each interface the XDP balancer is attached to, by the mode it runs in: native, generic (several times slower) or unknown.", []string{"iface", "mode"}, nil)
	scrapeErrors = prometheus.NewDesc("xlb_l4_stats_errors_total",
		"Failed reads of the BPF counters since start.", nil, nil)
)

// Collector exports the BPF counters and the backend view at scrape time.
type Collector struct {
	src  Source
	view ViewFunc
	errs atomic.Uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over src and view (either may be nil).
func NewCollector(src Source, view ViewFunc) *Collector {
	return &Collector{src: src, view: view}
}

// Describe sends every descriptor; the set never changes.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vipPackets, vipBytes, vipNewFlows, backendPackets, backendBytes,
		reasonPackets, actionPackets, actionBytes, conntrack, conntrackEntries, conntrackCapacity, backendUp, backendState, backendSlots, vipFailingOpen, nextHopResolved, attached, scrapeErrors} {
		ch <- d
	}
}

// Collect reads the counters (already summed over CPUs by l4) and the view.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.src != nil {
		c.collectL4(ch)
	}
	if c.view != nil {
		seen := map[string]bool{}
		for _, b := range c.view() {
			if !seen[b.VIP] {
				seen[b.VIP] = true
				ch <- prometheus.MustNewConstMetric(vipFailingOpen, prometheus.GaugeValue, boolFloat(b.VIPFailingOpen), b.VIP)
			}
			ch <- prometheus.MustNewConstMetric(backendUp, prometheus.GaugeValue, boolFloat(b.Up), b.VIP, b.Backend)
			for _, s := range states {
				ch <- prometheus.MustNewConstMetric(backendState, prometheus.GaugeValue, boolFloat(b.State == s), b.VIP, b.Backend, s)
			}
			ch <- prometheus.MustNewConstMetric(backendSlots, prometheus.GaugeValue, float64(b.Slots), b.VIP, b.Backend)
			if b.NextHopKnown {
				ch <- prometheus.MustNewConstMetric(nextHopResolved, prometheus.GaugeValue, boolFloat(b.NextHopResolved), b.VIP, b.Backend)
			}
		}
	}
}

func (c *Collector) collectL4(ch chan<- prometheus.Metric) {
	for iface, mode := range c.src.AttachModes() {
		ch <- prometheus.MustNewConstMetric(attached, prometheus.GaugeValue, 1, iface, ModeName(mode))
	}
	st, err := c.src.Stats()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.CounterValue, float64(c.errs.Add(1)))
		ch <- prometheus.NewInvalidMetric(vipPackets, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.CounterValue, float64(c.errs.Load()))
	if u, err := c.src.ConnTableUsage(); err != nil {
		ch <- prometheus.NewInvalidMetric(conntrackEntries, err)
	} else {
		ch <- prometheus.MustNewConstMetric(conntrackEntries, prometheus.GaugeValue, float64(u.Entries))
		ch <- prometheus.MustNewConstMetric(conntrackCapacity, prometheus.GaugeValue, float64(u.Capacity))
	}
	for v, n := range st.VIPs {
		key := vipLabel(v)
		ch <- prometheus.MustNewConstMetric(vipPackets, prometheus.CounterValue, float64(n.Packets), key)
		ch <- prometheus.MustNewConstMetric(vipBytes, prometheus.CounterValue, float64(n.Bytes), key)
		ch <- prometheus.MustNewConstMetric(vipNewFlows, prometheus.CounterValue, float64(n.NewFlows), key)
	}
	names := c.src.Backends()
	for id, n := range st.Backends {
		addr, ok := names[id]
		if !ok {
			// A deleted backend's counters: its address is gone, and an
			// id label would be unbounded over time.
			continue
		}
		ch <- prometheus.MustNewConstMetric(backendPackets, prometheus.CounterValue, float64(n.Packets), addr.String())
		ch <- prometheus.MustNewConstMetric(backendBytes, prometheus.CounterValue, float64(n.Bytes), addr.String())
	}
	for ctr, n := range st.Counters {
		switch ctr.Kind() {
		case l4.KindVerdict:
			ch <- prometheus.MustNewConstMetric(actionPackets, prometheus.CounterValue, float64(n.Packets), ctr.Label())
			ch <- prometheus.MustNewConstMetric(actionBytes, prometheus.CounterValue, float64(n.Bytes), ctr.Label())
		case l4.KindConn:
			ch <- prometheus.MustNewConstMetric(conntrack, prometheus.CounterValue, float64(n.Packets), ctr.Label())
		default:
			ch <- prometheus.MustNewConstMetric(reasonPackets, prometheus.CounterValue, float64(n.Packets), ctr.Label())
		}
	}
}

// vipLabel is the VIP's CLI form, e.g. 10.0.0.1:80/tcp, [2001:db8::1]:443/tcp.
func vipLabel(v l4.VIP) string {
	return api.VIPKey{Addr: v.Addr, Port: v.Port, Proto: v.Proto.String()}.String()
}

// ModeName names the mode l4 reports for an attached interface; l4 says
// AttachAuto when it could not tell.
func ModeName(m l4.AttachMode) string {
	if m == l4.AttachAuto {
		return "unknown"
	}
	return m.String()
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Metrics are the event-fed metrics plus the scrape-time collector.
type Metrics struct {
	checkDuration     *prometheus.HistogramVec
	healthTransitions *prometheus.CounterVec
	reconciles        *prometheus.CounterVec
	reconcileDuration prometheus.Histogram
	rebuilds          *prometheus.CounterVec
	rebuildDuration   prometheus.Histogram
	lastReconcile     prometheus.Gauge

	// The VIPs and backends that exist now (nil until Retain is first
	// called): event-fed series of others are deleted, and a health check
	// that was in flight when its backend went is not recorded.
	mu       sync.Mutex
	vips     map[string]bool
	backends map[string]bool
}

// New registers every daemon metric on reg.
func New(reg prometheus.Registerer, src Source, view ViewFunc) (*Metrics, error) {
	m := &Metrics{
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_health_check_duration_seconds",
			Help:    "Duration of health checks of L7 hosts, by result (ok or fail).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"backend", "result"}),
		healthTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_health_transitions_total",
			Help: "Health state changes of L7 hosts, by new state (up or down).",
		}, []string{"backend", "to"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_reconcile_total",
			Help: "Reconcile runs (desired state x health -> data path), by result (ok or error).",
		}, []string{"result"}),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "xlb_reconcile_duration_seconds",
			Help:    "Duration of reconcile runs, table builds and installs included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_table_rebuilds_total",
			Help: "Maglev tables built and installed, by VIP.",
		}, []string{"vip"}),
		rebuildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "xlb_table_rebuild_duration_seconds",
			Help:    "Time to build one VIP's Maglev table and install it in the kernel.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
		lastReconcile: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xlb_last_reconcile_timestamp_seconds",
			Help: "Unix time of the last successful reconcile; time() minus it is the time since.",
		}),
	}
	for _, c := range []prometheus.Collector{m.checkDuration, m.healthTransitions, m.reconciles, m.reconcileDuration,
		m.rebuilds, m.rebuildDuration, m.lastReconcile, NewCollector(src, view)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var _ health.Observer = (*Metrics)(nil)

// Retain deletes the event-fed series (health checks, transitions, table
// rebuilds) of every VIP and backend not in vips and backends, the daemon's
// desired state now. The scrape-time series follow the state by
// themselves.
func (m *Metrics) Retain(vips, backends []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keepV, keepB := setOf(vips), setOf(backends)
	for v := range m.vips {
		if !keepV[v] {
			m.rebuilds.DeletePartialMatch(prometheus.Labels{"vip": v})
		}
	}
	for b := range m.backends {
		if !keepB[b] {
			m.checkDuration.DeletePartialMatch(prometheus.Labels{"backend": b})
			m.healthTransitions.DeletePartialMatch(prometheus.Labels{"backend": b})
		}
	}
	m.vips, m.backends = keepV, keepB
}

func setOf(ss []string) map[string]bool {
	out := make(map[string]bool, len(ss))
	for _, s := range ss {
		out[s] = true
	}
	return out
}

// current says whether the series of a VIP or backend may be written.
func (m *Metrics) current(set *map[string]bool, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *set == nil || (*set)[key]
}

// ObserveCheck records one health check.
func (m *Metrics) ObserveCheck(t health.Target, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	if b := t.Addr.String(); m.current(&m.backends, b) {
		m.checkDuration.WithLabelValues(b, result).Observe(d.Seconds())
	}
}

// ObserveTransition records a health state change.
func (m *Metrics) ObserveTransition(backend netip.Addr, up bool) {
	to := "down"
	if up {
		to = "up"
	}
	if b := backend.String(); m.current(&m.backends, b) {
		m.healthTransitions.WithLabelValues(b, to).Inc()
	}
}

// ObserveReconcile records one reconcile run finishing at now.
func (m *Metrics) ObserveReconcile(rep reconcile.Report, err error, now time.Time) {
	m.reconcileDuration.Observe(rep.Duration.Seconds())
	for _, v := range rep.VIPs {
		if v.Rebuilt && m.current(&m.vips, v.Key.String()) {
			m.rebuilds.WithLabelValues(v.Key.String()).Inc()
			m.rebuildDuration.Observe(v.Duration.Seconds())
		}
	}
	if err != nil {
		m.reconciles.WithLabelValues("error").Inc()
		return
	}
	m.reconciles.WithLabelValues("ok").Inc()
	m.lastReconcile.Set(float64(now.UnixNano()) / 1e9)
}
