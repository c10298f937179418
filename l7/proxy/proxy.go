package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/internal/listen"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// Engine defaults that are not in the config because no operator should
// need to change them; each is a bound, not a tuning knob.
const (
	// maxResponseBodyBytes bounds one buffered upstream response. fasthttp
	// treats a non-positive limit as no limit at all.
	maxResponseBodyBytes = 32 << 20
	// maxConnsPerBackend bounds the upstream connections to one app server;
	// requests beyond it wait up to the response timeout for a free one.
	maxConnsPerBackend = 1024
	// upstreamWriteBuffer is the HostClient's write buffer (fasthttp's
	// default size): a request's first write is shorter unless the request
	// does not fit, see upstreamConn.Write.
	upstreamWriteBuffer = config.MinStreamRequestBody
)

// Options are the dependencies of a Proxy. The zero value works: no
// metrics, no access log, logs discarded.
type Options struct {
	// Log receives state transitions and listener errors (never one line
	// per request).
	Log *slog.Logger
	// AccessLog, when set, gets one JSON record per sampled request; the
	// config's access_log section decides whether and how often.
	AccessLog *slog.Logger
	// Registerer, when set, gets the proxy's collectors; Gatherer is what
	// the admin listener's /metrics serves.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// NoRequestMetrics turns off the per-request counters and histograms
	// (the scrape-time pool and backend gauges stay). It exists to measure
	// what the request metrics cost.
	NoRequestMetrics bool
	// AdminMount, when set, adds handlers to the admin listener's mux next
	// to /ready, /healthz and /metrics (the status page).
	AdminMount func(*http.ServeMux)
	// Listeners, when set, are the sockets Run serves, opened by Listen
	// from the same config's listeners and admin address; without them,
	// Run opens its own.
	Listeners *Listeners
}

// Proxy is the HTTP/1.1 engine: client-facing fasthttp servers, one
// HostClient per app server, and the admin listener.
//
// Everything a reload may change lives in an immutable generation that
// requests load once, at their start, through an atomic pointer: a request
// finishes on the generation it started with, and Apply swaps in the next
// one without a lock on the hot path.
type Proxy struct {
	// boot is the config the listeners and the fasthttp server were built
	// from; their settings take effect at the next start only.
	boot       *config.Config
	gen        atomic.Pointer[generation]
	log        *slog.Logger
	srv        *fasthttp.Server
	h2         *http.Server    // the h2 path of TLS listeners, see h2.go
	h2ctx      sync.Pool       // *fasthttp.RequestCtx for h2 requests
	metrics    *requestMetrics // nil when request metrics are off
	traffic    *trafficMetrics // retries, shedding, tunnels: always counted
	shed       shedder         // proxy-wide in-flight count for shedding
	tunnels    *tunnels        // open WebSocket tunnels, across generations
	tcp        *tcpConns       // open TCP-listener connections, across generations
	tcpMetrics *tcpMetrics     // always counted, registered with Options.Registerer
	tcpCtx     context.Context
	tcpStop    context.CancelFunc
	accessW    *slog.Logger // nil when there is no access log
	gather     prometheus.Gatherer
	mount      func(*http.ServeMux) // Options.AdminMount
	states     sync.Pool            // *reqState

	applyMu sync.Mutex // serialises Apply

	// listening is set once a client listener serves; stopping once a
	// graceful stop has begun. Both feed Ready.
	listening atomic.Bool
	stopping  atomic.Bool
	// tlsFailures counts client TLS handshakes that failed.
	tlsFailures atomic.Uint64
	// handshakes bounds the TLS handshakes in progress and h2Conns counts
	// open h2 connections, both to limits.max_conns (fasthttp bounds the
	// HTTP/1.1 ones itself); tlsRefused counts connections closed because
	// of them.
	handshakes chan struct{}
	h2Conns    atomic.Int64
	tlsRefused atomic.Uint64
	// upstreamReplaced counts kept-alive upstream connections replaced
	// before a write (see upstreamConn.ensureOpen), across generations:
	// one HostClient may serve servers of several pools, so the count is
	// the proxy's.
	upstreamReplaced atomic.Uint64

	mu     sync.Mutex
	lns    []net.Listener // closed again at shutdown, see track
	tlsLns []net.Listener // TLS listeners, closed first at shutdown
	admin  *http.Server
	closed bool
	// opened are Options.Listeners, until Run serves them or Close
	// closes them.
	opened *Listeners
}

