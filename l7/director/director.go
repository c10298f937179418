package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xlbproject/xlb/l7/balance"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/health"
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/l7/route"
	"github.com/xlbproject/xlb/l7/sticky"
)

// HeaderView gives the director read access to request headers. An engine
// implements it over its own request type without allocating. Both methods
// return an empty slice when the header or cookie is absent; the slices are
// only read during Decide.
type HeaderView interface {
	Peek(name string) []byte
	Cookie(name string) []byte
}

type noHeaders struct{}

func (noHeaders) Peek(string) []byte   { return nil }
func (noHeaders) Cookie(string) []byte { return nil }

// Request is the engine-independent view of one request. It and every slice
// in it are only read during Decide and never kept.
type Request struct {
	Method []byte
	Host   []byte // Host header (or :authority); a port is ignored
	// Path is the request path as received; a query string is ignored. The
	// director cleans it (route.CleanPath) before matching, so an engine may
	// pass either the raw path or one it has already normalised.
	Path       []byte
	ClientAddr netip.Addr
	TLS        bool
	Headers    HeaderView
}

// Decision is the director's answer. Reuse one Decision per worker or
// request context: Decide keeps the capacity of the previous SetCookie
// buffer, so issuing cookies does not allocate either.
type Decision struct {
	Route   *route.Route  // nil when Status is 404
	Pool    *pool.Pool    // nil when Status is 404
	Backend *pool.Backend // nil when Status != 0
	// SetCookie is a complete Set-Cookie header value to add to the
	// response, or nil.
	SetCookie []byte
	// Status is 0 to forward, 404 when no route matches, 503 when the
	// route's pool has no available server.
	Status int
	// Sticky says what happened with the sticky cookie, for access logs.
	Sticky StickyResult

	buf  []byte
	done bool
	// For Redispatch: the pool-local indices of servers already tried (the
	// first 64; beyond that only the current one is excluded) and a
	// reusable buffer for the servers left.
	tried   uint64
	scratch []*pool.Backend
}

// StickyResult is what the director did with a sticky cookie.
type StickyResult uint8

// Sticky results.
const (
	StickyNone     StickyResult = iota // pool not sticky
	StickyHit                          // valid cookie honoured
	StickyIssued                       // no usable cookie: new pin
	StickyRepinned                     // valid cookie, server unusable: moved
	// StickyPending: a recent cookie names a server this host does not
	// know yet (it is being added one L7 host after the other). A stand-in
	// serves the request and the cookie is left as it is.
	StickyPending
)

// Outcome is what happened to a forwarded request.
type Outcome struct {
	// ConnectErr is true when no connection to the server could be made.
	ConnectErr bool
	// Status is the upstream's status code, 0 when the upstream failed
	// after connecting (reset, response timeout); 0 counts like a 5xx.
	Status int
	// Skipped is true when the proxy answered itself without forwarding
	// (e.g. 413 for a body over the limit): the in-flight slot is released
	// but the server's health is not judged.
	Skipped bool
}

// StickyStats are a pool's sticky-session counters.
type StickyStats struct {
	Hits   atomic.Uint64
	Issued atomic.Uint64
	Repins atomic.Uint64
	// Pending counts requests served by a stand-in for a server this host
	// does not know yet, the cookie kept (StickyPending).
	Pending  atomic.Uint64
	Rejected [sticky.NumReasons]atomic.Uint64 // by sticky.Reason
}

// Option configures a Director.
type Option func(*options)

type options struct {
	log  *slog.Logger
	now  func() time.Time
	prev *Director
}

