package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/tlsdial"
)

// WebSockets. A request with "Upgrade: websocket" and "Connection:
// upgrade" is forwarded to a server of its route's pool on a connection of
// its own (not the HostClient's pool); when the server answers 101, the
// client connection is taken over from fasthttp and bytes are copied both
// ways until either side closes or the tunnel has been silent for the
// route's timeouts.tunnel_idle. Any other answer is returned as a normal
// response.
//
// A tunnel holds its server's in-flight slot until it closes, so draining
// a server waits for its WebSockets; it does not count towards priority
// shedding, which is about requests waiting for an answer.
//
// Every other upgrade (h2c in particular) is never tunnelled: Upgrade is a
// hop-by-hop header, so it is removed and the request is forwarded as
// plain HTTP/1.1.

// tunnels tracks the open upgraded connections of every generation: a
// reload keeps them open, shutdown closes them.
type tunnels struct {
	active atomic.Int64

	mu    sync.Mutex
	conns map[*tunnel]struct{}
}

func newTunnels() *tunnels {
	return &tunnels{conns: map[*tunnel]struct{}{}}
}

// Active is the number of open tunnels, for draining.
func (ts *tunnels) Active() int64 { return ts.active.Load() }

// closeAll closes every open tunnel (at shutdown).
func (ts *tunnels) closeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for t := range ts.conns {
		t.close()
	}
}

func (ts *tunnels) add(t *tunnel) {
	ts.mu.Lock()
	ts.conns[t] = struct{}{}
	ts.mu.Unlock()
	ts.active.Add(1)
	t.upgrades.Inc()
	t.gauge.Inc()
}

func (ts *tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	delete(ts.conns, t)
	ts.mu.Unlock()
	ts.active.Add(-1)
	t.gauge.Dec()
}

// isWebSocketUpgrade reports a WebSocket opening handshake (RFC 6455
// §4.1: GET, Upgrade containing "websocket", Connection containing
// "upgrade").
func isWebSocketUpgrade(h *fasthttp.RequestHeader) bool {
	return h.IsGet() && h.ConnectionUpgrade() && containsFold(h.Peek(hdrUpgrade), "websocket")
}

// upgrade serves a WebSocket handshake; headers are not rewritten yet.
func (p *Proxy) upgrade(g *generation, ctx *fasthttp.RequestCtx, st *reqState, seen headerSet, start time.Time) {
	dec := &st.dec
	hdr := &ctx.Request.Header
	client := remoteAddr(ctx)
	stripRequestHopByHop(hdr, seen)
	st.buf = setForwarded(hdr, seen, client, ctx.Host(), ctx.IsTLS(), g.trusted.contains(client), st.buf)
	// Upgrade and Connection are hop-by-hop, but these two are the request.
	hdr.Set(hdrConnection, "Upgrade")
	hdr.Set(hdrUpgrade, "websocket")

	conn, br, res := p.handshake(g, ctx, st, start)
	if conn == nil {
		// Not upgraded: res says what the client gets.
		if !res.answered {
			ctx.Error(fasthttp.StatusMessage(res.status), res.status)
		}
		ctx.SetConnectionClose()
		p.observe(g, ctx, dec, res, time.Since(start))
		return
	}

	// 101: from here the two connections are one tunnel.
	head := append([]byte(nil), ctx.Response.Header.Header()...)
	ctx.Response.Reset()
	t := &tunnel{
		p: p, g: g, up: conn, upr: br, idle: dec.Route.TunnelIdle,
		dec: *dec, res: res, start: start,
		upgrades: g.traffic.upgrades[dec.Route.Index], gauge: g.traffic.tunnels[dec.Route.Index],
	}
	if g.access != nil {
		t.entry = entryOf(ctx)
	}
	if g.metrics != nil {
		g.metrics.answered(dec, res, time.Since(start))
	}
	p.tunnels.add(t)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { t.run(c, head) })
	// fasthttp skips the hijack handler when the client connection fails
	// right after the handler; without run nothing would release the
	// upstream connection and the server's in-flight slot.
	t.orphan = time.AfterFunc(hijackGrace, func() {
		if t.started.CompareAndSwap(false, true) {
			t.close()
			t.finish(causeClientAbort)
		}
	})
}

