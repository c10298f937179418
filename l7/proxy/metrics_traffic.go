package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// trafficCollector exports, at scrape time, the counters that the retry,
// shedding and upgrade mechanisms keep for their own decisions. They stay
// on when per-request metrics are off: they are what an operator checks
// first during an overload.
type trafficCollector struct {
	dir     *director.Director
	shed    *shedder
	tunnels *tunnels
}

var _ prometheus.Collector = (*trafficCollector)(nil)

var (
	retriesDesc = prometheus.NewDesc("xlb_l7_retries_total",
		"Requests retried on another app server of the pool (redispatch after a failed connect, or an idempotent request whose server failed before answering).",
		[]string{"pool"}, nil)
	budgetExhaustedDesc = prometheus.NewDesc("xlb_l7_retry_budget_exhausted_total",
		"Retries refused because the pool's retry budget was spent; the request ended with its last error.",
		[]string{"pool"}, nil)
	shedDesc = prometheus.NewDesc("xlb_l7_shed_total",
		"Requests refused with 503 by priority load shedding, by route and its priority class.",
		[]string{"route", "priority"}, nil)
	shedInflightDesc = prometheus.NewDesc("xlb_l7_shed_inflight_requests",
		"Requests in flight through this proxy, the number priority shedding compares with each class's ceiling.",
		nil, nil)
	shedCeilingDesc = prometheus.NewDesc("xlb_l7_shed_ceiling_requests",
		"In-flight requests at which a priority class is shed.",
		[]string{"priority"}, nil)
	upgradesDesc = prometheus.NewDesc("xlb_l7_upgrades_total",
		"Connections upgraded to WebSocket (the app server answered 101) and tunnelled, by route.",
		[]string{"route"}, nil)
	tunnelsDesc = prometheus.NewDesc("xlb_l7_upgraded_connections",
		"Upgraded (WebSocket) connections open now, by route.",
		[]string{"route"}, nil)
)

func newTrafficCollector(dir *director.Director, shed *shedder, ts *tunnels) *trafficCollector {
	return &trafficCollector{dir: dir, shed: shed, tunnels: ts}
}

func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{retriesDesc, budgetExhaustedDesc, shedDesc, shedInflightDesc, shedCeilingDesc, upgradesDesc, tunnelsDesc} {
		ch <- d
	}
}

func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.dir.Pools() {
		ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(p.Budget.Retries()), p.Name)
		ch <- prometheus.MustNewConstMetric(budgetExhaustedDesc, prometheus.CounterValue, float64(p.Budget.Exhausted()), p.Name)
	}
	for _, r := range c.dir.Routes() {
		ch <- prometheus.MustNewConstMetric(shedDesc, prometheus.CounterValue, float64(c.shed.Shed(r.Index)), r.Name, string(config.Priorities[r.Priority]))
		ch <- prometheus.MustNewConstMetric(upgradesDesc, prometheus.CounterValue, float64(c.tunnels.upgrades[r.Index].Load()), r.Name)
		ch <- prometheus.MustNewConstMetric(tunnelsDesc, prometheus.GaugeValue, float64(c.tunnels.active[r.Index].Load()), r.Name)
	}
	ch <- prometheus.MustNewConstMetric(shedInflightDesc, prometheus.GaugeValue, float64(c.shed.InFlight()))
	for i, pr := range config.Priorities {
		ch <- prometheus.MustNewConstMetric(shedCeilingDesc, prometheus.GaugeValue, float64(c.shed.ceiling[i]), string(pr))
	}
}