// WithLogger sets the logger for state transitions.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPrevious builds the director as the next generation of prev: servers
// that keep their pool, name and address keep their state (see
// pool.NewFrom), and so do the pools' sticky counters. Hand prev's health
// checks over with TakeOver once the new director serves.
func WithPrevious(prev *Director) Option { return func(o *options) { o.prev = prev } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

type hashKind uint8

const (
	hashNone hashKind = iota
	hashClientAddr
	hashPath
	hashHeader
	hashCookie
)

// member is a server with its pool, found by "pool/server".
type member struct {
	b *pool.Backend
	p *pool.Pool
}

type poolState struct {
	pool   *pool.Pool
	policy balance.Policy
	sticky *config.Sticky
	stats  *StickyStats // shared with the pool's earlier generations
	// grace is the sticky propagation grace (config.Sticky.Grace).
	grace time.Duration
	// gone holds the keys of servers this host removed from the pool, with
	// when (unix nanos), for as long as a cookie naming one may still be
	// valid: a cookie naming one of them is re-pinned at once, never taken
	// for a server still on its way here. Read-only once built.
	gone map[uint64]int64
	// standIns picks the stand-in for a cookie naming a server not here
	// yet (standIn).
	standIns balance.Hash
	hashKind hashKind
	hashName string
	health   *config.ActiveHealth
	postgres *config.PostgresHealth
	// protocol and tls are how the proxy speaks to the pool's servers
	// (config.Pool's upstream_protocol and tls); its health checks speak
	// the same.
	protocol string
	tls      *config.UpstreamTLS // nil: cleartext
	proxyV2  bool                // the pool's servers expect a PROXY protocol v2 header
}

// Director decides where requests go. It is safe for concurrent use.
type Director struct {
	opts     options
	table    *route.Table
	pools    []*poolState
	backends []*pool.Backend
	byHealth map[string]member
	ring     *sticky.Ring
	poolIdx  map[string]int

	mu      sync.Mutex
	checker *health.Checker
}

// New builds a Director from a validated config.
func New(cfg *config.Config, opts ...Option) (*Director, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	d := &Director{opts: o, byHealth: map[string]member{}}
	now := o.now()
	poolIdx := map[string]int{}
	prevPools := map[string]*poolState{}
	if o.prev != nil {
		for _, ps := range o.prev.pools {
			prevPools[ps.pool.Name] = ps
		}
	}
	for i, pc := range cfg.Pools {
		var prevPool *pool.Pool
		stats := &StickyStats{}
		if pps := prevPools[pc.Name]; pps != nil {
			prevPool, stats = pps.pool, pps.stats
		}
		p := pool.NewFrom(i, pc, len(d.backends), o.log, now, prevPool)
		pol, err := balance.New(pc, balance.Default{})
		if err != nil {
			return nil, fmt.Errorf("create director: %w", err)
		}
		ps := &poolState{pool: p, policy: pol, sticky: pc.Sticky, health: pc.Health.Active, postgres: pc.Health.Postgres, protocol: pc.UpstreamProtocol, tls: pc.TLS, proxyV2: pc.ProxyProtocol == config.ProxyProtocolV2, stats: stats}
		ps.hashKind, ps.hashName = parseHashKey(pc.HashKey)
		if pc.Sticky != nil {
			ps.grace = pc.Sticky.Grace()
			ps.gone = goneFrom(prevPools[pc.Name], p, pc.Sticky.MaxAge, now)
		}
		d.pools = append(d.pools, ps)
		poolIdx[pc.Name] = i
		for _, b := range p.Backends {
			name := serverName(b.Pool, b.Name)
			if _, dup := d.byHealth[name]; dup {
				return nil, fmt.Errorf("create director: ambiguous server name %q", name)
			}
			d.byHealth[name] = member{b: b, p: p}
			d.backends = append(d.backends, b)
		}
		if pc.Sticky != nil && d.ring == nil {
			keys := make([]sticky.Key, 0, len(cfg.Sticky.Keys))
			for _, k := range cfg.Sticky.Keys {
				keys = append(keys, sticky.Key{ID: byte(k.ID), Secret: k.Bytes})
			}
			ring, err := sticky.NewRing(keys)
			if err != nil {
				return nil, fmt.Errorf("create director: %w", err)
			}
			d.ring = ring
		}
	}
	table, err := route.NewTable(cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("create director: %w", err)
	}
	for _, r := range table.Routes() {
		i, ok := poolIdx[r.Pool]
		if !ok {
			return nil, fmt.Errorf("create director: route %q names unknown pool %q", r.Name, r.Pool)
		}
		r.PoolIndex = i
	}
	d.table = table
	d.poolIdx = poolIdx
	return d, nil
}

// PoolIndex returns the index of the named pool in Pools.
func (d *Director) PoolIndex(name string) (int, bool) {
	i, ok := d.poolIdx[name]
	return i, ok
}

// PickConn picks a server of the pool at index i for a new TCP connection
// with the pool's policy, among the available servers below maxPerServer
// open connections (0: no cap; key feeds the hash policy), and counts the connection on it: the caller
// releases it with Backend.Release when the connection ends. It returns nil
// when no server may take the connection.
func (d *Director) PickConn(i int, maxPerServer int, key uint64) *pool.Backend {
	ps := d.pools[i]
	now := d.opts.now()
	cands := ps.pool.Available(now)
	if maxPerServer > 0 {
		free := make([]*pool.Backend, 0, len(cands))
		for _, b := range cands {
			if b.InFlight() < int64(maxPerServer) {
				free = append(free, b)
			}
		}
		cands = free
	}
	b := ps.policy.Pick(cands, key, now)
	if b != nil {
		b.Acquire()
	}
	return b
}

// serverName is the "pool/server" name that health targets, SetStatus and
// Drain look servers up by.
func serverName(poolName, server string) string { return poolName + "/" + server }

func parseHashKey(k string) (hashKind, string) {
	switch {
	case k == "":
		return hashNone, ""
	case k == "client_addr":
		return hashClientAddr, ""
	case k == "path":
		return hashPath, ""
	case len(k) > 7 && k[:7] == "header:":
		return hashHeader, k[7:]
	case len(k) > 7 && k[:7] == "cookie:":
		return hashCookie, k[7:]
	}
	return hashClientAddr, ""
}

// Decide routes r and picks a server, filling dec. On Status 0 the caller
// must forward to dec.Backend and then call Done exactly once.
func (d *Director) Decide(r *Request, dec *Decision) {
	buf := dec.buf
	if buf == nil {
		buf = dec.SetCookie
	}
	*dec = Decision{buf: buf[:0], scratch: dec.scratch[:0]}
	if r.Headers == nil {
		r.Headers = noHeaders{}
	}

	var pathBuf [512]byte
	path := route.CleanPath(pathBuf[:0], r.Path)
	rt := d.table.Match(r.Host, path, r.Method, r.Headers)
	if rt == nil {
		dec.Status = 404
		return
	}
	ps := d.pools[rt.PoolIndex]
	dec.Route, dec.Pool = rt, ps.pool
	now := d.opts.now()

	var b *pool.Backend
	if ps.sticky != nil {
		b = d.stickyBackend(ps, r, now, dec)
	}
	if b == nil {
		var key uint64
		if ps.hashKind != hashNone {
			key = requestKey(ps, r, path)
		}
		b = ps.policy.Pick(ps.pool.Available(now), key, now)
		if b == nil {
			dec.Status = 503
			return
		}
		if ps.sticky != nil {
			if dec.Sticky == StickyRepinned {
				ps.stats.Repins.Add(1)
			} else {
				dec.Sticky = StickyIssued
				ps.stats.Issued.Add(1)
			}
			d.setCookie(ps, b, r, now, dec)
		}
	}
	b.Acquire()
	dec.Backend = b
}

// stickyBackend returns the server named by a valid cookie when it may keep
// the client, or nil. A bad cookie is counted and treated as absent.
func (d *Director) stickyBackend(ps *poolState, r *Request, now time.Time, dec *Decision) *pool.Backend {
	c := r.Headers.Cookie(ps.sticky.Cookie)
	if len(c) == 0 {
		return nil
	}
	key, issued, err := d.ring.Decode(c, now, ps.sticky.MaxAge)
	if err != nil {
		ps.stats.Rejected[sticky.ReasonOf(err)].Add(1)
		return nil
	}
	b := ps.pool.ByKey(key)
	if b == nil {
		if stand := ps.standIn(key, issued, now); stand != nil {
			dec.Sticky = StickyPending
			ps.stats.Pending.Add(1)
			return stand
		}
		ps.stats.Rejected[sticky.ReasonUnknownServer].Add(1)
		return nil
	}
	if !b.StickyOK(now) && !ps.pool.FailOpenKeeps(b, now) {
		dec.Sticky = StickyRepinned
		return nil
	}
	dec.Sticky = StickyHit
	ps.stats.Hits.Add(1)
	b.NoteStickyWhileDraining(now)
	// Refresh past half the max age so active sessions never expire, while
	// most requests carry a fresh cookie and set nothing.
	if now.Sub(issued) > ps.sticky.MaxAge/2 {
		d.setCookie(ps, b, r, now, dec)
	}
	return b
}

func (d *Director) setCookie(ps *poolState, b *pool.Backend, r *Request, now time.Time, dec *Decision) {
	dec.buf = d.ring.AppendSetCookie(dec.buf[:0], ps.sticky.Cookie, b.Key, now, ps.sticky.MaxAge, r.TLS)
	dec.SetCookie = dec.buf
}

// requestKey hashes the pool's consistent-hash key; a request without the
// configured header or cookie falls back to its client address.
func requestKey(ps *poolState, r *Request, path []byte) uint64 {
	var v []byte
	switch ps.hashKind {
	case hashPath:
		v = path
	case hashHeader:
		v = r.Headers.Peek(ps.hashName)
	case hashCookie:
		v = r.Headers.Cookie(ps.hashName)
	}
	if len(v) > 0 {
		return balance.HashBytes(v)
	}
	a := r.ClientAddr.As16()
	return balance.HashBytes(a[:])
}

// Done ends a forwarded request: it releases the in-flight slot and feeds
// passive health. Calling it again for the same decision does nothing.
func (d *Director) Done(dec *Decision, o Outcome) {
	if dec.Backend == nil || dec.done {
		return
	}
	dec.done = true
	dec.Backend.Release()
	if o.Skipped {
		return
	}
	// Only a failure can eject, and only an ejection needs the clock: skip
	// the clock read on the common path.
	var now time.Time
	if o.ConnectErr || o.Status == 0 || o.Status >= 500 {
		now = d.opts.now()
	}
	dec.Pool.Report(dec.Backend, o.ConnectErr, o.Status, now)
}

// EmptyRoute is a route whose pool has no healthy server that may take
// new clients: its requests are answered 503 until one comes back, or,
// while FailingOpen, sent to the servers that fail their checks.
type EmptyRoute struct {
	Route       string `json:"route"`
	Pool        string `json:"pool"`
	FailingOpen bool   `json:"failing_open,omitempty"`
}

// EmptyRoutes lists the routes whose pool has no available server, in
// config order. Only those routes fail; the host as a whole still serves.
func (d *Director) EmptyRoutes() []EmptyRoute {
	now := d.opts.now()
	var out []EmptyRoute
	for _, r := range d.table.Routes() {
		p := d.pools[r.PoolIndex].pool
		if view := p.View(now); !view.Healthy() {
			out = append(out, EmptyRoute{Route: r.Name, Pool: p.Name, FailingOpen: view.FailingOpen})
		}
	}
	return out
}

// PartlyOpenRoute is a route whose pool fails open although some of its
// servers pass (health.fail_open_below): it serves, from every server not
// draining.
type PartlyOpenRoute struct {
	Route   string `json:"route"`
	Pool    string `json:"pool"`
	Passing int    `json:"passing"`
	Servers int    `json:"servers"`
}

// PartlyOpenRoutes lists, in config order, the routes whose pool fails
// open with some servers passing; EmptyRoutes lists those with none.
func (d *Director) PartlyOpenRoutes() []PartlyOpenRoute {
	now := d.opts.now()
	var out []PartlyOpenRoute
	for _, r := range d.table.Routes() {
		p := d.pools[r.PoolIndex].pool
		if view := p.View(now); view.FailingOpen && view.Healthy() {
			out = append(out, PartlyOpenRoute{Route: r.Name, Pool: p.Name, Passing: view.Passing(), Servers: len(view.Avail)})
		}
	}
	return out
}

// AllPoolsAvailable reports whether every route's pool has a server that
// may take new clients; reason names the first that has none. It is the
// strict readiness of `readiness: all_pools`.
func (d *Director) AllPoolsAvailable() (ok bool, reason string) {
	if e := d.EmptyRoutes(); len(e) > 0 {
		if e[0].FailingOpen {
			return false, fmt.Sprintf("route %s: pool %s has no healthy server (failing open)", e[0].Route, e[0].Pool)
		}
		return false, fmt.Sprintf("route %s: pool %s has no available server", e[0].Route, e[0].Pool)
	}
	return true, ""
}

// Route returns the route Decide would match for a request with this host,
// raw path, method and headers, or nil. It lets an engine apply a route's
// limits before the body is read, with the director's own table.
func (d *Director) Route(host, path, method []byte, h route.HeaderGetter) *route.Route {
	var pathBuf [512]byte
	return d.table.Match(host, route.CleanPath(pathBuf[:0], path), method, h)
}

// Backends returns every server of every pool in a stable order; a
// Backend's ID is its index here.
func (d *Director) Backends() []*pool.Backend { return d.backends }

// Routes returns the routes in config order; Route.Index is the position.
func (d *Director) Routes() []*route.Route { return d.table.Routes() }

// Pools returns the pools in config order; Pool.Index is the position.
func (d *Director) Pools() []*pool.Pool {
	out := make([]*pool.Pool, len(d.pools))
	for i, ps := range d.pools {
		out[i] = ps.pool
	}
	return out
}

// Pool returns the pool at index i.
func (d *Director) Pool(i int) *pool.Pool { return d.pools[i].pool }

// StickyStats returns the sticky counters of the pool at index i (all zero
// for a pool without sticky sessions).
func (d *Director) StickyStats(i int) *StickyStats { return d.pools[i].stats }

// Sticky reports whether the pool at index i uses sticky sessions.
func (d *Director) Sticky(i int) bool { return d.pools[i].sticky != nil }

// SetStatus implements health.StatusSetter; name is "pool/server".
func (d *Director) SetStatus(name string, up bool) {
	if m, ok := d.byHealth[name]; ok {
		m.p.SetUp(m.b, up, d.opts.now())
	}
}

// SetPostgres implements health.PostgresSetter; name is "pool/server".
func (d *Director) SetPostgres(name string, st health.PostgresStatus) {
	if m, ok := d.byHealth[name]; ok {
		m.p.SetDB(m.b, pool.DBState{Up: st.Up, InRecovery: st.InRecovery, Lag: st.Lag, Err: st.Err}, d.opts.now())
	}
}

// ErrUnknownServer is returned for a pool or server name the config lacks.
var ErrUnknownServer = errors.New("unknown server")

// Drain stops new clients from going to a server; its sticky clients stay
// until deadline, then move. A zero deadline ends draining.
func (d *Director) Drain(poolName, server string, deadline time.Time) error {
	m, ok := d.byHealth[serverName(poolName, server)]
	if !ok {
		return fmt.Errorf("drain %s/%s: %w", poolName, server, ErrUnknownServer)
	}
	m.p.Drain(m.b, deadline, d.opts.now())
	return nil
}

// Start begins active health checks for pools that configure them. Stop
// them with Close (or by cancelling ctx).
func (d *Director) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.checker != nil {
		return errors.New("start director: already started")
	}
	d.checker = health.New(d, d.healthTargets(), d.opts.log)
	if err := d.checker.Start(ctx); err != nil {
		return fmt.Errorf("start director: %w", err)
	}
	return nil
}