// hijackGrace is how long an upgraded tunnel may wait for fasthttp to hand
// over the client connection.
const hijackGrace = 10 * time.Second

// dialUpstream connects to the server at addr, over TLS when tc is set
// (the handshake inside the dial's timeout, so that its failure counts as
// a connection that was never made).
func dialUpstream(addr string, timeout time.Duration, tc *tls.Config) (net.Conn, error) {
	if tc == nil {
		return net.DialTimeout("tcp", addr, timeout)
	}
	return tlsdial.Dial(context.Background(), addr, tc, "", timeout)
}

// handshake dials a server and forwards the upgrade request, trying other
// servers while the failure proves the request never reached one. It
// returns the upstream connection once the server answered 101; otherwise
// conn is nil, and the server's answer, if any, is in ctx.Response.
func (p *Proxy) handshake(g *generation, ctx *fasthttp.RequestCtx, st *reqState, start time.Time) (net.Conn, *bufio.Reader, result) {
	dec := &st.dec
	rt := dec.Route
	dec.Pool.Budget.Request(start)
	for try := 1; ; try++ {
		res := result{tries: try, server: dec.Backend}
		conn, err := dialUpstream(dec.Backend.Addr, rt.DialTimeout, g.upstreamTLS[dec.Backend.ID])
		if err != nil {
			f := classifyUpstream(&dialError{err: err})
			g.dir.Done(dec, director.Outcome{ConnectErr: true})
			res.status, res.cause = f.status, f.cause
			if try > rt.Retry.Max || !g.dir.Redispatch(&st.req, dec) {
				return nil, nil, res
			}
			if !g.allowRetry(dec.Pool, time.Now()) {
				g.dir.Done(dec, director.Outcome{Skipped: true})
				res.cause = causeBudgetExhausted
				return nil, nil, res
			}
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(rt.ResponseTimeout))
		br := bufio.NewReader(conn)
		resp := &ctx.Response
		if _, err = conn.Write(ctx.Request.Header.Header()); err == nil {
			err = resp.Header.Read(br)
		}
		if err != nil {
			_ = conn.Close()
			f := classifyUpstream(err)
			g.dir.Done(dec, director.Outcome{Status: 0})
			res.status, res.cause = f.status, f.cause
			return nil, nil, res
		}
		res.status, res.answered = resp.StatusCode(), true
		if res.status != fasthttp.StatusSwitchingProtocols {
			// Refused (403, 426, ...): an ordinary response.
			err := resp.ReadBody(br, maxResponseBodySize)
			_ = conn.Close()
			if err != nil {
				f := classifyUpstream(err)
				resp.Reset()
				g.dir.Done(dec, director.Outcome{Status: 0})
				return nil, nil, result{status: f.status, cause: f.cause, tries: try, server: dec.Backend}
			}
			stripResponseHopByHop(&resp.Header, scanResponseHeaders(&resp.Header))
			g.dir.Done(dec, director.Outcome{Status: res.status})
			return nil, nil, res
		}
		_ = conn.SetDeadline(time.Time{})
		return conn, br, res
	}
}

const maxResponseBodySize = maxResponseBodyBytes