// Listeners are the sockets of a config's listeners (in config order) and
// of its admin address (nil when it has none), opened by Listen.
type Listeners struct {
	lns   []net.Listener
	admin net.Listener
}

// Close closes them all; Run and Proxy.Close do it for those they got.
func (o *Listeners) Close() {
	for _, ln := range o.lns {
		_ = ln.Close()
	}
	if o.admin != nil {
		_ = o.admin.Close()
	}
}

// Listen opens cfg's listeners and admin address, for Options.Listeners.
// A process opens them before anything with an effect outside it (the
// store, health checks): one that cannot have its ports, another proxy
// holding them, then stops having touched nothing.
func Listen(cfg *config.Config) (*Listeners, error) {
	o := &Listeners{}
	for i, l := range cfg.Listeners {
		ln, err := listen.TCP(l.Addr, fmt.Sprintf("listeners[%d].addr", i))
		if err != nil {
			o.Close()
			return nil, err
		}
		o.lns = append(o.lns, ln)
	}
	if cfg.Admin.Addr != "" {
		ln, err := listen.TCP(cfg.Admin.Addr, "admin.addr")
		if err != nil {
			o.Close()
			return nil, err
		}
		o.admin = ln
	}
	return o, nil
}

// generation is one running config: the director and the upstream clients
// and per-request accounting resolved for it. It is never modified once
// stored.
type generation struct {
	cfg     *config.Config
	dir     *director.Director
	clients []upstreamClient // by pool.Backend.ID
	// upstreamTLS, by pool.Backend.ID: the TLS client configuration the
	// server is spoken to with, HTTP/1.1 offered (nil: cleartext).
	upstreamTLS []*tls.Config
	trusted     trustedNets
	tls         map[string]*tls.Config // by listener name, see tls.go
	maxBody     int64                  // the largest route body limit
	metrics     *genMetrics            // nil when request metrics are off
	traffic     *genTraffic
	// series are the metric label sets resolved for this generation.
	series seriesSet
	shed   shedPolicy
	access *accessLog // nil when the access log is off
	// owned is true for directors Apply built: the proxy closes the last
	// one. The first director belongs to New's caller.
	owned bool
}

// New builds a proxy for cfg around a director built from the same config.
// It opens no sockets: Run or Serve does (or Listen, before, for
// Options.Listeners).
func New(cfg *config.Config, dir *director.Director, opts Options) (*Proxy, error) {
	if cfg == nil || dir == nil {
		return nil, errors.New("new proxy: config and director are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Proxy{
		boot:    cfg,
		log:     log,
		gather:  opts.Gatherer,
		mount:   opts.AdminMount,
		accessW: opts.AccessLog,
		opened:  opts.Listeners,
	}
	p.states.New = func() any { return new(reqState) }
	p.h2ctx.New = func() any { return new(fasthttp.RequestCtx) }
	p.traffic = newTrafficMetrics(p)
	p.tunnels = newTunnels()
	p.tcp = newTCPConns(cfg.Limits.MaxConns)
	p.tcpMetrics = newTCPMetrics()
	p.tcpCtx, p.tcpStop = context.WithCancel(context.Background())

	if opts.Registerer != nil {
		if !opts.NoRequestMetrics {
			m := newRequestMetrics()
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("register request metrics: %w", err)
			}
			p.metrics = m
		}
		if err := opts.Registerer.Register(newStateCollector(p)); err != nil {
			return nil, fmt.Errorf("register state metrics: %w", err)
		}
		if err := opts.Registerer.Register(p.traffic); err != nil {
			return nil, fmt.Errorf("register traffic metrics: %w", err)
		}
		if err := p.tcpMetrics.register(opts.Registerer, p); err != nil {
			return nil, fmt.Errorf("register tcp metrics: %w", err)
		}
	}
	g, err := p.newGeneration(cfg, dir, nil)
	if err != nil {
		return nil, fmt.Errorf("new proxy: %w", err)
	}
	p.gen.Store(g)
	p.srv = p.newServer()
	p.h2 = p.newH2Server()
	p.handshakes = make(chan struct{}, cfg.Limits.MaxConns)
	return p, nil
}

