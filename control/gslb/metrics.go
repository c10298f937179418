package gslb

import (
	"slices"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics.
type Metrics struct {
	queries  *prometheus.CounterVec
	latency  prometheus.Histogram
	siteUp   *prometheus.GaugeVec
	siteFlip *prometheus.CounterVec
	limited  *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, as in tests that only read them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_dns_queries_total",
			Help: "DNS queries answered, by GSLB name (the zone for ordinary records, empty when refused), query type, policy (static for ordinary records), answering site and rcode.",
		}, []string{"name", "type", "policy", "site", "rcode"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "xlb_dns_answer_seconds",
			Help:    "Time from a query's arrival (its batch's read, over UDP) to its answer written (its batch's write).",
			Buckets: []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01},
		}),
		siteUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_dns_site_up",
			Help: "1 while a site is healthy (after rise/fall), 0 while it is down.",
		}, []string{"site"}),
		siteFlip: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_dns_site_transitions_total",
			Help: "Times a site's health changed, by the state it changed to.",
		}, []string{"site", "to"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_dns_rate_limited_total",
			Help: "UDP answers held back by rate_limit: dropped, or sent empty with TC (slip).",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.latency, m.siteUp, m.siteFlip, m.limited)
	}
	return m
}

// labelTypes are the query types named in the type label; any other is
// "other", so that a client asking for arbitrary type numbers cannot grow
// the series without bound.
var labelTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeTXT, dns.TypeCNAME,
	dns.TypePTR, dns.TypeSRV, dns.TypeCAA, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeDS, dns.TypeDNSKEY,
}

// typeLabel is the type label of a query: "" for a query without one
// question.
func typeLabel(r *dns.Msg) string {
	if len(r.Question) != 1 {
		return ""
	}
	if t := r.Question[0].Qtype; slices.Contains(labelTypes, t) {
		return dns.TypeToString[t]
	}
	return "other"
}
