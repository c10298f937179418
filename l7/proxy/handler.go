package proxy

import (
	"net"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
)

// reqState is the per-request scratch the handler reuses through a
// sync.Pool, so the hot path allocates nothing of its own.
type reqState struct {
	view  headerView
	req   director.Request
	dec   director.Decision
	buf   []byte
	lim   limitedBody
	chunk []byte // a chunked request body read ahead, see prepareChunked
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
	// st.req keeps references into ctx until the request is done (a retry
	// redispatches with it); drop them before pooling.
	defer func() { st.req = director.Request{} }()
	dec := &st.dec
	if dec.Status != 0 {
		p.reply(ctx, dec.Status)
		c := causeRejected
		if dec.Status == fasthttp.StatusServiceUnavailable {
			// The route's pool is empty; health brings a server back within
			// seconds, so ask well-behaved clients to retry soon.
			ctx.Response.Header.Set(hdrRetryAfter, retryAfterEmpty)
			c = causeNoServer
		}
		p.observe(g, ctx, dec, result{status: dec.Status, cause: c}, time.Since(start))
		return
	}

	if !p.shed.admit(&g.shed, dec.Route) {
		// Refused before anything was sent: the slot is released without
		// judging the server.
		g.dir.Done(dec, director.Outcome{Skipped: true})
		g.traffic.shed[dec.Route.Index].Inc()
		p.reply(ctx, fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.SetBytesV(hdrRetryAfter, g.shed.retryAfter)
		p.observe(g, ctx, dec, result{status: fasthttp.StatusServiceUnavailable, cause: causeShed}, time.Since(start))
		return
	}
	defer p.shed.done()

	// A streamed body is checked by prepareBody, without reading it.
	if !ctx.Request.IsBodyStream() && int64(len(ctx.Request.Body())) > dec.Route.MaxBodyBytes {
		// Never sent: Skipped releases the in-flight slot but tells passive
		// health nothing, since a client's oversized body says nothing about
		// the server (a success would reset its error streaks).
		g.dir.Done(dec, director.Outcome{Skipped: true})
		p.reply(ctx, fasthttp.StatusRequestEntityTooLarge)
		ctx.SetConnectionClose()
		p.observe(g, ctx, dec, result{status: fasthttp.StatusRequestEntityTooLarge, cause: causeRejected, server: dec.Backend}, time.Since(start))
		return
	}

	seen := scanRequestHeaders(hdr)
	// Only a request with a hop-by-hop header can be an upgrade.
	if seen&seenHopByHop != 0 && isWebSocketUpgrade(hdr) {
		p.upgrade(g, ctx, st, seen, start)
		return
	}
	stripRequestHopByHop(hdr, seen)
	st.buf = setForwarded(hdr, seen, client, ctx.Host(), ctx.IsTLS(), g.trusted.contains(client), st.buf)
	if secure := g.upstreamTLS[dec.Backend.ID] != nil; secure != ctx.IsTLS() {
		// A HostClient refuses a request whose scheme is not its own: the
		// request's scheme is the listener's, the client's the pool's.
		// (A retry stays in the pool, so on its scheme.)
		if secure {
			ctx.Request.URI().SetSchemeBytes(schemeHTTPS)
		} else {
			ctx.Request.URI().SetSchemeBytes(schemeHTTP)
		}
	}

	if status, c := prepareBody(ctx, dec, st); status != 0 {
		g.dir.Done(dec, director.Outcome{Skipped: true})
		p.reply(ctx, status)
		ctx.SetConnectionClose()
		p.observe(g, ctx, dec, result{status: status, cause: c, server: dec.Backend}, time.Since(start))
		return
	}

	resp := &ctx.Response
	stream := wantsStream(ctx, dec)
	if stream {
		resp = fasthttp.AcquireResponse()
		resp.StreamBody = true
	}
	res := p.forward(g, ctx, st, start, resp)
	if st.lim.exceeded {
		// The chunked body passed the route's limit on its way through.
		res = result{status: fasthttp.StatusRequestEntityTooLarge, cause: causeRejected, tries: res.tries, server: res.server}
		st.lim = limitedBody{}
		ctx.SetConnectionClose()
	}
	if stream {
		if res.answered && resp.IsBodyStream() {
			stripResponseHopByHop(&resp.Header, scanResponseHeaders(&resp.Header))
			if dec.SetCookie != nil {
				resp.Header.AddBytesV(hdrSetCookie, dec.SetCookie)
			}
			if closeConn {
				ctx.SetConnectionClose()
			}
			p.streamResponse(g, ctx, resp, dec, res, start)
			return // accounted when the body ends
		}
		// Nothing to stream (HEAD, 204, 304, or an error): answer as usual.
		if res.answered {
			resp.CopyTo(&ctx.Response)
		}
		fasthttp.ReleaseResponse(resp)
		resp = &ctx.Response
	}
	if req := &ctx.Request; req.IsBodyStream() && !res.answered {
		// Part of the body may still be unread: the connection cannot
		// carry another request.
		ctx.SetConnectionClose()
	}
	if res.answered {
		stripResponseHopByHop(&resp.Header, scanResponseHeaders(&resp.Header))
		if dec.SetCookie != nil {
			resp.Header.AddBytesV(hdrSetCookie, dec.SetCookie)
		}
	} else {
		resp.Reset()
		ctx.Error(fasthttp.StatusMessage(res.status), res.status)
	}
	if closeConn {
		ctx.SetConnectionClose()
	}
	p.observe(g, ctx, dec, res, time.Since(start))
}

var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
)

// retryAfterEmpty is the Retry-After of a 503 from an empty pool, in seconds.
const retryAfterEmpty = "1"

// reply answers locally (no upstream) with a short plain-text body.
func (p *Proxy) reply(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Reset()
	ctx.Error(fasthttp.StatusMessage(status), status)
}

// observe does the per-request accounting: metrics and the sampled access log.
func (p *Proxy) observe(g *generation, ctx *fasthttp.RequestCtx, dec *director.Decision, res result, d time.Duration) {
	if g.metrics != nil {
		g.metrics.observe(dec, res, d)
	}
	if g.access != nil {
		g.access.record(ctx, dec, res, d)
	}
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