// newGeneration resolves everything per-request code needs for cfg and dir.
// Upstream clients of prev are reused for servers with the same address and
// connection settings, so their keep-alive connections survive the swap.
func (p *Proxy) newGeneration(cfg *config.Config, dir *director.Director, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg, dir: dir, trusted: trustedNets(cfg.TrustedPrefixes), tls: tlsConfigs(cfg), series: seriesSet{}}
	g.maxBody = config.DefaultMaxBodyBytes
	for _, r := range cfg.Routes {
		g.maxBody = max(g.maxBody, r.MaxBodyBytes)
	}
	reuse := map[upstreamKey]upstreamClient{}
	if prev != nil {
		pup := upstreams(prev.cfg, prev.dir)
		for _, b := range prev.dir.Backends() {
			reuse[pup[b.Pool].key(b.Addr)] = prev.clients[b.ID]
		}
	}
	for _, pc := range cfg.Pools {
		if pc.TLS != nil && pc.TLS.InsecureSkipVerify {
			p.log.Warn("the pool's servers are spoken to over TLS without checking their certificates (tls.insecure_skip_verify)", "pool", pc.Name)
		}
	}
	backends := dir.Backends()
	up := upstreams(cfg, dir)
	g.clients = make([]upstreamClient, len(backends))
	g.upstreamTLS = make([]*tls.Config, len(backends))
	for i, b := range backends {
		if b.ID != i {
			return nil, fmt.Errorf("backend %q has id %d at position %d", b.Name, b.ID, i)
		}
		u := up[b.Pool]
		k := u.key(b.Addr)
		hc := reuse[k]
		if hc == nil {
			hc = u.client(b.Addr, &p.upstreamReplaced)
			reuse[k] = hc // two servers of one address share a client
		}
		g.clients[i] = hc
		if u.tls != nil {
			g.upstreamTLS[i] = u.tls.ClientConfig(b.Addr, config.ALPNHTTP11)
		}
	}
	if p.metrics != nil {
		g.metrics = p.metrics.resolve(dir, g.series)
	}
	g.traffic = p.traffic.resolve(dir, g.series)
	g.shed = newShedPolicy(cfg.Shedding)
	if p.accessW != nil && cfg.AccessLog.Enabled {
		g.access = newAccessLog(p.accessW, cfg.AccessLog.Sample)
	}
	return g, nil
}

// upstream is how the proxy connects to one pool's servers.
type upstream struct {
	// dial is the longest dial timeout of the routes that use the pool,
	// because one client dials for every route of its pool.
	dial  time.Duration
	idle  time.Duration // pools[].keepalive_timeout
	proto string
	tls   *config.UpstreamTLS // nil: cleartext
}

// upstreamKey tells whether a client made for a server under one config
// serves it unchanged under the next: then its open connections stay.
type upstreamKey struct {
	addr      string
	dial      time.Duration
	idle      time.Duration
	proto     string
	tlsDigest string
}

func (u upstream) key(addr string) upstreamKey {
	k := upstreamKey{addr: addr, dial: u.dial, idle: u.idle, proto: u.proto}
	if u.tls != nil {
		k.tlsDigest = u.tls.Digest
	}
	return k
}

