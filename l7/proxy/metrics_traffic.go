package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// trafficMetrics count what the retry, shedding and upgrade mechanisms do.
// They stay on when per-request metrics are off (they are what an operator
// checks first during an overload), live as long as the proxy so they keep
// counting across reloads, and are resolved per generation like the
// request metrics, so the hot path is an index and an add.
type trafficMetrics struct {
	p         *Proxy
	retries   *prometheus.CounterVec
	exhausted *prometheus.CounterVec
	shed      *prometheus.CounterVec
	upgrades  *prometheus.CounterVec
	tunnels   *prometheus.GaugeVec
}

// genTraffic is one generation's resolved children: pools and routes by
// their index in that generation.
type genTraffic struct {
	retries   []prometheus.Counter // by pool index
	exhausted []prometheus.Counter // by pool index
	shed      []prometheus.Counter // by route index
	upgrades  []prometheus.Counter // by route index
	tunnels   []prometheus.Gauge   // by route index
}

var _ prometheus.Collector = (*trafficMetrics)(nil)

var (
	shedInflightDesc = prometheus.NewDesc("xlb_l7_shed_inflight_requests",
		"Requests in flight through this proxy, the number priority shedding compares with each class's ceiling.",
		nil, nil)
	shedCeilingDesc = prometheus.NewDesc("xlb_l7_shed_ceiling_requests",
		"In-flight requests at which a priority class is shed.",
		[]string{"priority"}, nil)
)

func newTrafficMetrics(p *Proxy) *trafficMetrics {
	return &trafficMetrics{
		p: p,
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_retries_total",
			Help: "Requests retried on another app server of the pool (redispatch after a failed connect, or an idempotent request whose server failed before answering).",
		}, []string{"pool"}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_retry_budget_exhausted_total",
			Help: "Retries refused because the pool's retry budget was spent; the request ended with its last error.",
		}, []string{"pool"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_shed_total",
			Help: "Requests refused with 503 by priority load shedding, by route and its priority class.",
		}, []string{"route", "priority"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_upgrades_total",
			Help: "Connections upgraded to WebSocket (the app server answered 101) and tunnelled, by route.",
		}, []string{"route"}),
		tunnels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_l7_upgraded_connections",
			Help: "Upgraded (WebSocket) connections open now, by route.",
		}, []string{"route"}),
	}
}

func (m *trafficMetrics) resolve(dir *director.Director, set seriesSet) *genTraffic {
	g := &genTraffic{}
	for _, pl := range dir.Pools() {
		g.retries = append(g.retries, set.counter(m.retries, pl.Name))
		g.exhausted = append(g.exhausted, set.counter(m.exhausted, pl.Name))
	}
	for _, r := range dir.Routes() {
		g.shed = append(g.shed, set.counter(m.shed, r.Name, string(config.Priorities[r.Priority])))
		g.upgrades = append(g.upgrades, set.counter(m.upgrades, r.Name))
		g.tunnels = append(g.tunnels, set.gauge(m.tunnels, r.Name))
	}
	return g
}

func (m *trafficMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.retries.Describe(ch)
	m.exhausted.Describe(ch)
	m.shed.Describe(ch)
	m.upgrades.Describe(ch)
	m.tunnels.Describe(ch)
	ch <- shedInflightDesc
	ch <- shedCeilingDesc
}

func (m *trafficMetrics) Collect(ch chan<- prometheus.Metric) {
	m.retries.Collect(ch)
	m.exhausted.Collect(ch)
	m.shed.Collect(ch)
	m.upgrades.Collect(ch)
	m.tunnels.Collect(ch)
	ch <- prometheus.MustNewConstMetric(shedInflightDesc, prometheus.GaugeValue, float64(m.p.shed.InFlight()))
	g := m.p.gen.Load()
	if g == nil {
		return
	}
	for i, pr := range config.Priorities {
		pol := &g.shed
		ch <- prometheus.MustNewConstMetric(shedCeilingDesc, prometheus.GaugeValue, float64(pol.ceiling[i]), string(pr))
	}
}
