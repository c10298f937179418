package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/director"
)

// Per-request metrics. Every label combination a request can produce is
// resolved into a counter or observer when the proxy is built, so the hot
// path is an index and an atomic add: no label hashing per request.

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// classCounters holds one counter per status class.
type classCounters [len(codeClasses)]prometheus.Counter

func (c *classCounters) inc(status int) {
	i := status/100 - 1
	if i < 0 || i >= len(c) {
		i = len(c) - 1 // nonsense from upstream counts as a server error
	}
	c[i].Inc()
}

// requestMetrics are the registered vectors; they live as long as the
// proxy, so counters keep counting across reloads.
type requestMetrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	routeDuration *prometheus.HistogramVec
	terminations  *prometheus.CounterVec
}

// genMetrics are the counters of one generation, resolved from the vectors.
type genMetrics struct {
	// upstream[routeIndex][backendIndexInPool]: answered by the app server.
	upstream [][]classCounters
	// local[routeIndex]: routed, but answered by the proxy (503 no backend,
	// 413 body too large).
	local []classCounters
	// unrouted: no route (404) or rejected before routing (400, 408, 413,
	// 431 from the parser).
	unrouted classCounters
	// latency[backendID]; routeLatency[routeIndex]
	latency      []prometheus.Observer
	routeLatency []prometheus.Observer
	// term[routeIndex][cause]; termUnrouted for requests without a route.
	term         [][numCauses]prometheus.Counter
	termUnrouted [numCauses]prometheus.Counter
}

var _ prometheus.Collector = (*requestMetrics)(nil)

// latencyBuckets span a cache hit on loopback (sub-millisecond) to the
// default response timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_requests_total",
			Help: "HTTP requests answered, by route, pool, app server (empty when the proxy answered itself) and status class.",
		}, []string{"route", "pool", "server", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_l7_request_duration_seconds",
			Help:    "Time from the request reaching the handler to the app server's response being ready, per app server.",
			Buckets: latencyBuckets,
		}, []string{"pool", "server"}),
		routeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_l7_route_request_duration_seconds",
			Help:    "Time from the request reaching the handler to the app server's response being ready, per route (the same requests as xlb_l7_request_duration_seconds).",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		terminations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_terminations_total",
			Help: "Requests by route and why they ended (ok, rejected, no_server, shed, connect_refused, connect_timeout, connect_error, response_timeout, upstream_reset, upstream_error, budget_exhausted, client_abort, idle_timeout).",
		}, []string{"route", "cause"}),
	}
}

// resolve looks up every counter a request of dir's generation can touch,
// remembering each label set in set.
func (m *requestMetrics) resolve(dir *director.Director, set seriesSet) *genMetrics {
	g := &genMetrics{}
	resolve := func(route, pool, server string) classCounters {
		var c classCounters
		for i, cls := range codeClasses {
			c[i] = set.counter(m.requests, route, pool, server, cls)
		}
		return c
	}
	pools := dir.Pools()
	routes := dir.Routes()
	g.upstream = make([][]classCounters, len(routes))
	g.local = make([]classCounters, len(routes))
	for _, r := range routes {
		pl := pools[r.PoolIndex]
		g.local[r.Index] = resolve(r.Name, pl.Name, "")
		g.upstream[r.Index] = make([]classCounters, len(pl.Backends))
		for _, b := range pl.Backends {
			g.upstream[r.Index][b.Index] = resolve(r.Name, pl.Name, b.Name)
		}
	}
	g.unrouted = resolve("", "", "")
	resolveTerm := func(route string) (c [numCauses]prometheus.Counter) {
		for i := range c {
			c[i] = set.counter(m.terminations, route, cause(i).String())
		}
		return c
	}
	g.term = make([][numCauses]prometheus.Counter, len(routes))
	for _, r := range routes {
		g.term[r.Index] = resolveTerm(r.Name)
	}
	g.termUnrouted = resolveTerm("")
	backends := dir.Backends()
	g.latency = make([]prometheus.Observer, len(backends))
	for _, b := range backends {
		g.latency[b.ID] = set.observer(m.duration, b.Pool, b.Name)
	}
	g.routeLatency = make([]prometheus.Observer, len(routes))
	for _, r := range routes {
		g.routeLatency[r.Index] = set.observer(m.routeDuration, r.Name)
	}
	return g
}

func (m *requestMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.routeDuration.Describe(ch)
	m.terminations.Describe(ch)
}

func (m *requestMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	m.routeDuration.Collect(ch)
	m.terminations.Collect(ch)
}

// observe accounts one request. res.answered says whether an app server
// answered (status and latency are then the server's).
func (m *genMetrics) observe(dec *director.Decision, res result, d time.Duration) {
	m.terminated(dec, res.cause)
	m.answered(dec, res, d)
}

// terminated counts how a request ended.
func (m *genMetrics) terminated(dec *director.Decision, c cause) {
	if dec.Route == nil {
		m.termUnrouted[c].Inc()
	} else {
		m.term[dec.Route.Index][c].Inc()
	}
}

// answered counts a request's status (and the server's latency).
func (m *genMetrics) answered(dec *director.Decision, res result, d time.Duration) {
	switch {
	case dec.Route == nil:
		m.unrouted.inc(res.status)
	case res.answered:
		m.upstream[dec.Route.Index][res.server.Index].inc(res.status)
		m.latency[res.server.ID].Observe(d.Seconds())
		m.routeLatency[dec.Route.Index].Observe(d.Seconds())
	default:
		m.local[dec.Route.Index].inc(res.status)
	}
}

// rejected accounts a request the parser refused before routing.
func (m *genMetrics) rejected(status int) {
	m.unrouted.inc(status)
	m.termUnrouted[causeRejected].Inc()
}