// client makes the client for the server at addr; an HTTP/1.1 client
// counts the kept-alive connections it replaces in replaced.
func (u upstream) client(addr string, replaced *atomic.Uint64) upstreamClient {
	switch u.proto {
	case config.UpstreamH2C, config.UpstreamH2:
		return newH2Client(addr, u.dial, u.idle, u.tls)
	}
	return newHostClient(addr, u.dial, u.idle, u.tls, replaced)
}

// upstreams resolves each pool's upstream.
func upstreams(cfg *config.Config, dir *director.Director) map[string]upstream {
	out := make(map[string]upstream, len(cfg.Pools))
	for _, pc := range cfg.Pools {
		out[pc.Name] = upstream{dial: config.DefaultDialTimeout, idle: pc.KeepaliveTimeout, proto: pc.UpstreamProtocol, tls: pc.TLS}
	}
	longest := make(map[string]time.Duration)
	for _, r := range dir.Routes() {
		longest[r.Pool] = max(longest[r.Pool], r.DialTimeout)
	}
	for pool, d := range longest {
		if u, ok := out[pool]; ok && d > 0 {
			u.dial = d
			out[pool] = u
		}
	}
	return out
}

// newHostClient is the HTTP/1.1 client for the server at addr; with ut it
// speaks TLS, the handshake part of the dial. Idle keep-alive connections
// are closed after idle; the kept-alive ones replaced before a write are
// counted in replaced.
func newHostClient(addr string, dialTimeout, idle time.Duration, ut *config.UpstreamTLS, replaced *atomic.Uint64) *fasthttp.HostClient {
	d := &upstreamDialer{addr: addr, timeout: dialTimeout, replaced: replaced}
	if ut != nil {
		d.tls = ut.ClientConfig(addr, config.ALPNHTTP11)
	}
	hc := &fasthttp.HostClient{
		// No Name: fasthttp would send it as User-Agent on requests that
		// have none, and the proxy must not invent request headers.
		Addr:                addr,
		DialTimeout:         d.dial,
		MaxConns:            maxConnsPerBackend,
		MaxConnWaitTimeout:  time.Second,
		MaxIdleConnDuration: idle,
		MaxResponseBodySize: maxResponseBodyBytes,
		WriteBufferSize:     upstreamWriteBuffer,
		// One reconnect to the same server, only for idempotent requests
		// with a buffered body and only when the connection closed before
		// a response byte: it covers a keep-alive connection the app server
		// closed while idle. fasthttp never sends a streamed body again, so
		// those, like non-idempotent requests, are checked before they are
		// written instead (see upstreamConn).
		// Everything else is forward's to retry, on another server.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                reconnectIf,
		NoDefaultUserAgentHeader:  true,
		ReadTimeout:               0, // per request, from the route (DoTimeout)
		WriteTimeout:              0,
	}
	// IsTLS makes the client take https requests (the scheme the handler
	// gives requests to this pool); the dial above does the TLS.
	hc.IsTLS = d.tls != nil
	return hc
}

func (p *Proxy) newServer() *fasthttp.Server {
	l := p.boot.Limits
	maxBody := int64(config.DefaultMaxBodyBytes)
	for _, r := range p.boot.Routes {
		maxBody = max(maxBody, r.MaxBodyBytes)
	}
	return &fasthttp.Server{
		Handler: p.serve,
		// fasthttp has one read deadline per request. It starts as the header
		// timeout (armed at connection open or at the first byte of a
		// keep-alive request, so a slowloris client that trickles header bytes
		// is cut off), and HeaderReceived re-arms it for the body.
		ReadTimeout:    l.ReadHeaderTimeout,
		HeaderReceived: p.headerReceived,
		WriteTimeout:   l.WriteTimeout,
		IdleTimeout:    l.IdleTimeout,
		// The read buffer bounds the request line plus headers.
		ReadBufferSize: l.MaxHeaderBytes,
		Concurrency:    l.MaxConns,
		// The server-wide body bound is the largest route limit; the
		// handler enforces each route's own limit.
		MaxRequestBodySize:           int(maxBody),
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		NoDefaultDate:                true,
		CloseOnShutdown:              true,
		// The handler never asks for ctx.Time(); don't read the clock for it.
		LazyRequestTime: true,
		ErrorHandler:    p.parseError,
		// Bodies above a route's stream_request_body_bytes reach the
		// handler as a stream (see stream.go).
		StreamRequestBody: true,
		Logger:            fasthttpLogger{p.log},
	}
}

