package shopload

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Routes of the shop flow, as they appear in the summary.
const (
	RouteBrowse   = "/browse"
	RouteProducts = "/products"
	RouteAuth     = "/auth"
	RouteCart     = "/checkout/cart"
	RouteCheckout = "/checkout"
)

// Causes of a failed request.
const (
	CauseRefused  = "refused"  // connect refused: nothing listens
	CauseReset    = "reset"    // the peer reset or closed the connection mid-request
	CauseTimeout  = "timeout"  // no answer within Config.Timeout
	Cause5xx      = "5xx"      // the server answered 5xx
	Cause4xx      = "4xx"      // the server answered 4xx
	CauseCanceled = "canceled" // the run ended while the request was in flight
	CauseOther    = "other"    // anything else (the message is in the log)
)

// CauseOf names the cause of a failed HTTP exchange's transport error
// (one of the Cause constants), for other load drivers that count failures
// the way the summary does.
func CauseOf(err error) string { return classify(err) }

// classify names the cause of a transport error.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CauseReset
	case errors.Is(err, context.Canceled):
		return CauseCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	}
	return CauseOther
}

// causeOfStatus names the cause of an HTTP status, "" for success.
func causeOfStatus(code int) string {
	switch {
	case code >= 500:
		return Cause5xx
	case code >= 400:
		return Cause4xx
	}
	return ""
}

type routeStats struct {
	reqs   int
	errs   map[string]int
	lat    []time.Duration // every answered request, whatever its status
	ivReqs int
	ivLat  []time.Duration // since the last snapshot
}

// recorder collects what the users see; one per run, safe for concurrent use.
type recorder struct {
	mu         sync.Mutex
	routes     map[string]*routeStats
	ivErrs     map[string]int
	apps       map[string]int
	l7s        map[string]int
	appByRoute map[string]map[string]int
	dials      int
	broken     int

	started, finished, dropped, cut, active int

	stickyUsers, stickyBroken int
	stickyExamples            []string
	movedFrom                 map[string]int

	start    time.Time
	failures []Failure
}

// maxFailures bounds the failed requests a run remembers one by one.
const maxFailures = 10000

func newRecorder() *recorder {
	return &recorder{
		routes:     map[string]*routeStats{},
		ivErrs:     map[string]int{},
		apps:       map[string]int{},
		l7s:        map[string]int{},
		appByRoute: map[string]map[string]int{},
		movedFrom:  map[string]int{},
	}
}

func (r *recorder) route(name string) *routeStats {
	rs := r.routes[name]
	if rs == nil {
		rs = &routeStats{errs: map[string]int{}}
		r.routes[name] = rs
	}
	return rs
}

// result is one request's outcome.
type result struct {
	route    string
	start    time.Time
	cause    string // "" on success
	answered bool   // an HTTP status came back
	lat      time.Duration
	app, l7  string
	broken   bool // failed on a connection that had been established
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.route(res.route)
	rs.reqs++
	rs.ivReqs++
	if res.answered {
		rs.lat = append(rs.lat, res.lat)
		rs.ivLat = append(rs.ivLat, res.lat)
	}
	if res.cause != "" {
		rs.errs[res.cause]++
		r.ivErrs[res.cause]++
		if len(r.failures) < maxFailures {
			r.failures = append(r.failures, Failure{Start: res.start, End: res.start.Add(res.lat),
				Route: res.route, Cause: res.cause, App: res.app, L7: res.l7, Broken: res.broken})
		}
	}
	if res.app != "" {
		r.apps[res.app]++
		m := r.appByRoute[res.route]
		if m == nil {
			m = map[string]int{}
			r.appByRoute[res.route] = m
		}
		m[res.app]++
	}
	if res.l7 != "" {
		r.l7s[res.l7]++
	}
	if res.broken {
		r.broken++
	}
}

func (r *recorder) dialed() {
	r.mu.Lock()
	r.dials++
	r.mu.Unlock()
}

func (r *recorder) userStarted() {
	r.mu.Lock()
	r.started++
	r.active++
	r.mu.Unlock()
}

func (r *recorder) userDropped() {
	r.mu.Lock()
	r.dropped++
	r.mu.Unlock()
}

func (r *recorder) activeUsers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// userDone records the end of a user: whether it was cut short by the end
// of the run, and what it saw of its sticky servers (nil: it reached none).
func (r *recorder) userDone(id int, cut bool, sticky []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if cut {
		r.cut++
	} else {
		r.finished++
	}
	if len(sticky) == 0 {
		return
	}
	r.stickyUsers++
	if len(sticky) > 1 {
		r.stickyBroken++
		r.movedFrom[sticky[0]]++
		if len(r.stickyExamples) < 5 {
			r.stickyExamples = append(r.stickyExamples, userName(id)+": "+joinArrow(sticky))
		}
	}
}

