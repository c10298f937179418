package proxy

import (
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/pool"
)

// result is how a forwarded request ended.
type result struct {
	status   int           // what the client gets
	cause    cause         // why it ended
	answered bool          // an app server's response is being returned
	tries    int           // servers tried
	server   *pool.Backend // the last server tried
	// streamed: the body went out as it arrived; bytes is its size then
	// (a buffered body's size is read from the response).
	streamed bool
	bytes    int64
}

// forward sends the request to the decided server and, when that fails in
// a way that makes it safe, to other servers of the pool:
//
//   - a request that provably never reached a server (refused, dial
//     timeout, upstream TLS handshake failure, no free connection) is
//     retried for any method: the server has not seen it;
//   - a request whose server closed, reset or timed out before sending a
//     byte of response is retried only for an idempotent method and only
//     when the route allows it: the server may have acted on it;
//   - nothing is retried once a response has begun, or once a streamed
//     request body has started to go out.
//
// Each retry goes to a server not yet tried (a sticky client is re-pinned
// to it), needs room in the pool's retry budget, and fits in what is left
// of the route's response timeout; each try is bounded by the per-try
// timeout. Every try is reported to passive health on its own.
func (p *Proxy) forward(g *generation, ctx *fasthttp.RequestCtx, st *reqState, start time.Time, resp *fasthttp.Response) result {
	dec := &st.dec
	rt := dec.Route
	pol := rt.Retry
	req := &ctx.Request
	stream := resp.StreamBody // Reset clears it; every try needs it
	dec.Pool.Budget.Request(start)
	streamed := req.IsBodyStream()
	total := rt.ResponseTimeout
	for try := 1; ; try++ {
		timeout := total
		if try > 1 {
			timeout = total - time.Since(start)
		}
		if pol.PerTryTimeout > 0 && pol.PerTryTimeout < timeout {
			timeout = pol.PerTryTimeout
		}
		resp.StreamBody = stream
		err := g.clients[dec.Backend.ID].DoTimeout(req, resp, timeout)
		if err == nil {
			g.dir.Done(dec, director.Outcome{Status: resp.StatusCode()})
			return result{status: resp.StatusCode(), cause: causeOK, answered: true, tries: try, server: dec.Backend}
		}
		f := classifyUpstream(upstreamError(resp.LocalAddr(), err))
		resp.Reset()
		g.dir.Done(dec, director.Outcome{ConnectErr: f.connectErr, Status: 0})
		res := result{status: f.status, cause: f.cause, tries: try, server: dec.Backend}

		neverSent := f.neverSent && !(streamed && f.late)
		safe := neverSent || (f.noResponse && pol.Idempotent && !streamed && idempotent(ctx.Method()))
		if !safe || try > pol.Max || time.Since(start) >= total {
			return res
		}
		if !g.dir.Redispatch(&st.req, dec) {
			return res // no other server to try
		}
		if !g.allowRetry(dec.Pool, time.Now()) {
			g.dir.Done(dec, director.Outcome{Skipped: true})
			res.cause = causeBudgetExhausted
			return res
		}
	}
}

// reconnectIf is the HostClient's own retry rule: once more on the same
// server for an idempotent request whose connection was closed before a
// response byte (fasthttp reports that as io.EOF here). It is what a pooled
// keep-alive connection the server closed while idle looks like, which says
// nothing about the server's health. fasthttp's default would also retry
// after part of a response had arrived.
func reconnectIf(req *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	// Exactly io.EOF: a wrapped one means part of a header had arrived.
	return false, err == io.EOF && idempotent(req.Header.Method())
}

// allowRetry asks the pool's budget for one retry and counts the answer.
func (g *generation) allowRetry(pl *pool.Pool, now time.Time) bool {
	if pl.Budget.AllowRetry(now) {
		g.traffic.retries[pl.Index].Inc()
		return true
	}
	g.traffic.exhausted[pl.Index].Inc()
	return false
}
