package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// The h2 path. fasthttp does not speak HTTP/2, so connections that
// negotiated h2 by ALPN are served by net/http's HTTP/2 server, and each
// request is handed to the very handler the HTTP/1.1 path runs (serve): it
// is copied into a fasthttp request context, decided, forwarded and
// accounted there, and the answer is copied back onto the h2 stream. So
// routing, balancing, sticky sessions, health, limits, metrics and the
// access log are one piece of code for both protocols.
//
// What differs is the framing only: HTTP/2 has no Connection header, so
// "Connection: close" set by the handler (while stopping, or after a 413)
// becomes nothing here; a stop sends GOAWAY instead.

// h2MaxStreams bounds the concurrent streams of one client connection
// (RFC 9113 suggests no less than 100; Go's default is 250).
const h2MaxStreams = 250

// newH2Server is the net/http server the h2 path hands its connections
// to. It never sees a connection that did not negotiate h2.
func (p *Proxy) newH2Server() *http.Server {
	l := p.boot.Limits
	return &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP2),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: h2MaxStreams,
		},
		// The handler needs the TLS connection (client address, TLS state)
		// as a fasthttp request context sees it.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				return context.WithValue(ctx, h2ConnKey{}, &h2Conn{tc: tc})
			}
			return ctx
		},
		// Open h2 connections count against limits.max_conns.
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				p.h2Conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				p.h2Conns.Add(-1)
			}
		},
		ErrorLog: log.New(debugWriter{log: p.log, component: "h2"}, "", 0),
	}
}

// serveH2 serves the h2 connections the TLS listener hands over on q.
func (p *Proxy) serveH2(q net.Listener) error {
	if err := p.track(q); err != nil {
		return err
	}
	// The queue closes when its TLS listener does; that is a normal end.
	if err := p.h2.Serve(q); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("serve h2 on %s: %w", q.Addr(), err)
	}
	return nil
}

type h2ConnKey struct{}

// serveHTTP2 runs one h2 request through serve.
func (p *Proxy) serveHTTP2(w http.ResponseWriter, r *http.Request) {
	conn, _ := r.Context().Value(h2ConnKey{}).(*h2Conn)
	if conn == nil {
		http.Error(w, "no connection", http.StatusInternalServerError)
		return
	}
	ctx := p.h2ctx.Get().(*fasthttp.RequestCtx)
	defer func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		p.h2ctx.Put(ctx)
	}()
	ctx.Init2(conn, fasthttpLogger{p.log}, false)

	req := &ctx.Request
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.RequestURI)
	req.Header.SetHost(r.Host)
	for k, vs := range r.Header {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Host":
			continue // framing is the request's own; Host is :authority
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.Body != nil && r.ContentLength != 0 {
		// Bounded by the largest route limit, plus one byte so that the
		// handler sees an oversized body and answers 413.
		limit := p.gen.Load().maxBody + 1
		if _, err := io.Copy(req.BodyWriter(), io.LimitReader(r.Body, limit)); err != nil {
			// The client reset the stream or sent a malformed body.
			http.Error(w, "bad request body", http.StatusBadRequest)
			if g := p.gen.Load(); g.metrics != nil {
				g.metrics.rejected(http.StatusBadRequest)
			}
			return
		}
	}

	p.serve(ctx)

	resp := &ctx.Response
	// As the fasthttp server is configured: no invented Content-Type.
	resp.Header.SetNoDefaultContentType(true)
	h := w.Header()
	for k, v := range resp.Header.All() {
		switch string(k) {
		case fasthttp.HeaderConnection, fasthttp.HeaderContentLength, fasthttp.HeaderTransferEncoding, "Keep-Alive":
			continue // connection-specific: not allowed in HTTP/2
		}
		h.Add(string(k), string(v))
	}
	// net/http would add a Date and sniff a Content-Type; the proxy adds
	// neither on HTTP/1.1, so not on h2 either (a nil value suppresses).
	for _, k := range []string{"Date", fasthttp.HeaderContentType} {
		if _, ok := h[k]; !ok {
			h[k] = nil
		}
	}
	status := resp.StatusCode()
	switch {
	case resp.IsBodyStream():
		// The length is the stream's; the h2 server frames it.
	case r.Method == http.MethodHead:
		// The app server's length for the body a GET would get.
		if n := resp.Header.ContentLength(); n >= 0 {
			h.Set(fasthttp.HeaderContentLength, strconv.Itoa(n))
		}
	case status == http.StatusNoContent, status == http.StatusNotModified, status < 200:
	default:
		h.Set(fasthttp.HeaderContentLength, strconv.Itoa(len(resp.Body())))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if resp.IsBodyStream() {
		_ = resp.BodyWriteTo(flushWriter{w: w, rc: http.NewResponseController(w)})
		return
	}
	_, _ = w.Write(resp.Body())
}

// flushWriter sends every write of a streamed body at once (server-sent
// events must not wait in a buffer).
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// h2Conn is what the fasthttp request context of an h2 request sees as its
// connection: the client's addresses and TLS state (so the handler sets
// X-Forwarded-Proto https and Secure cookies), never the stream's bytes,
// which belong to the h2 server.
type h2Conn struct{ tc *tls.Conn }

var errH2Conn = errors.New("the h2 connection belongs to the HTTP/2 server")

func (c *h2Conn) Read([]byte) (int, error)             { return 0, errH2Conn }
func (c *h2Conn) Write([]byte) (int, error)            { return 0, errH2Conn }
func (c *h2Conn) Close() error                         { return nil }
func (c *h2Conn) LocalAddr() net.Addr                  { return c.tc.LocalAddr() }
func (c *h2Conn) RemoteAddr() net.Addr                 { return c.tc.RemoteAddr() }
func (c *h2Conn) SetDeadline(time.Time) error          { return nil }
func (c *h2Conn) SetReadDeadline(time.Time) error      { return nil }
func (c *h2Conn) SetWriteDeadline(time.Time) error     { return nil }
func (c *h2Conn) Handshake() error                     { return nil }
func (c *h2Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// debugWriter sends the h2 server's error log (per-connection protocol
// errors from clients) to debug level, like fasthttp's.
type debugWriter struct {
	log       *slog.Logger
	component string
}

func (w debugWriter) Write(b []byte) (int, error) {
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		w.log.Debug(strings.TrimSpace(string(b)), "component", w.component)
	}
	return len(b), nil
}