func joinArrow(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += " → "
		}
		out += v
	}
	return out
}

// Snapshot is the live progress of the last interval.
type Snapshot struct {
	Elapsed  time.Duration
	Interval time.Duration
	Active   int
	Started  int
	Routes   []RouteRate
	Errors   map[string]int
}

// RouteRate is one route's figures over a snapshot interval.
type RouteRate struct {
	Route     string
	PerSecond float64
	P50, P99  time.Duration
}

func (r *recorder) snapshot(elapsed, interval time.Duration) Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Elapsed: elapsed, Interval: interval, Active: r.active, Started: r.started, Errors: r.ivErrs}
	r.ivErrs = map[string]int{}
	for _, name := range routeOrder(r.routes) {
		rs := r.routes[name]
		slices.Sort(rs.ivLat)
		s.Routes = append(s.Routes, RouteRate{
			Route:     name,
			PerSecond: float64(rs.ivReqs) / interval.Seconds(),
			P50:       pct(rs.ivLat, 0.50),
			P99:       pct(rs.ivLat, 0.99),
		})
		rs.ivReqs, rs.ivLat = 0, rs.ivLat[:0]
	}
	return s
}

// pct is the p-quantile of sorted (nearest rank), 0 for none.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// flowOrder is the order of the shop flow's routes in tables.
var flowOrder = []string{RouteBrowse, RouteProducts, RouteAuth, RouteCart, RouteCheckout}

// routeOrder lists the routes in the order a shopper takes them, other
// routes after them by name.
func routeOrder[V any](m map[string]V) []string {
	keys := sortedKeys(m)
	rank := func(k string) int {
		if i := slices.Index(flowOrder, k); i >= 0 {
			return i
		}
		return len(flowOrder)
	}
	slices.SortStableFunc(keys, func(a, b string) int { return rank(a) - rank(b) })
	return keys
}

// Totals are a run's counts so far (Load.Totals); Sub of two gives what
// happened between them.
type Totals struct {
	// Elapsed is the time since the run started.
	Elapsed  time.Duration
	Requests int
	// Errors counts failed requests by cause.
	Errors map[string]int
	// Opened and Broken count connections as Conns does.
	Opened, Broken int
	// Apps and L7s count answers per app server and per L7 host.
	Apps, L7s map[string]int
	// StickyUsers finished users that reached a sticky route; StickyMoved
	// those of them answered by more than one server there, counted by
	// the server they had first in MovedFrom.
	StickyUsers, StickyMoved int
	MovedFrom                map[string]int
	// Failures are the failed requests one by one, in the order they
	// ended (the first 10000 of the run).
	Failures []Failure
}

// Failure is one failed request.
type Failure struct {
	Start, End time.Time
	Route      string
	Cause      string
	// App and L7 name who answered, when someone did (a 5xx).
	App, L7 string
	// Broken: it failed on a connection that had been established.
	Broken bool
}

// ErrorCount is the number of failed requests.
func (t Totals) ErrorCount() int {
	n := 0
	for _, v := range t.Errors {
		n += v
	}
	return n
}

// Sub is what happened between prev and t (prev taken earlier).
func (t Totals) Sub(prev Totals) Totals {
	d := Totals{
		Elapsed: t.Elapsed - prev.Elapsed, Requests: t.Requests - prev.Requests,
		Opened: t.Opened - prev.Opened, Broken: t.Broken - prev.Broken,
		StickyUsers: t.StickyUsers - prev.StickyUsers, StickyMoved: t.StickyMoved - prev.StickyMoved,
		Errors: subCounts(t.Errors, prev.Errors), Apps: subCounts(t.Apps, prev.Apps),
		L7s: subCounts(t.L7s, prev.L7s), MovedFrom: subCounts(t.MovedFrom, prev.MovedFrom),
	}
	if len(t.Failures) > len(prev.Failures) {
		d.Failures = t.Failures[len(prev.Failures):]
	}
	return d
}

// subCounts is a − b, keeping only keys whose difference is not zero.
func subCounts(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (r *recorder) totals() Totals {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := Totals{
		Elapsed: time.Since(r.start), Opened: r.dials, Broken: r.broken, Errors: map[string]int{},
		Apps: copyCounts(r.apps), L7s: copyCounts(r.l7s),
		StickyUsers: r.stickyUsers, StickyMoved: r.stickyBroken, MovedFrom: copyCounts(r.movedFrom),
		Failures: slices.Clone(r.failures),
	}
	for _, rs := range r.routes {
		t.Requests += rs.reqs
		for c, n := range rs.errs {
			t.Errors[c] += n
		}
	}
	return t
}
