package admin

import (
	"errors"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xlbproject/xlb/internal/statuspage"
)

// LiveStatus is the document GET /api/status serves on the proxy's admin
// listener and the status page renders: every route, pool and server as
// `xlb pool` shows them, with rates over the last second or so computed
// from the proxy's own Prometheus counters and latency histograms (two
// gathers, no extra accounting on the request path). See
// docs/status-page.md for every field.
type LiveStatus struct {
	Kind    string    `json:"kind"` // always "proxy"
	Time    time.Time `json:"time"`
	Version string    `json:"version,omitempty"`
	// RateSeconds is the interval the rates were computed over; 0 on the
	// first request after start, or when the proxy keeps no metrics.
	RateSeconds float64 `json:"rateSeconds"`
	// Ready is what /ready answers; ReadyReason says why not.
	Ready       bool        `json:"ready"`
	ReadyReason string      `json:"readyReason,omitempty"`
	Summary     LiveSummary `json:"summary"`
	Routes      []LiveRoute `json:"routes"`
	Pools       []LivePool  `json:"pools"`
}

// LiveSummary counts servers by state over all pools.
type LiveSummary struct {
	Pools     int `json:"pools"`
	Servers   int `json:"servers"`
	Up        int `json:"up"`
	SlowStart int `json:"slowStart"`
	Draining  int `json:"draining"`
	Ejected   int `json:"ejected"`
	Down      int `json:"down"`
	OutOfRole int `json:"outOfRole"`
	// PoolsEmpty have no available server and do not fail open: their
	// routes answer 503.
	PoolsEmpty int `json:"poolsEmpty"`
	// PoolsFailingOpen have too few servers passing their checks and send
	// new clients to every server not draining (health.all_down:
	// fail_open).
	PoolsFailingOpen int `json:"poolsFailingOpen"`
}

