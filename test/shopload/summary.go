package shopload

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is what the users of one run saw. Times are in milliseconds in
// JSON.
type Summary struct {
	Seconds        float64 `json:"seconds"`
	ArrivalSeconds float64 `json:"arrival_seconds"`
	Mode           string  `json:"mode"` // "open" or "closed"
	// TargetRate is the configured peak arrival rate (open loop).
	TargetRate float64 `json:"target_users_per_s,omitempty"`
	// ArrivalRate is users started per second of arrival time.
	ArrivalRate float64 `json:"users_per_s"`
	Users       Users   `json:"users"`

	Requests   int                       `json:"requests"`
	PerSecond  float64                   `json:"requests_per_s"`
	Routes     []RouteSummary            `json:"routes"`
	Errors     map[string]int            `json:"errors"`
	AppServers map[string]int            `json:"app_servers"`
	L7Hosts    map[string]int            `json:"l7_hosts"`
	AppByRoute map[string]map[string]int `json:"app_servers_by_route"`
	Sticky     Sticky                    `json:"sticky"`
	Conns      Conns                     `json:"connections"`
}

// Users counts virtual users by how they ended.
type Users struct {
	Started  int `json:"started"`
	Finished int `json:"finished"`
	// Cut users were still running at the hard end of the run.
	Cut int `json:"cut"`
	// Dropped arrivals found MaxActive users running (open loop).
	Dropped int `json:"dropped"`
}

// RouteSummary is one route's figures over the run.
type RouteSummary struct {
	Route    string         `json:"route"`
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Errors   map[string]int `json:"errors"`
	P50      float64        `json:"p50_ms"`
	P95      float64        `json:"p95_ms"`
	P99      float64        `json:"p99_ms"`
	Max      float64        `json:"max_ms"`
}

// Sticky tells whether users kept their server on the sticky routes.
type Sticky struct {
	Routes []string `json:"routes"`
	// Users reached a sticky route and got an app server header back.
	Users int `json:"users"`
	Kept  int `json:"kept"`
	// Moved users were answered by more than one server; Examples shows a
	// few, with the servers in the order seen.
	Moved    int      `json:"moved"`
	Examples []string `json:"examples,omitempty"`
	// MovedFrom counts the moved users by the server they had first.
	MovedFrom map[string]int `json:"moved_from,omitempty"`
}