func (d *Director) healthTargets() []health.Target {
	var targets []health.Target
	for _, ps := range d.pools {
		if pg := ps.postgres; pg != nil {
			for _, b := range ps.pool.Backends {
				targets = append(targets, health.Target{
					Name: serverName(b.Pool, b.Name), Addr: b.Addr, Postgres: pg.Credentials,
					Interval: pg.Interval, Timeout: pg.Timeout, Rise: pg.Rise, Fall: pg.Fall, ProxyV2: ps.proxyV2,
				})
			}
			continue
		}
		a := ps.health
		if a == nil {
			continue
		}
		for _, b := range ps.pool.Backends {
			t := health.Target{
				Name: serverName(b.Pool, b.Name), Addr: b.Addr, Path: a.Path, Host: a.Host,
				Interval: a.Interval, Timeout: a.Timeout, Rise: a.Rise, Fall: a.Fall, H2C: ps.protocol == config.UpstreamH2C,
			}
			if ps.tls != nil {
				// Probed the way requests go: the same TLS settings and
				// protocol, so a server whose certificate the proxy
				// refuses is down, not up and failing every request.
				alpn := config.ALPNHTTP11
				if ps.protocol == config.UpstreamH2 {
					alpn = config.ALPNH2
				}
				t.TLS, t.TLSDigest = ps.tls.ClientConfig(b.Addr, alpn), ps.tls.Digest+" "+alpn
			}
			targets = append(targets, t)
		}
	}
	return targets
}

// TakeOver moves prev's running health checks to d: probes of unchanged
// servers go on with their rise/fall history and report to d from now on,
// probes of removed servers stop and new servers get theirs. prev keeps no
// checker, so closing it later stops nothing. Call it once d serves.
func (d *Director) TakeOver(prev *Director) {
	prev.mu.Lock()
	c := prev.checker
	prev.checker = nil
	prev.mu.Unlock()
	if c != nil {
		c.Update(d, d.healthTargets())
		d.mu.Lock()
		d.checker = c
		d.mu.Unlock()
	}
	// Transitions that reached only prev's pools while d was being built
	// changed the shared server state; rebuild d's view of it.
	now := d.opts.now()
	for _, ps := range d.pools {
		ps.pool.Refresh(now)
	}
}

// Close stops active health checks.
func (d *Director) Close() error {
	d.mu.Lock()
	c := d.checker
	d.checker = nil
	d.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

var (
	_ health.StatusSetter   = (*Director)(nil)
	_ health.PostgresSetter = (*Director)(nil)
)