// LiveRoute is one route with its request rates (answers of its pool's
// servers and the proxy's own 503s alike).
type LiveRoute struct {
	Name              string  `json:"name"`
	Pool              string  `json:"pool"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	ErrorsPerSecond   float64 `json:"errorsPerSecond"` // 5xx answers
	ShedPerSecond     float64 `json:"shedPerSecond"`   // refused by load shedding
	Shed              uint64  `json:"shed"`            // since start
}

// LivePool is one pool: Pool's fields plus rates.
type LivePool struct {
	Name      string   `json:"name"`
	Policy    string   `json:"policy"`
	Sticky    bool     `json:"sticky"`
	Routes    []string `json:"routes"`
	Available int      `json:"available"`
	InFlight  int64    `json:"inFlight"`
	// FailingOpen is Pool.FailingOpen: Problem says so too.
	FailingOpen bool `json:"failingOpen,omitempty"`

	RequestsPerSecond float64 `json:"requestsPerSecond"`
	ErrorsPerSecond   float64 `json:"errorsPerSecond"`
	RetriesPerSecond  float64 `json:"retriesPerSecond"`
	Retries           uint64  `json:"retries"`
	// Sticky-session decisions per second (sticky pools only): a cookie
	// honoured, a client newly pinned, a pinned client moved.
	StickyHitsPerSecond   float64 `json:"stickyHitsPerSecond"`
	StickyNewPerSecond    float64 `json:"stickyNewPerSecond"`
	StickyRepinsPerSecond float64 `json:"stickyRepinsPerSecond"`

	// Role is the PostgreSQL role the pool wants (primary, replica), and
	// Problem why it has no server for it or uses its fallback (split
	// brain, no primary, no usable replica); SplitBrain is set while
	// several servers claim primary and the pool refuses.
	Role       string `json:"role,omitempty"`
	Problem    string `json:"problem,omitempty"`
	SplitBrain bool   `json:"splitBrain,omitempty"`
	// Listeners are the TCP listeners forwarding to the pool; the
	// connection figures are theirs: open now, forwarded per second, and
	// refused per second (no server available, or the proxy at
	// limits.max_conns).
	Listeners            []string `json:"listeners"`
	ActiveConnections    float64  `json:"activeConnections"`
	ConnectionsPerSecond float64  `json:"connectionsPerSecond"`
	RefusedPerSecond     float64  `json:"refusedPerSecond"`

	Servers []LiveServer `json:"servers"`
}

// Server states of LiveServer.State. SlowStart is an up server still
// ramping its weight after coming back.
const (
	LiveUp        = "up"
	LiveSlowStart = "slow-start"
	LiveDraining  = "draining"
	LiveEjected   = "ejected"
	LiveDown      = "down"
	// LiveOutOfRole is a server of a pool with a PostgreSQL role that
	// answers its check but is not what the role wants: a standby in a
	// primary pool, the primary in a replica pool, a standby over max_lag.
	LiveOutOfRole = "out-of-role"
)

// LiveServer is one server: Server's fields plus rates and latency.
type LiveServer struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	// EffectiveWeight is the fraction of Weight in effect (below 1 during
	// slow start).
	EffectiveWeight float64    `json:"effectiveWeight"`
	State           string     `json:"state"`
	InFlight        int64      `json:"inFlight"`
	Ejections       uint64     `json:"ejections"`
	DrainDeadline   *time.Time `json:"drainDeadline,omitempty"`
	StickySeen      *time.Time `json:"stickySeen,omitempty"`
	Empty           bool       `json:"empty"`
	Runtime         bool       `json:"runtime"`

	RequestsPerSecond float64 `json:"requestsPerSecond"`
	ErrorsPerSecond   float64 `json:"errorsPerSecond"`
	// P50Ms and P99Ms are latency quantiles of the requests answered in the
	// interval, estimated from the histogram buckets; null when none was.
	P50Ms *float64 `json:"p50Ms"`
	P99Ms *float64 `json:"p99Ms"`

	// ActiveConnections and ConnectionsPerSecond are the server's TCP
	// connections (TCP listeners).
	ActiveConnections    float64 `json:"activeConnections"`
	ConnectionsPerSecond float64 `json:"connectionsPerSecond"`
	// DB is the server's last PostgreSQL check, for pools with one.
	DB *LiveDB `json:"db,omitempty"`
}

// LiveDB is what the PostgreSQL health check last learnt about a server.
type LiveDB struct {
	Up         bool    `json:"up"`
	InRecovery bool    `json:"inRecovery"`
	LagSeconds float64 `json:"lagSeconds"`
	// Error is why the last check failed (bad credentials, timeout).
	Error string `json:"error,omitempty"`
}

// LiveHandler serves GET /api/status. g is what the proxy's /metrics
// serves (nil: no rates); version is reported as is.
func (m *Manager) LiveHandler(g prometheus.Gatherer, version string) http.Handler {
	return &liveHandler{m: m, g: g, version: version}
}

type liveHandler struct {
	m       *Manager
	g       prometheus.Gatherer
	version string
	sampler statuspage.Sampler[counters]
}

func (h *liveHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	st, err := h.build(time.Now())
	if err != nil {
		statuspage.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	statuspage.WriteJSON(w, st)
}

func (h *liveHandler) build(now time.Time) (LiveStatus, error) {
	h.m.mu.Lock()
	p := h.m.proxy
	h.m.mu.Unlock()
	if p == nil {
		return LiveStatus{}, errors.New("the proxy is starting")
	}
	cur := gather(h.g)
	prev, prevAt, ok := h.sampler.Add(now, cur)
	r := rates{cur: cur, prev: prev}
	out := LiveStatus{Kind: statuspage.KindProxy, Time: now, Version: h.version, Routes: []LiveRoute{}, Pools: []LivePool{}}
	if ok {
		r.secs = now.Sub(prevAt).Seconds()
		out.RateSeconds = r.secs
	}
	out.Ready, out.ReadyReason = p.Ready()
	if out.Ready {
		out.ReadyReason = ""
	}

	cfg, dir := p.Running()
	// Slow start and ejection counts are not in Pool; read them from the
	// same backends describe reads.
	type extra struct {
		eff       float64
		ejections uint64
	}
	extras := map[[2]string]extra{}
	for i, pl := range dir.Pools() {
		var slow time.Duration
		if i < len(cfg.Pools) {
			slow = cfg.Pools[i].SlowStart
		}
		for _, b := range pl.Backends {
			e := extra{eff: 1, ejections: b.Ejections()}
			if full := int64(b.Weight) * 1000; full > 0 {
				e.eff = float64(b.EffectiveWeight(now, slow)) / float64(full)
			}
			extras[[2]string{pl.Name, b.Name}] = e
		}
	}
	for _, rt := range cfg.Routes {
		out.Routes = append(out.Routes, LiveRoute{
			Name: rt.Name, Pool: rt.Pool,
			RequestsPerSecond: r.requests(func(k reqKey) bool { return k.route == rt.Name }, false),
			ErrorsPerSecond:   r.requests(func(k reqKey) bool { return k.route == rt.Name }, true),
			ShedPerSecond:     r.per(cur.shed[rt.Name], prev.shed[rt.Name]),
			Shed:              uint64(cur.shed[rt.Name]),
		})
	}
	tcpListeners := map[string][]string{}
	for _, l := range cfg.Listeners {
		if l.Pool != "" {
			tcpListeners[l.Pool] = append(tcpListeners[l.Pool], l.Name)
		}
	}
	for _, pl := range describe(p, h.m.stateSnapshot(), now, DefaultQuiet) {
		lp := LivePool{
			Role: pl.Role, Problem: pl.Problem, SplitBrain: pl.SplitBrain, FailingOpen: pl.FailingOpen,
			Listeners:        append([]string{}, tcpListeners[pl.Name]...),
			RefusedPerSecond: r.per(cur.tcpRefused[pl.Name], prev.tcpRefused[pl.Name]),
			Name:             pl.Name, Policy: pl.Policy, Sticky: pl.Sticky, Routes: pl.Routes, Available: pl.Available,
			RequestsPerSecond:     r.requests(func(k reqKey) bool { return k.pool == pl.Name }, false),
			ErrorsPerSecond:       r.requests(func(k reqKey) bool { return k.pool == pl.Name }, true),
			RetriesPerSecond:      r.per(cur.retries[pl.Name], prev.retries[pl.Name]),
			Retries:               uint64(cur.retries[pl.Name]),
			StickyHitsPerSecond:   r.per(cur.sticky[[2]string{pl.Name, "hit"}], prev.sticky[[2]string{pl.Name, "hit"}]),
			StickyNewPerSecond:    r.per(cur.sticky[[2]string{pl.Name, "new"}], prev.sticky[[2]string{pl.Name, "new"}]),
			StickyRepinsPerSecond: r.per(cur.sticky[[2]string{pl.Name, "repin"}], prev.sticky[[2]string{pl.Name, "repin"}]),
			Servers:               []LiveServer{},
		}
		for _, s := range pl.Servers {
			key := [2]string{pl.Name, s.Name}
			e := extras[key]
			ls := LiveServer{
				Name: s.Name, Addr: s.Addr, Weight: s.Weight, EffectiveWeight: e.eff, State: s.State,
				InFlight: s.InFlight, Ejections: e.ejections, DrainDeadline: s.DrainDeadline, StickySeen: s.StickySeen,
				Empty: s.Empty, Runtime: s.Runtime,
				RequestsPerSecond: r.requests(func(k reqKey) bool { return k.pool == pl.Name && k.server == s.Name }, false),
				ErrorsPerSecond:   r.requests(func(k reqKey) bool { return k.pool == pl.Name && k.server == s.Name }, true),
			}
			if s.DB != nil {
				ls.DB = &LiveDB{Up: s.DB.Up, InRecovery: s.DB.InRecovery, LagSeconds: s.DB.LagSeconds, Error: s.DB.Error}
				if pl.Role != "" && ls.State == LiveDown && s.DB.Up {
					ls.State = LiveOutOfRole
				}
			}
			ls.ActiveConnections = cur.tcpActive[key]
			ls.ConnectionsPerSecond = r.per(cur.tcpConns[key], prev.tcpConns[key])
			lp.ActiveConnections += ls.ActiveConnections
			lp.ConnectionsPerSecond += ls.ConnectionsPerSecond
			if ls.State == LiveUp && e.eff < 1 {
				ls.State = LiveSlowStart
			}
			if ok {
				d := cur.lat[key].minus(prev.lat[key])
				ls.P50Ms, ls.P99Ms = d.quantileMs(0.5), d.quantileMs(0.99)
			}
			lp.InFlight += ls.InFlight
			switch ls.State {
			case LiveUp:
				out.Summary.Up++
			case LiveSlowStart:
				out.Summary.SlowStart++
			case LiveDraining:
				out.Summary.Draining++
			case LiveEjected:
				out.Summary.Ejected++
			case LiveOutOfRole:
				out.Summary.OutOfRole++
			default:
				out.Summary.Down++
			}
			lp.Servers = append(lp.Servers, ls)
		}
		switch {
		case lp.FailingOpen:
			out.Summary.PoolsFailingOpen++
		case lp.Available == 0:
			out.Summary.PoolsEmpty++
		}
		out.Summary.Servers += len(lp.Servers)
		out.Pools = append(out.Pools, lp)
	}
	out.Summary.Pools = len(out.Pools)
	return out, nil
}

// stateSnapshot is the runtime state describe needs, read under the lock.
func (m *Manager) stateSnapshot() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// reqKey is one series of xlb_l7_requests_total.
type reqKey struct{ route, pool, server, class string }

// histo is one series of xlb_l7_request_duration_seconds: cumulative
// counts at each finite upper bound, ascending.
type histo struct {
	count  float64
	bounds []float64
	cum    []float64
}

// counters is one gather of the proxy's cumulative series the page shows.
type counters struct {
	req     map[reqKey]float64
	lat     map[[2]string]histo // pool, server
	retries map[string]float64  // pool
	shed    map[string]float64  // route, all priorities
	sticky  map[[2]string]float64
	// TCP listeners: connections forwarded and open per pool and server,
	// refused per pool.
	tcpConns   map[[2]string]float64
	tcpActive  map[[2]string]float64
	tcpRefused map[string]float64
}

// gather reads the series by their exported names: the same numbers as
// /metrics, so the page and Prometheus never disagree.
func gather(g prometheus.Gatherer) counters {
	c := counters{req: map[reqKey]float64{}, lat: map[[2]string]histo{}, retries: map[string]float64{},
		shed: map[string]float64{}, sticky: map[[2]string]float64{},
		tcpConns: map[[2]string]float64{}, tcpActive: map[[2]string]float64{}, tcpRefused: map[string]float64{}}
	if g == nil {
		return c
	}
	fams, _ := g.Gather() // a failed collector leaves its series out; the rest still count
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			l := labels(mt)
			switch f.GetName() {
			case "xlb_l7_requests_total":
				c.req[reqKey{l["route"], l["pool"], l["server"], l["code_class"]}] += mt.GetCounter().GetValue()
			case "xlb_l7_request_duration_seconds":
				hg := mt.GetHistogram()
				h := histo{count: float64(hg.GetSampleCount())}
				for _, b := range hg.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue
					}
					h.bounds = append(h.bounds, b.GetUpperBound())
					h.cum = append(h.cum, float64(b.GetCumulativeCount()))
				}
				c.lat[[2]string{l["pool"], l["server"]}] = h
			case "xlb_l7_retries_total":
				c.retries[l["pool"]] += mt.GetCounter().GetValue()
			case "xlb_l7_shed_total":
				c.shed[l["route"]] += mt.GetCounter().GetValue()
			case "xlb_l7_tcp_connections_total":
				c.tcpConns[[2]string{l["pool"], l["server"]}] += mt.GetCounter().GetValue()
			case "xlb_l7_tcp_active_connections":
				c.tcpActive[[2]string{l["pool"], l["server"]}] += mt.GetGauge().GetValue()
			case "xlb_l7_tcp_errors_total":
				if k := l["kind"]; k == "no_server" || k == "limit" {
					c.tcpRefused[l["pool"]] += mt.GetCounter().GetValue()
				}
			case "xlb_l7_sticky_total":
				c.sticky[[2]string{l["pool"], l["result"]}] += mt.GetCounter().GetValue()
			}
		}
	}
	return c
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// rates turns two gathers secs apart into per-second rates.
type rates struct {
	cur, prev counters
	secs      float64
}

// per is the rate of a counter; one that went backwards (a series that
// was recreated) counts as 0.
func (r rates) per(now, before float64) float64 {
	if r.secs <= 0 || now < before {
		return 0
	}
	return (now - before) / r.secs
}

// requests sums the request rate of the series match selects, only 5xx
// when errs.
func (r rates) requests(match func(reqKey) bool, errs bool) float64 {
	var sum float64
	for k, v := range r.cur.req {
		if !match(k) || (errs && k.class != "5xx") {
			continue
		}
		sum += r.per(v, r.prev.req[k])
	}
	return sum
}

// minus is the histogram of the observations between prev and h. A
// histogram whose bounds changed (or that went backwards) gives an empty
// one.
func (h histo) minus(prev histo) histo {
	if len(prev.bounds) == 0 {
		return h
	}
	if len(prev.bounds) != len(h.bounds) || h.count < prev.count {
		return histo{}
	}
	d := histo{count: h.count - prev.count, bounds: h.bounds, cum: make([]float64, len(h.cum))}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - prev.cum[i]
	}
	return d
}

// quantileMs estimates the q-quantile in milliseconds by linear
// interpolation inside the bucket it falls in, as Prometheus's
// histogram_quantile does; above the last finite bound it reports that
// bound. nil when the histogram is empty.
func (h histo) quantileMs(q float64) *float64 {
	if h.count <= 0 || len(h.bounds) == 0 {
		return nil
	}
	rank := q * h.count
	i := sort.Search(len(h.cum), func(i int) bool { return h.cum[i] >= rank })
	var v float64
	if i == len(h.cum) {
		v = h.bounds[len(h.bounds)-1]
	} else {
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = h.bounds[i-1], h.cum[i-1]
		}
		in := h.cum[i] - below
		v = h.bounds[i]
		if in > 0 {
			v = lower + (h.bounds[i]-lower)*(rank-below)/in
		}
	}
	ms := v * 1000
	return &ms
}
