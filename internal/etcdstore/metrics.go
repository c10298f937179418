package etcdstore

import "github.com/prometheus/client_golang/prometheus"

var (
	upDesc = prometheus.NewDesc("xlb_store_up",
		"1 while the desired-state store (etcd) answers with a leader, else 0: changes are refused and the data path keeps its last state.",
		[]string{"prefix"}, nil)
	downSinceDesc = prometheus.NewDesc("xlb_store_unreachable_since_timestamp_seconds",
		"Since when the desired-state store has been unreachable (Unix time); absent while it is up.",
		[]string{"prefix"}, nil)
)

// collector reads the store's health at scrape time.
type collector struct{ s *Store }

var _ prometheus.Collector = collector{}

// NewCollector exports the store's health.
func NewCollector(s *Store) prometheus.Collector { return collector{s} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- downSinceDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	h := c.s.Health()
	up := 0.0
	if h.Up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, c.s.prefix)
	if !h.Up {
		ch <- prometheus.MustNewConstMetric(downSinceDesc, prometheus.GaugeValue, float64(h.Since.UnixNano())/1e9, c.s.prefix)
	}
}