// Conns counts the connections the users opened, and how many of them
// broke under a request (the request failed after the connection was up).
type Conns struct {
	Opened int `json:"opened"`
	Broken int `json:"broken"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *recorder) summary(total, arrivals time.Duration, cfg Config) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Summary{
		Seconds:        total.Seconds(),
		ArrivalSeconds: arrivals.Seconds(),
		Mode:           "closed",
		Users:          Users{Started: r.started, Finished: r.finished, Cut: r.cut, Dropped: r.dropped},
		Errors:         map[string]int{},
		AppServers:     r.apps,
		L7Hosts:        r.l7s,
		AppByRoute:     r.appByRoute,
		Sticky: Sticky{Routes: cfg.StickyRoutes, Users: r.stickyUsers, Kept: r.stickyUsers - r.stickyBroken,
			Moved: r.stickyBroken, Examples: r.stickyExamples},
		Conns: Conns{Opened: r.dials, Broken: r.broken},
	}
	if len(r.movedFrom) > 0 {
		s.Sticky.MovedFrom = copyCounts(r.movedFrom)
	}
	if cfg.Rate > 0 {
		s.Mode, s.TargetRate = "open", cfg.Rate
	}
	if arrivals > 0 {
		s.ArrivalRate = float64(r.started) / arrivals.Seconds()
	}
	for _, name := range routeOrder(r.routes) {
		rs := r.routes[name]
		slices.Sort(rs.lat)
		rsum := RouteSummary{Route: name, Requests: rs.reqs, OK: rs.reqs, Errors: rs.errs,
			P50: ms(pct(rs.lat, 0.50)), P95: ms(pct(rs.lat, 0.95)), P99: ms(pct(rs.lat, 0.99)), Max: ms(pct(rs.lat, 1))}
		for cause, n := range rs.errs {
			rsum.OK -= n
			s.Errors[cause] += n
		}
		s.Requests += rs.reqs
		s.Routes = append(s.Routes, rsum)
	}
	if total > 0 {
		s.PerSecond = float64(s.Requests) / total.Seconds()
	}
	return s
}

// causes is the column order of error causes in the tables.
var causes = []string{CauseRefused, CauseReset, CauseTimeout, Cause5xx, Cause4xx, CauseCanceled, CauseOther}

// WriteText writes the summary as tables for a terminal or a log.
func (s *Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%.1fs, %s loop: %d users (%d finished, %d cut, %d dropped), %.1f users/s", s.Seconds, s.Mode,
		s.Users.Started, s.Users.Finished, s.Users.Cut, s.Users.Dropped, s.ArrivalRate)
	if s.TargetRate > 0 {
		fmt.Fprintf(w, " (peak %.1f)", s.TargetRate)
	}
	fmt.Fprintf(w, "; %d requests, %.0f req/s\n\n", s.Requests, s.PerSecond)

	fmt.Fprint(tw, "route\trequests\tok\t"+strings.Join(causes, "\t")+"\tp50 ms\tp95 ms\tp99 ms\tmax ms\t\n")
	total := RouteSummary{Route: "total", Errors: s.Errors}
	for _, rs := range s.Routes {
		writeRoute(tw, rs)
		total.Requests += rs.Requests
		total.OK += rs.OK
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%s\t\t\t\t\t\n", total.Requests, total.OK, causeCells(s.Errors))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}

	writeCounts(w, "app servers", s.AppServers)
	writeCounts(w, "L7 hosts", s.L7Hosts)
	for _, route := range routeOrder(s.AppByRoute) {
		writeCounts(w, "  "+route, s.AppByRoute[route])
	}
	fmt.Fprintf(w, "sticky (%s): %d users, %d kept their server, %d moved\n",
		strings.Join(s.Sticky.Routes, ", "), s.Sticky.Users, s.Sticky.Kept, s.Sticky.Moved)
	for _, e := range s.Sticky.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	_, err := fmt.Fprintf(w, "connections: %d opened, %d broken\n", s.Conns.Opened, s.Conns.Broken)
	return err
}

func writeRoute(w io.Writer, rs RouteSummary) {
	fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t\n", rs.Route, rs.Requests, rs.OK, causeCells(rs.Errors), rs.P50, rs.P95, rs.P99, rs.Max)
}

func causeCells(errs map[string]int) string {
	cells := make([]string, len(causes))
	for i, c := range causes {
		cells[i] = fmt.Sprint(errs[c])
	}
	return strings.Join(cells, "\t")
}

func writeCounts(w io.Writer, title string, counts map[string]int) {
	if len(counts) == 0 {
		fmt.Fprintf(w, "%s: none (no header)\n", title)
		return
	}
	parts := make([]string, 0, len(counts))
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	fmt.Fprintf(w, "%s: %s\n", title, strings.Join(parts, " "))
}

// String is the live progress line.
func (p Snapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs users=%d started=%d", p.Elapsed.Seconds(), p.Active, p.Started)
	for _, r := range p.Routes {
		fmt.Fprintf(&b, " | %s %.0f/s p50=%.1fms p99=%.1fms", r.Route, r.PerSecond, ms(r.P50), ms(r.P99))
	}
	errs := 0
	for _, n := range p.Errors {
		errs += n
	}
	if errs == 0 {
		b.WriteString(" | errors 0")
	} else {
		b.WriteString(" | errors")
		for _, c := range sortedKeys(p.Errors) {
			fmt.Fprintf(&b, " %s=%d", c, p.Errors[c])
		}
	}
	return b.String()
}
