package decap

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// StatsSource is what the collector reads at scrape time; *Decap
// implements it.
type StatsSource interface {
	Stats() (Stats, error)
}

var (
	decapPackets = prometheus.NewDesc("xlb_decap_packets_total",
		"Frames seen by the L7 host's decapsulator, by outcome (decap_v4, decap_v6, gue_v4, gue_v6, not_for_us, malformed, passed).",
		[]string{"reason"}, nil)
	decapBytes = prometheus.NewDesc("xlb_decap_bytes_total",
		"Bytes (frames as received, outer header included) seen by the decapsulator, by outcome.",
		[]string{"reason"}, nil)
	decapErrors = prometheus.NewDesc("xlb_decap_stats_errors_total",
		"Failed reads of the decapsulator's BPF counters since start.", nil, nil)
)

// Collector exports the decapsulator's counters, read from the per-CPU map
// at scrape time (no polling loop, nothing cached).
type Collector struct {
	src  StatsSource
	errs atomic.Uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over src.
func NewCollector(src StatsSource) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- decapPackets
	ch <- decapBytes
	ch <- decapErrors
}

// Collect implements prometheus.Collector. A failed read is counted and
// the counters are left out of this scrape rather than reported as zero,
// which would look like a reset.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.src.Stats()
	if err != nil {
		c.errs.Add(1)
	} else {
		for reason, n := range st.Reasons() {
			ch <- prometheus.MustNewConstMetric(decapPackets, prometheus.CounterValue, float64(n.Packets), reason)
			ch <- prometheus.MustNewConstMetric(decapBytes, prometheus.CounterValue, float64(n.Bytes), reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(decapErrors, prometheus.CounterValue, float64(c.errs.Load()))
}
