package route

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xlbproject/xlb/l7/config"
)

// HeaderGetter is the part of a request view the router needs. Peek returns
// the header's value, or an empty slice when the header is absent.
type HeaderGetter interface {
	Peek(name string) []byte
}

// Route is one compiled route. Everything the engine needs to forward a
// request (pool, timeouts, body limit) is here, resolved at load time.
type Route struct {
	Name  string
	Index int // position in Table.Routes(), for label lookups
	Pool  string
	// PoolIndex is the position of Pool in the director's pool list; set by
	// the director when it builds the table.
	PoolIndex       int
	DialTimeout     time.Duration
	ResponseTimeout time.Duration
	MaxBodyBytes    int64
	// StreamBodyBytes: request bodies above it are streamed upstream.
	StreamBodyBytes int64
	// StreamResponses: response bodies are forwarded as they arrive.
	StreamResponses bool
	// TunnelIdle bounds an upgraded connection's silence.
	TunnelIdle time.Duration
	// Retry is the route's retry policy, resolved from config.
	Retry RetryPolicy
	// Priority is the shedding class rank (config.Priority.Rank).
	Priority int

	host       string // lower case; "" = any
	hostSuffix bool   // host holds ".example.com" from "*.example.com"
	path       string
	exact      bool
	methods    []string
	headers    []headerMatch
}

type headerMatch struct {
	name  string
	value string // "" = header present and not empty
}

// RetryPolicy is when a failed request may be tried on another server.
// Max is 0 when retries are off.
type RetryPolicy struct {
	Max           int
	Idempotent    bool
	PerTryTimeout time.Duration
}

func newRetryPolicy(cr config.Route) RetryPolicy {
	r := cr.Retries
	if r.Disabled {
		return RetryPolicy{}
	}
	p := RetryPolicy{Max: r.Max, PerTryTimeout: r.PerTryTimeout}
	if r.Idempotent != nil {
		p.Idempotent = *r.Idempotent
	}
	return p
}

// Table is an immutable set of routes in match order.
type Table struct {
	byConfig []*Route // config order; Index refers to this
	ordered  []*Route // most specific first
}

// NewTable compiles validated config routes.
func NewTable(routes []config.Route) (*Table, error) {
	t := &Table{}
	for i, cr := range routes {
		m := cr.Match
		r := &Route{
			Name:            cr.Name,
			Index:           i,
			Pool:            cr.Pool,
			DialTimeout:     cr.Timeouts.Dial,
			ResponseTimeout: cr.Timeouts.Response,
			MaxBodyBytes:    cr.MaxBodyBytes,
			StreamBodyBytes: cr.StreamRequestBodyBytes,
			StreamResponses: cr.StreamResponses,
			TunnelIdle:      cr.Timeouts.TunnelIdle,
			Retry:           newRetryPolicy(cr),
			Priority:        cr.Priority.Rank(),
			host:            strings.ToLower(m.Host),
			methods:         slices.Clone(m.Methods),
		}
		if strings.HasPrefix(r.host, "*.") {
			r.host = r.host[1:]
			r.hostSuffix = true
		}
		switch {
		case m.Path != "":
			r.path, r.exact = m.Path, true
		case m.PathPrefix != "":
			r.path = m.PathPrefix
			if len(r.path) > 1 {
				// "/checkout/" and "/checkout" both mean the subtree.
				r.path = strings.TrimSuffix(r.path, "/")
			}
		}
		if r.path == "/" && !r.exact {
			r.path = ""
		}
		for name, val := range m.Headers {
			r.headers = append(r.headers, headerMatch{name: name, value: val})
		}
		slices.SortFunc(r.headers, func(a, b headerMatch) int { return strings.Compare(a.name, b.name) })
		for _, meth := range r.methods {
			if meth == "" {
				return nil, fmt.Errorf("compile route %q: empty method", r.Name)
			}
		}
		t.byConfig = append(t.byConfig, r)
	}
	t.ordered = slices.Clone(t.byConfig)
	slices.SortStableFunc(t.ordered, compareSpecificity)
	return t, nil
}

// compareSpecificity orders more specific routes first.
func compareSpecificity(a, b *Route) int {
	if c := cmp.Compare(hostRank(b), hostRank(a)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.host), len(a.host)); c != 0 {
		return c
	}
	if c := cmp.Compare(boolRank(b.exact), boolRank(a.exact)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.path), len(a.path)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.headers), len(a.headers)); c != 0 {
		return c
	}
	return cmp.Compare(boolRank(len(b.methods) > 0), boolRank(len(a.methods) > 0))
}

func hostRank(r *Route) int {
	switch {
	case r.host == "":
		return 0
	case r.hostSuffix:
		return 1
	default:
		return 2
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Routes returns the routes in config order (Route.Index order).
func (t *Table) Routes() []*Route { return t.byConfig }

// Match returns the most specific route for the request, or nil. host may
// carry a port; path must already be clean (see CleanPath).
func (t *Table) Match(host, path, method []byte, h HeaderGetter) *Route {
	host = stripPort(host)
	for _, r := range t.ordered {
		if r.matches(host, path, method, h) {
			return r
		}
	}
	return nil
}

func (r *Route) matches(host, path, method []byte, h HeaderGetter) bool {
	if r.host != "" {
		if r.hostSuffix {
			if len(host) <= len(r.host) || !equalFold(host[len(host)-len(r.host):], r.host) {
				return false
			}
		} else if !equalFold(host, r.host) {
			return false
		}
	}
	if r.path != "" {
		if r.exact {
			if string(path) != r.path {
				return false
			}
		} else if !hasPathPrefix(path, r.path) {
			return false
		}
	}
	if len(r.methods) > 0 {
		ok := false
		for _, m := range r.methods {
			if string(method) == m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, hm := range r.headers {
		v := h.Peek(hm.name)
		if hm.value == "" {
			if len(v) == 0 {
				return false
			}
		} else if string(v) != hm.value {
			return false
		}
	}
	return true
}

// hasPathPrefix matches whole segments: "/checkout" covers "/checkout" and
// "/checkout/pay" but not "/checkoutfoo".
func hasPathPrefix(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/' || prefix[len(prefix)-1] == '/'
}

func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		// [v6]:port
		for i := len(host) - 1; i > 0; i-- {
			if host[i] == ']' {
				return host[:i+1]
			}
		}
		return host
	}
	for i := len(host) - 1; i >= 0; i-- {
		switch c := host[i]; {
		case c == ':':
			return host[:i]
		case c < '0' || c > '9':
			return host
		}
	}
	return host
}

// equalFold compares ASCII case-insensitively; s is already lower case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
