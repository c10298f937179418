package bgp

import "github.com/prometheus/client_golang/prometheus"

var (
	peerUpDesc = prometheus.NewDesc("xlb_bgp_peer_up",
		"1 while the BGP session with a router is established.", []string{"peer"}, nil)
	peerFlapsDesc = prometheus.NewDesc("xlb_bgp_peer_flaps_total",
		"Times an established BGP session with a router went down.", []string{"peer"}, nil)
	announcedDesc = prometheus.NewDesc("xlb_bgp_announced_routes",
		"VIP prefixes this host announces to its BGP peers.", nil, nil)
)

// Collector exports the speaker's state at scrape time.
type Collector struct{ s *Speaker }

var _ prometheus.Collector = Collector{}

// Collector returns the speaker's Prometheus collector.
func (s *Speaker) Collector() Collector { return Collector{s} }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerUpDesc
	ch <- peerFlapsDesc
	ch <- announcedDesc
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	for _, p := range st.Peers {
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, p.Addr.String())
		ch <- prometheus.MustNewConstMetric(peerFlapsDesc, prometheus.CounterValue, float64(p.Flaps), p.Addr.String())
	}
	ch <- prometheus.MustNewConstMetric(announcedDesc, prometheus.GaugeValue, float64(len(st.Announced)))
}
