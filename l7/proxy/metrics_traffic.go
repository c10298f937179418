package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/director"
)

// trafficCollector exports, at scrape time, the counters that the retry,
// shedding and upgrade mechanisms keep for their own decisions. They stay
// on when per-request metrics are off: they are what an operator checks
// first during an overload.
type trafficCollector struct {
	dir *director.Director
}

var _ prometheus.Collector = (*trafficCollector)(nil)

var (
	retriesDesc = prometheus.NewDesc("xlb_l7_retries_total",
		"Requests retried on another app server of the pool (redispatch after a failed connect, or an idempotent request whose server failed before answering).",
		[]string{"pool"}, nil)
	budgetExhaustedDesc = prometheus.NewDesc("xlb_l7_retry_budget_exhausted_total",
		"Retries refused because the pool's retry budget was spent; the request ended with its last error.",
		[]string{"pool"}, nil)
)

func newTrafficCollector(dir *director.Director) *trafficCollector {
	return &trafficCollector{dir: dir}
}

func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{retriesDesc, budgetExhaustedDesc} {
		ch <- d
	}
}

func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.dir.Pools() {
		ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(p.Budget.Retries()), p.Name)
		ch <- prometheus.MustNewConstMetric(budgetExhaustedDesc, prometheus.CounterValue, float64(p.Budget.Exhausted()), p.Name)
	}
}