// headerReceived runs between reading the request headers and reading the
// body. For a request with a body it re-arms the read deadline for the body.
// With StreamRequestBody the size limit given here only decides how much
// fasthttp reads ahead; the route's max_body_bytes is enforced by the
// handler, from Content-Length or while a chunked body flows (stream.go).
// Requests without a body skip this: re-arming costs a clock read and a
// timer update.
func (p *Proxy) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	switch h.ContentLength() {
	case 0, -2: // -2: neither Content-Length nor chunked, so no body
		return fasthttp.RequestConfig{}
	}
	g := p.gen.Load()
	rc := fasthttp.RequestConfig{ReadTimeout: g.cfg.Limits.ReadTimeout}
	// Only origin-form targets are matched here; anything else keeps the
	// server-wide bound and meets its route's limit in the handler.
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] == '/' {
		r := g.dir.Route(h.Host(), uri, h.Method(), h)
		if r != nil && r.MaxBodyBytes > 0 {
			rc.MaxRequestBodySize = int(r.MaxBodyBytes)
		}
	}
	return rc
}

// fasthttpLogger routes fasthttp's own messages (connection-level errors)
// to debug level: they are per connection, not state transitions.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
	}
}

// parseError answers requests fasthttp rejected before the handler: status
// codes follow RFC 9110 rather than fasthttp's blanket 400.
func (p *Proxy) parseError(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &small):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &netErr) && netErr.Timeout():
		status = fasthttp.StatusRequestTimeout
	}
	ctx.Error(fasthttp.StatusMessage(status), status)
	if g := p.gen.Load(); g.metrics != nil {
		g.metrics.rejected(status)
	}
}

// Handler is the client-facing request handler, for serving on a listener
// the caller owns (tests use fasthttputil's in-memory listener).
func (p *Proxy) Handler() fasthttp.RequestHandler { return p.serve }

// Serve serves client traffic on ln until ln is closed or Close is called.
func (p *Proxy) Serve(ln net.Listener) error {
	if err := p.track(ln); err != nil {
		return err
	}
	if err := p.srv.Serve(ln); err != nil {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// track refuses to serve after Close and remembers ln. fasthttp's Shutdown
// closes only the listeners its Serve has registered; one whose Serve call
// races with Shutdown would be missed, so shutdown closes them all again.
func (p *Proxy) track(ln net.Listener) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = ln.Close()
		return errors.New("serve: proxy closed")
	}
	p.lns = append(p.lns, ln)
	p.listening.Store(true)
	return nil
}

// director is the director requests are decided by.
func (p *Proxy) director() *director.Director { return p.gen.Load().dir }

// Running returns the running config and its director (they change on
// Apply); both are read-only for the caller.
func (p *Proxy) Running() (*config.Config, *director.Director) {
	g := p.gen.Load()
	return g.cfg, g.dir
}

// Ready reports whether this host can serve: a client listener is up, the
// config is loaded, and no stop has begun. With `readiness: all_pools` it
// also needs every route's pool to have an available server. An empty pool
// otherwise fails only its own routes (503 with Retry-After), so that one
// dead pool cannot take every L7 host out of the edge's table.
func (p *Proxy) Ready() (ok bool, reason string) {
	switch {
	case p.stopping.Load():
		return false, "stopping"
	case !p.listening.Load():
		return false, "no listener is serving yet"
	}
	if g := p.gen.Load(); g.cfg.Readiness == config.ReadinessAllPools {
		return g.dir.AllPoolsAvailable()
	}
	return true, ""
}