// tunnel is one upgraded connection pair.
type tunnel struct {
	p     *Proxy
	g     *generation // the one the tunnel was opened on
	up    net.Conn
	upr   *bufio.Reader // the upstream side, with what it read past the 101
	idle  time.Duration
	dec   director.Decision // a copy: the pooled one is reused
	res   result
	start time.Time
	entry logEntry

	upgrades prometheus.Counter
	gauge    prometheus.Gauge

	started atomic.Bool // run (or the orphan timer) owns the tunnel
	orphan  *time.Timer

	last      atomic.Int64 // unix nanos of the last byte either way
	toClient  atomic.Int64 // bytes copied each way
	toServer  atomic.Int64
	closeOnce sync.Once
	client    net.Conn
	mu        sync.Mutex
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		_ = t.up.Close()
		t.mu.Lock()
		if t.client != nil {
			_ = t.client.Close()
		}
		t.mu.Unlock()
	})
}

// run owns both connections until the tunnel ends; fasthttp closes the
// client connection when it returns.
func (t *tunnel) run(c net.Conn, head []byte) {
	if !t.started.CompareAndSwap(false, true) {
		return // given up on by the orphan timer
	}
	if t.orphan != nil {
		t.orphan.Stop()
	}
	t.mu.Lock()
	t.client = c
	t.mu.Unlock()
	t.last.Store(time.Now().UnixNano())

	c2u := make(chan error, 1)
	u2c := make(chan error, 1)
	if _, err := c.Write(head); err != nil {
		u2c <- err
	} else {
		go func() { u2c <- t.copy(c, t.upr, t.up, &t.toClient) }()
	}
	go func() { c2u <- t.copy(t.up, c, c, &t.toServer) }()

	var cause cause
	select {
	case err := <-c2u:
		cause = t.endCause(err, causeClientAbort)
	case err := <-u2c:
		cause = t.endCause(err, causeUpstreamReset)
	}
	t.close()
	// Wait for the other direction so nothing touches c after return.
	select {
	case <-c2u:
	case <-u2c:
	}
	t.finish(cause)
}

// endCause: a clean close by either side is a normal end; silence is
// idle_timeout; anything else is blamed on the side that failed.
func (t *tunnel) endCause(err error, failed cause) cause {
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return causeOK
	case errors.As(err, &ne) && ne.Timeout():
		return causeIdleTimeout
	}
	return failed
}

// copy moves bytes from src to dst until src ends, fails or the tunnel is
// idle (see idleCopy).
func (t *tunnel) copy(dst io.Writer, src io.Reader, srcConn net.Conn, count *atomic.Int64) error {
	return idleCopy(dst, src, srcConn, t.idle, &t.last, count)
}

// idleCopy moves bytes from src to dst until src ends, fails or the pair
// of connections is idle; WebSocket tunnels and TCP listeners share it.
// The read deadline is the idle timeout; when it fires while the other
// direction was busy (last is the unix nanos of the last byte either way),
// the read resumes.
func idleCopy(dst io.Writer, src io.Reader, srcConn net.Conn, idle time.Duration, last, count *atomic.Int64) error {
	buf := make([]byte, 32<<10)
	for {
		_ = srcConn.SetReadDeadline(time.Now().Add(idle))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			count.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction was busy
			}
			return err
		}
	}
}

// finish accounts the tunnel, then releases it: once it no longer counts
// as open, its record and counters are out.
func (t *tunnel) finish(c cause) {
	p, g := t.p, t.g
	defer p.tunnels.remove(t)
	defer g.dir.Done(&t.dec, director.Outcome{Status: fasthttp.StatusSwitchingProtocols})
	t.res.cause = c
	t.res.streamed = true
	t.res.bytes = t.toClient.Load() // like a response body: what the client got
	d := time.Since(t.start)
	if g.metrics != nil {
		g.metrics.terminated(&t.dec, c)
	}
	if g.access != nil && (g.access.sampled(t.res.status) || t.res.tries > 1) {
		g.access.write(t.entry, &t.dec, t.res, d)
	}
}

// ActiveTunnels is the number of upgraded (WebSocket) connections open
// now: a drain that waits for in-flight requests should wait for these
// too, since fasthttp's shutdown does not see hijacked connections.
func (p *Proxy) ActiveTunnels() int64 { return p.tunnels.Active() }
