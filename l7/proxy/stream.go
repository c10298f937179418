package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
)

// Streaming, both ways.
//
// Request bodies: the server reads a body only up to the route's
// stream_request_body_bytes before calling the handler (fasthttp's
// StreamRequestBody). A body within that threshold is read whole here, so
// the request can be retried like any other; a larger one is forwarded as
// it arrives, with its Content-Length, or de-chunked and re-chunked with
// the route's max_body_bytes enforced while it flows.
//
// Responses: a route with stream_responses, or any request that asks for
// server-sent events (Accept: text/event-stream), gets the app server's
// body forwarded as it arrives: events reach the client when the server
// writes them, and a large download costs the proxy a copy buffer, not the
// body. Other responses are buffered (up to 32 MiB), which keeps the
// common small response free of per-request allocations; streaming costs
// about 20 small allocations per response.

// errBodyTooLarge ends a chunked request body that passed the route's limit.
var errBodyTooLarge = errors.New("request body exceeds the route's max_body_bytes")

// prepareBody settles a streamed request body before forwarding: 0 to go
// on, or the status to answer with (and the connection is closed).
func prepareBody(ctx *fasthttp.RequestCtx, dec *director.Decision, st *reqState) (status int, c cause) {
	req := &ctx.Request
	if !req.IsBodyStream() {
		return 0, causeOK
	}
	rt := dec.Route
	cl := req.Header.ContentLength()
	switch {
	case int64(cl) > rt.MaxBodyBytes:
		return fasthttp.StatusRequestEntityTooLarge, causeRejected
	case cl >= 0 && int64(cl) <= rt.StreamBodyBytes:
		// Small enough to buffer: read it whole. fasthttp replaces the body
		// with an error text when reading fails, so the length tells.
		if len(req.Body()) != cl {
			return fasthttp.StatusBadRequest, causeClientAbort
		}
	case cl == -1:
		return prepareChunked(req, rt.MaxBodyBytes, rt.StreamBodyBytes, st)
	}
	return 0, causeOK
}

// prepareChunked reads a chunked body up to the stream threshold. A body
// that ends within it is buffered like any other (a malformed chunk is a
// 400 before anything is sent upstream, and the request can be retried);
// a longer one is forwarded as it arrives: what was read, then the rest,
// with the route's limit enforced on the way.
func prepareChunked(req *fasthttp.Request, maxBody, threshold int64, st *reqState) (int, cause) {
	body := req.BodyStream()
	buf := st.chunk[:0]
	limit := min(threshold, maxBody)
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			st.chunk = buf
			if int64(len(buf)) > maxBody {
				return fasthttp.StatusRequestEntityTooLarge, causeRejected
			}
			req.SetBody(buf)
			return 0, causeOK
		}
		if err != nil {
			st.chunk = buf
			return fasthttp.StatusBadRequest, causeRejected
		}
	}
	st.chunk = buf
	if int64(len(buf)) > maxBody {
		return fasthttp.StatusRequestEntityTooLarge, causeRejected
	}
	st.lim = limitedBody{r: io.MultiReader(bytes.NewReader(buf), body), left: maxBody}
	req.SetBodyStream(&st.lim, -1)
	return 0, causeOK
}

// limitedBody passes a chunked request body through, failing once it has
// passed its limit.
type limitedBody struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (l *limitedBody) Read(b []byte) (int, error) {
	n, err := l.r.Read(b)
	l.left -= int64(n)
	if l.left < 0 {
		l.exceeded = true
		return 0, errBodyTooLarge
	}
	return n, err
}

// wantsStream reports whether the response to this request is streamed.
func wantsStream(ctx *fasthttp.RequestCtx, dec *director.Decision) bool {
	if dec.Route.StreamResponses {
		return true
	}
	accept := ctx.Request.Header.Peek(fasthttp.HeaderAccept)
	return len(accept) >= len(mimeEventStream) && containsFold(accept, mimeEventStream)
}

const mimeEventStream = "text/event-stream"

// containsFold reports whether s (lower case) occurs in b, ASCII
// case-insensitively.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if equalFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

// streamBody is the client response's body while it streams from the app
// server. It owns the upstream response, keeps the client's write deadline
// moving while data flows (the server arms it once per response), and does
// the request's accounting when the body ends, with the cause: the client
// going away, or the server failing mid-body.
type streamBody struct {
	p         *Proxy
	g         *generation
	ctx       *fasthttp.RequestCtx
	up        *fasthttp.Response
	r         io.Reader
	conn      net.Conn
	writeTime time.Duration
	dec       director.Decision // a copy: the pooled one is reused
	res       result
	start     time.Time
	upErr     error
	closed    bool
}

// streamResponse hands an upstream response that is still streaming to
// the client response: headers now, the body as fasthttp writes it. The
// accounting happens when the body ends (see CloseWithError).
func (p *Proxy) streamResponse(g *generation, ctx *fasthttp.RequestCtx, up *fasthttp.Response, dec *director.Decision, res result, start time.Time) {
	resp := &ctx.Response
	up.Header.CopyTo(&resp.Header)
	size := up.Header.ContentLength()
	if size < -1 {
		size = -1 // read until close upstream: chunked to the client
	}
	res.streamed = true
	s := &streamBody{
		p: p, g: g, ctx: ctx, up: up, r: up.BodyStream(), conn: ctx.Conn(),
		writeTime: p.boot.Limits.WriteTimeout, dec: *dec, res: res, start: start,
	}
	resp.SetBodyStream(s, size)
}

func (s *streamBody) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	s.res.bytes += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		s.upErr = err
	}
	if n > 0 && s.conn != nil && s.writeTime > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.writeTime))
	}
	return n, err
}

// CloseWithError is called by fasthttp when the body is done, with the
// error that stopped writing it to the client, if any.
func (s *streamBody) CloseWithError(werr error) error {
	if s.closed {
		return nil
	}
	s.closed = true
	switch {
	case s.upErr != nil:
		s.res.cause = classifyUpstream(s.upErr).cause
		if s.res.cause == causeUpstreamError {
			s.res.cause = causeUpstreamReset
		}
	case werr != nil:
		s.res.cause = causeClientAbort
	}
	err := s.up.CloseBodyStream()
	fasthttp.ReleaseResponse(s.up)
	s.p.observe(s.g, s.ctx, &s.dec, s.res, time.Since(s.start))
	return err
}

var _ fasthttp.ReadCloserWithError = (*streamBody)(nil)