// Run serves every configured listener and the admin address (opening them
// unless Options.Listeners has them) until ctx is done. Then it stops
// gracefully: /ready fails at once while everything else keeps serving for
// the config's drain delay (the edge's health checks take the host out
// meanwhile; answers close their connections so keep-alive clients
// reconnect elsewhere), then the listeners close, in-flight requests get up
// to the shutdown timeout to finish (their responses carry Connection:
// close) and idle keep-alive connections are closed. It returns the first
// serving error.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	o := p.opened
	p.opened = nil
	p.mu.Unlock()
	if o == nil {
		var err error
		if o, err = Listen(p.boot); err != nil {
			return err
		}
	}
	lns, adminLn := o.lns, o.admin

	errc := make(chan error, len(lns)+1)
	var wg sync.WaitGroup
	for i, ln := range lns {
		l := p.boot.Listeners[i]
		p.log.Info("listening", "addr", ln.Addr().String(), "tls", l.TLS != nil, "mode", l.Mode)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer recoverTo(p.log)
			if l.Mode == config.ModeTCP {
				errc <- p.ServeTCP(ln, l.Name)
				return
			}
			if l.TLS != nil {
				errc <- p.ServeTLS(ln, l.Name)
				return
			}
			errc <- p.Serve(ln)
		}()
	}
	if adminLn != nil {
		p.log.Info("admin listening", "addr", adminLn.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer recoverTo(p.log)
			errc <- p.ServeAdmin(adminLn)
		}()
	}

	var err error
	select {
	case <-ctx.Done():
		p.drain()
	case err = <-errc:
	}
	if cerr := p.shutdown(); err == nil {
		err = cerr
	}
	wg.Wait()
	return err
}

// drain fails /ready and keeps serving for the drain delay, so that the
// edge stops sending new flows before the listeners close.
func (p *Proxy) drain() {
	p.stopping.Store(true)
	// h2 clients get GOAWAY on their next request instead of a
	// Connection: close.
	p.h2.SetKeepAlivesEnabled(false)
	sh := p.gen.Load().cfg.Shutdown
	p.log.Info("stopping: /ready fails, still serving for the drain delay", "drain_delay", sh.DrainDelay)
	t := time.NewTimer(sh.DrainDelay)
	defer t.Stop()
	<-t.C
	p.log.Info("drain delay over: no longer accepting", "timeout", sh.Timeout)
}

func recoverTo(log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error("goroutine panicked", "panic", r)
	}
}

// shutdown stops accepting, lets in-flight requests finish within the
// shutdown timeout, and closes the admin listener.
func (p *Proxy) shutdown() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.stopping.Store(true)
	admin := p.admin
	lns := p.lns
	tlsLns := p.tlsLns
	if p.opened != nil {
		p.opened.Close() // given, never served
		p.opened = nil
	}
	p.mu.Unlock()

	g := p.gen.Load()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Shutdown.Timeout)
	defer cancel()
	var errs []error
	// TLS listeners first: nothing new reaches the engines behind them.
	for _, ln := range tlsLns {
		_ = ln.Close()
	}
	h2done := make(chan error, 1)
	go func() { h2done <- p.h2.Shutdown(ctx) }()
	if err := p.srv.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down proxy server: %w", err))
	}
	if err := <-h2done; err != nil {
		errs = append(errs, fmt.Errorf("shut down h2 server: %w", err))
	}
	for _, ln := range lns {
		_ = ln.Close() // usually closed already by Shutdown
	}
	p.tunnels.closeAll() // fasthttp no longer owns hijacked connections
	p.shutdownTCP(ctx)
	p.tcpStop()
	if admin != nil {
		if err := admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down admin server: %w", err))
		}
	}
	for _, hc := range g.clients {
		hc.CloseIdleConnections()
	}
	if g.owned {
		if err := g.dir.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close director: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close stops the listeners and the admin server and closes idle upstream
// connections. It does not close the director given to New (its owner
// does), only the last one Apply built.
func (p *Proxy) Close() error { return p.shutdown() }
