package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/tlsdial"
)

// upstreamClient sends one request to one app server. *fasthttp.HostClient
// is the HTTP/1.1 one; h2Client speaks HTTP/2 to pools that ask for it.
// Both report errors the way the proxy's HostClients do (a dialError for
// anything that failed before the request was sent, fasthttp.ErrTimeout,
// fasthttp.ErrBodyTooLarge), so classifyUpstream handles both.
type upstreamClient interface {
	DoTimeout(req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error
	CloseIdleConnections()
}

var (
	_ upstreamClient = (*fasthttp.HostClient)(nil)
	_ upstreamClient = (*h2Client)(nil)
)

// h2Client speaks HTTP/2 to one app server — with prior knowledge over
// cleartext TCP (h2c), or over TLS negotiated by ALPN (h2) — so that all
// of the proxy's requests to it multiplex over few connections. It
// converts between fasthttp's request and response and net/http's, which
// costs allocations the HTTP/1.1 path does not have.
type h2Client struct {
	addr   string
	scheme string
	tr     *http.Transport
}

// newH2Client is the HTTP/2 client for the server at addr: over TLS with
// ut, else h2c. Idle connections are closed after idle.
func newH2Client(addr string, dialTimeout, idle time.Duration, ut *config.UpstreamTLS) *h2Client {
	d := &net.Dialer{Timeout: dialTimeout}
	tr := &http.Transport{
		DialContext:        d.DialContext,
		IdleConnTimeout:    idle,
		DisableCompression: true, // bodies pass through as they are
		// A bound on what one answer's headers may take; the response
		// timeout bounds the rest.
		MaxResponseHeaderBytes: 1 << 20,
		// New connections open when the server's stream limit is reached;
		// the same bound as an HTTP/1.1 server's connections.
		MaxConnsPerHost: maxConnsPerBackend,
	}
	tr.Protocols = new(http.Protocols)
	if ut == nil {
		tr.Protocols.SetUnencryptedHTTP2(true)
		return &h2Client{addr: addr, scheme: "http", tr: tr}
	}
	// HTTP/2 only: a server that does not select h2 by ALPN fails the
	// request instead of being spoken to in HTTP/1.1 behind the
	// operator's back.
	tr.Protocols.SetHTTP2(true)
	tc := ut.ClientConfig(addr, config.ALPNH2)
	tr.TLSClientConfig = tc
	// Our own TLS dial: net/http would speak HTTP/1.1 to a server that
	// negotiates no protocol by ALPN, whatever Protocols says.
	tr.DialTLSContext = func(ctx context.Context, _, a string) (net.Conn, error) {
		c, err := tlsdial.Dial(ctx, a, tc, config.ALPNH2, dialTimeout)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return c, nil
	}
	return &h2Client{addr: addr, scheme: "https", tr: tr}
}

func (c *h2Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// DoTimeout sends req and reads the whole response into resp, within
// timeout.
func (c *h2Client) DoTimeout(req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hreq := &http.Request{
		Method: string(req.Header.Method()),
		// Opaque keeps the path and query byte for byte as routing saw them.
		URL:    &url.URL{Scheme: c.scheme, Host: c.addr, Opaque: string(req.RequestURI())},
		Host:   string(req.Header.Host()),
		Header: make(http.Header, req.Header.Len()),
	}
	for k, v := range req.Header.All() {
		switch string(k) {
		case fasthttp.HeaderHost, fasthttp.HeaderContentLength, fasthttp.HeaderConnection, fasthttp.HeaderTransferEncoding:
			continue
		}
		hreq.Header[string(k)] = append(hreq.Header[string(k)], string(v))
	}
	if body := req.Body(); len(body) > 0 {
		hreq.Body = io.NopCloser(bytes.NewReader(body))
		hreq.ContentLength = int64(len(body))
	}
	hresp, err := c.tr.RoundTrip(hreq.WithContext(ctx))
	if err != nil {
		return c.mapErr(ctx, err)
	}
	defer hresp.Body.Close()
	resp.SetStatusCode(hresp.StatusCode)
	for k, vs := range hresp.Header {
		for _, v := range vs {
			resp.Header.Add(k, v)
		}
	}
	n, err := io.Copy(resp.BodyWriter(), io.LimitReader(hresp.Body, maxResponseBodyBytes+1))
	switch {
	case err != nil:
		return c.mapErr(ctx, err)
	case n > maxResponseBodyBytes:
		return fasthttp.ErrBodyTooLarge
	}
	return nil
}

// mapErr words a net/http error as the HostClients do: a dial failure is a
// dialError (never sent, so any method may be retried elsewhere), a
// deadline is fasthttp.ErrTimeout.
func (c *h2Client) mapErr(ctx context.Context, err error) error {
	var op *net.OpError
	var de *dialError
	switch {
	case errors.As(err, &de):
		return de
	case errors.As(err, &op) && op.Op == "dial":
		return &dialError{err: op}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fasthttp.ErrTimeout
	case err.Error() == h2NotEstablished:
		// The connection this first request was to open had failed
		// before the request got a stream (a server that refused the
		// handshake and closed, say): nothing was sent.
		return &dialError{err: fmt.Errorf("http/2 to %s: %w", c.addr, err)}
	}
	return fmt.Errorf("http/2 to %s: %w", c.addr, err)
}

// h2NotEstablished is the HTTP/2 client's error for a request that was to
// be the first of a connection that closed before the request had a
// stream. The error value is not exported, so it is known by its text.
const h2NotEstablished = "http2: client conn could not be established"
