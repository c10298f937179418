package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"
)

// cause is why a request ended, like HAProxy's termination flags or Envoy's
// response flags: the access log and the xlb_l7_terminations_total counter
// carry it. It is a small closed set so it can be a metric label.
type cause uint8

const (
	causeOK              cause = iota // the app server answered
	causeRejected                     // the proxy refused the request itself (400, 404, 413)
	causeNoServer                     // the route's pool had no available server
	causeShed                         // refused by priority load shedding
	causeConnectRefused               // the server refused the connection
	causeConnectTimeout               // the connection was not established in time
	causeConnectError                 // any other connect failure (unreachable, upstream TLS handshake)
	causeResponseTimeout              // no response within the (per-try) timeout
	causeUpstreamReset                // the server closed or reset the connection before answering
	causeUpstreamError                // the server sent an invalid or oversized response
	causeBudgetExhausted              // a retry was due but the pool's retry budget refused it
	causeClientAbort                  // the client went away before the response was delivered
	causeIdleTimeout                  // an upgraded connection (WebSocket) was silent for its idle timeout
	numCauses
)

var causeNames = [numCauses]string{
	causeOK:              "ok",
	causeRejected:        "rejected",
	causeNoServer:        "no_server",
	causeShed:            "shed",
	causeConnectRefused:  "connect_refused",
	causeConnectTimeout:  "connect_timeout",
	causeConnectError:    "connect_error",
	causeResponseTimeout: "response_timeout",
	causeUpstreamReset:   "upstream_reset",
	causeUpstreamError:   "upstream_error",
	causeBudgetExhausted: "budget_exhausted",
	causeClientAbort:     "client_abort",
	causeIdleTimeout:     "idle_timeout",
}

func (c cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return "unknown"
}

// dialError marks an error from dialling an app server, so that the
// classification below knows the request was never sent, whatever the
// underlying error is (refused, timeout, unreachable, TLS handshake).
type dialError struct {
	err error
	// late: the connection failed once the request had begun to be
	// written, which is when fasthttp has read the start of a streamed
	// body (a server that refused the handshake in its first answer, or a
	// kept-alive connection found closed and replaced by one that could
	// not be made). No server has seen the request, but a streamed body
	// cannot be sent again.
	late bool
}

func (e *dialError) Error() string { return "dial upstream: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// failure is a classified upstream error.
type failure struct {
	cause  cause
	status int // what the client gets
	// neverSent: no byte of the request reached a server, so any method
	// may be retried on another one.
	neverSent bool
	// late: neverSent, but a streamed body has been read from (see
	// dialError), so such a request may not be retried.
	late bool
	// noResponse: the request may have reached the server but no byte of
	// a response came back; an idempotent method may be retried.
	noResponse bool
	// connectErr: no connection could be made, which passive health counts
	// against the server (unlike all of its connections being busy).
	connectErr bool
}

// classifyUpstream maps a HostClient error to a failure. fasthttp reports a server
// that closed (or reset) the connection before the first response byte as
// ErrConnectionClosed, and a timeout with nothing read as ErrTimeout; any
// other read error means response bytes arrived and nothing may be retried.
func classifyUpstream(err error) failure {
	var de *dialError
	if errors.As(err, &de) {
		f := failure{cause: causeConnectError, status: fasthttp.StatusBadGateway, neverSent: true, late: de.late, connectErr: true}
		var ne net.Error
		switch {
		case errors.Is(err, fasthttp.ErrDialTimeout), errors.As(err, &ne) && ne.Timeout():
			f.cause, f.status = causeConnectTimeout, fasthttp.StatusGatewayTimeout
		case errors.Is(err, syscall.ECONNREFUSED):
			f.cause = causeConnectRefused
		}
		return f
	}
	var opErr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		// Every connection to the server is busy: nothing was sent.
		return failure{cause: causeConnectTimeout, status: fasthttp.StatusGatewayTimeout, neverSent: true}
	case errors.Is(err, fasthttp.ErrTimeout):
		// fasthttp returns ErrTimeout for a write timeout and for a read
		// timeout with no response byte buffered.
		return failure{cause: causeResponseTimeout, status: fasthttp.StatusGatewayTimeout, noResponse: true}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A deadline hit after part of the response arrived.
		return failure{cause: causeResponseTimeout, status: fasthttp.StatusGatewayTimeout}
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return failure{cause: causeUpstreamReset, status: fasthttp.StatusBadGateway, noResponse: true}
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert from the HTTP/2 client, which reads the server's
		// first frames before any response: with TLS 1.3, a server that
		// refuses the proxy's client certificate says so there, and has
		// processed nothing — a failed handshake, as on HTTP/1.1 (where
		// upstreamError has turned it into a dialError already). Any other
		// alert may follow a request the server did process.
		if handshakeRefusal(opErr.Err) {
			return failure{cause: causeConnectError, status: fasthttp.StatusBadGateway, neverSent: true, late: true, connectErr: true}
		}
		return failure{cause: causeUpstreamError, status: fasthttp.StatusBadGateway, noResponse: true}
	case errors.As(err, &opErr) && opErr.Op == "write":
		// Reset or closed while the request was written: no response yet.
		return failure{cause: causeUpstreamReset, status: fasthttp.StatusBadGateway, noResponse: true}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		// Reset after part of the response arrived.
		return failure{cause: causeUpstreamReset, status: fasthttp.StatusBadGateway}
	}
	return failure{cause: causeUpstreamError, status: fasthttp.StatusBadGateway}
}

// idempotent reports whether RFC 9110 §9.2.2 makes the method idempotent.
func idempotent(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions,
		fasthttp.MethodTrace, fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}
