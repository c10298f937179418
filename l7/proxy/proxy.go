package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

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
	// upstreamIdle is how long an idle upstream keep-alive connection is
	// kept: shorter than common app-server keep-alive timeouts (Node.js 5 s,
	// nginx 75 s), so the proxy rarely writes into a socket the server is
	// closing.
	upstreamIdle = 4 * time.Second
	// shutdownGrace bounds how long Run waits for in-flight requests.
	shutdownGrace = 10 * time.Second
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
}

// Proxy is the HTTP/1.1 engine: client-facing fasthttp servers, one
// HostClient per app server, and the admin listener.
type Proxy struct {
	cfg     *config.Config
	dir     *director.Director
	log     *slog.Logger
	srv     *fasthttp.Server
	clients []*fasthttp.HostClient // by pool.Backend.ID
	trusted trustedNets
	metrics *requestMetrics // nil when request metrics are off
	access  *accessLog      // nil when the access log is off
	shed    *shedder
	tunnels *tunnels
	gather  prometheus.Gatherer
	states  sync.Pool // *reqState

	mu     sync.Mutex
	lns    []net.Listener // closed again at shutdown, see track
	admin  *http.Server
	closed bool
}

// New builds a proxy for cfg around a director built from the same config.
// It opens no sockets: Run or Serve does.
func New(cfg *config.Config, dir *director.Director, opts Options) (*Proxy, error) {
	if cfg == nil || dir == nil {
		return nil, errors.New("new proxy: config and director are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Proxy{
		cfg:     cfg,
		dir:     dir,
		log:     log,
		trusted: trustedNets(cfg.TrustedPrefixes),
		gather:  opts.Gatherer,
	}
	p.states.New = func() any { return new(reqState) }
	p.shed = newShedder(cfg.Shedding, dir.Routes())
	p.tunnels = newTunnels(dir.Routes())

	backends := dir.Backends()
	dial := dialTimeouts(cfg, dir)
	p.clients = make([]*fasthttp.HostClient, len(backends))
	for i, b := range backends {
		if b.ID != i {
			return nil, fmt.Errorf("new proxy: backend %q has id %d at position %d", b.Name, b.ID, i)
		}
		p.clients[i] = newHostClient(b.Addr, dial[b.Pool])
	}

	if opts.Registerer != nil {
		if !opts.NoRequestMetrics {
			m := newRequestMetrics(dir)
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("register request metrics: %w", err)
			}
			p.metrics = m
		}
		if err := opts.Registerer.Register(newStateCollector(dir)); err != nil {
			return nil, fmt.Errorf("register state metrics: %w", err)
		}
		if err := opts.Registerer.Register(newTrafficCollector(dir, p.shed, p.tunnels)); err != nil {
			return nil, fmt.Errorf("register traffic metrics: %w", err)
		}
	}
	if opts.AccessLog != nil && cfg.AccessLog.Enabled {
		p.access = newAccessLog(opts.AccessLog, cfg.AccessLog.Sample)
	}
	p.srv = p.newServer()
	return p, nil
}

// dialTimeouts picks one upstream dial timeout per pool: the longest of the
// routes that use it, because a HostClient dials for every route of its pool.
func dialTimeouts(cfg *config.Config, dir *director.Director) map[string]time.Duration {
	out := make(map[string]time.Duration)
	for _, r := range dir.Routes() {
		if r.DialTimeout > out[r.Pool] {
			out[r.Pool] = r.DialTimeout
		}
	}
	for _, pc := range cfg.Pools {
		if out[pc.Name] <= 0 {
			out[pc.Name] = config.DefaultDialTimeout
		}
	}
	return out
}

func newHostClient(addr string, dialTimeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		// No Name: fasthttp would send it as User-Agent on requests that
		// have none, and the proxy must not invent request headers.
		Addr: addr,
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			// fasthttp passes the request's remaining time; the route's dial
			// timeout is usually the shorter bound. A dial error is marked
			// so that forward knows the request was never sent.
			c, err := fasthttp.DialTimeout(addr, min(timeout, dialTimeout))
			if err != nil {
				return nil, &dialError{err: err}
			}
			return c, nil
		},
		MaxConns:            maxConnsPerBackend,
		MaxConnWaitTimeout:  time.Second,
		MaxIdleConnDuration: upstreamIdle,
		MaxResponseBodySize: maxResponseBodyBytes,
		// One reconnect to the same server, only for idempotent requests and
		// only when the connection closed before a response byte: it covers
		// a keep-alive connection the app server closed while idle.
		// Everything else is forward's to retry, on another server.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                reconnectIf,
		NoDefaultUserAgentHeader:  true,
		ReadTimeout:               0, // per request, from the route (DoTimeout)
		WriteTimeout:              0,
	}
}

func (p *Proxy) newServer() *fasthttp.Server {
	l := p.cfg.Limits
	maxBody := int64(config.DefaultMaxBodyBytes)
	for _, r := range p.cfg.Routes {
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
	rc := fasthttp.RequestConfig{ReadTimeout: p.cfg.Limits.ReadTimeout}
	// Only origin-form targets are matched here; anything else keeps the
	// server-wide bound and meets its route's limit in the handler.
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] == '/' {
		r := p.dir.Route(h.Host(), uri, h.Method(), h)
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
	if p.metrics != nil {
		p.metrics.rejected(status)
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
	return nil
}

// Run listens on every configured listener and on the admin address, serves
// until ctx is done, then shuts down gracefully (in-flight requests finish,
// bounded by shutdownGrace). It returns the first serving error.
func (p *Proxy) Run(ctx context.Context) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, l := range p.cfg.Listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %q: %w", l.Addr, err)
		}
		lns = append(lns, ln)
	}
	var adminLn net.Listener
	if p.cfg.Admin.Addr != "" {
		ln, err := net.Listen("tcp", p.cfg.Admin.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on admin %q: %w", p.cfg.Admin.Addr, err)
		}
		adminLn = ln
	}

	errc := make(chan error, len(lns)+1)
	var wg sync.WaitGroup
	for _, ln := range lns {
		p.log.Info("listening", "addr", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer recoverTo(p.log)
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
	case err = <-errc:
	}
	if cerr := p.shutdown(); err == nil {
		err = cerr
	}
	wg.Wait()
	return err
}

func recoverTo(log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error("goroutine panicked", "panic", r)
	}
}

// shutdown stops accepting, lets in-flight requests finish within
// shutdownGrace, and closes the admin listener.
func (p *Proxy) shutdown() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	admin := p.admin
	lns := p.lns
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	if err := p.srv.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down proxy server: %w", err))
	}
	for _, ln := range lns {
		_ = ln.Close() // usually closed already by Shutdown
	}
	p.tunnels.closeAll() // fasthttp no longer owns hijacked connections
	if admin != nil {
		if err := admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down admin server: %w", err))
		}
	}
	for _, hc := range p.clients {
		hc.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// Close stops the listeners and the admin server and closes idle upstream
// connections. It does not close the director: its owner does.
func (p *Proxy) Close() error { return p.shutdown() }
