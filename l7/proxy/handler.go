package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
)

// reqState is the per-request scratch the handler reuses through a
// sync.Pool, so the hot path allocates nothing of its own.
type reqState struct {
	view headerView
	req  director.Request
	dec  director.Decision
	buf  []byte
}

// headerView adapts fasthttp's request header to director.HeaderView
// without copying: the slices it returns are valid only during Decide.
type headerView struct{ h *fasthttp.RequestHeader }

func (v *headerView) Peek(name string) []byte   { return v.h.Peek(name) }
func (v *headerView) Cookie(name string) []byte { return v.h.Cookie(name) }

var _ director.HeaderView = (*headerView)(nil)

// serve is the hot path: view, decide, rewrite, forward, account.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	st := p.states.Get().(*reqState)
	defer p.states.Put(st)
	// The request runs to its end on the generation it started with.
	g := p.gen.Load()

	hdr := &ctx.Request.Header
	if conflictingFraming(hdr) {
		p.reply(ctx, fasthttp.StatusBadRequest)
		ctx.SetConnectionClose()
		if g.metrics != nil {
			g.metrics.rejected(fasthttp.StatusBadRequest)
		}
		return
	}
	// While stopping, every answer closes its connection: keep-alive
	// clients reconnect through the edge, which sends them to another host
	// once it has seen /ready fail, instead of riding this connection until
	// the listener closes under them.
	closeConn := hdr.ConnectionClose() || p.stopping.Load()
	client := remoteAddr(ctx)

	st.view.h = hdr
	st.req = director.Request{
		Method:     ctx.Method(),
		Host:       ctx.Host(),
		Path:       ctx.Path(),
		ClientAddr: client,
		TLS:        ctx.IsTLS(),
		Headers:    &st.view,
	}
	// Decide resets st.dec itself and keeps its cookie buffer: clearing it
	// here would make every newly issued cookie allocate.
	g.dir.Decide(&st.req, &st.dec)
	st.req = director.Request{} // drop references into ctx before pooling
	dec := &st.dec
	if dec.Status != 0 {
		p.reply(ctx, dec.Status)
		if dec.Status == fasthttp.StatusServiceUnavailable {
			// The route's pool is empty; health brings a server back within
			// seconds, so ask well-behaved clients to retry soon.
			ctx.Response.Header.Set("Retry-After", retryAfterEmpty)
		}
		p.observe(g, ctx, dec, dec.Status, false, time.Since(start))
		return
	}

	if int64(len(ctx.Request.Body())) > dec.Route.MaxBodyBytes {
		// Never sent: Skipped releases the in-flight slot but tells passive
		// health nothing, since a client's oversized body says nothing about
		// the server (a success would reset its error streaks).
		g.dir.Done(dec, director.Outcome{Skipped: true})
		p.reply(ctx, fasthttp.StatusRequestEntityTooLarge)
		ctx.SetConnectionClose()
		p.observe(g, ctx, dec, fasthttp.StatusRequestEntityTooLarge, false, time.Since(start))
		return
	}

	seen := scanRequestHeaders(hdr)
	stripRequestHopByHop(hdr, seen)
	st.buf = setForwarded(hdr, seen, client, ctx.Host(), ctx.IsTLS(), g.trusted.contains(client), st.buf)
	if ctx.IsTLS() {
		// The request arrived as https; it goes to the app server over
		// plain HTTP, and a HostClient refuses a request whose scheme is
		// not its own.
		ctx.Request.URI().SetSchemeBytes(schemeHTTP)
	}

	resp := &ctx.Response
	err := g.clients[dec.Backend.ID].DoTimeout(&ctx.Request, resp, dec.Route.ResponseTimeout)
	status := resp.StatusCode()
	upstreamStatus := status // what passive health hears: 0 = no answer
	connectErr := false
	if err != nil {
		status, connectErr = upstreamError(err)
		upstreamStatus = 0
		resp.Reset()
		ctx.Error(fasthttp.StatusMessage(status), status)
	} else {
		stripResponseHopByHop(&resp.Header, scanResponseHeaders(&resp.Header))
		if dec.SetCookie != nil {
			resp.Header.AddBytesV(hdrSetCookie, dec.SetCookie)
		}
	}
	if closeConn {
		ctx.SetConnectionClose()
	}
	d := time.Since(start)
	g.dir.Done(dec, director.Outcome{ConnectErr: connectErr, Status: upstreamStatus})
	p.observe(g, ctx, dec, status, true, d)
}

var schemeHTTP = []byte("http")

// retryAfterEmpty is the Retry-After of a 503 from an empty pool, in seconds.
const retryAfterEmpty = "1"

// reply answers locally (no upstream) with a short plain-text body.
func (p *Proxy) reply(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Reset()
	ctx.Error(fasthttp.StatusMessage(status), status)
}

// observe does the per-request accounting: metrics and the sampled access log.
func (p *Proxy) observe(g *generation, ctx *fasthttp.RequestCtx, dec *director.Decision, status int, upstream bool, d time.Duration) {
	if g.metrics != nil {
		g.metrics.observe(dec, status, upstream, d)
	}
	if g.access != nil {
		g.access.record(ctx, dec, status, d)
	}
}

// upstreamError maps a HostClient error to the status the client gets and
// whether it counts as a connect error for passive health. Dial timeouts
// are 504 like response timeouts; refused or unreachable is 502.
func upstreamError(err error) (status int, connectErr bool) {
	var opErr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return fasthttp.StatusGatewayTimeout, true
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fasthttp.StatusBadGateway, true
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return fasthttp.StatusGatewayTimeout, false
	case errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrConnectionClosed):
		return fasthttp.StatusBadGateway, false
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusBadGateway, false
	}
	return fasthttp.StatusBadGateway, false
}

// remoteAddr is the client's address from the connection (DSR keeps the real
// client address on it), without allocating.
func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	switch a := ctx.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
