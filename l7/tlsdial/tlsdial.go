// Package tlsdial opens the proxy's TLS connections to app servers: the
// TCP connection and the whole handshake within one deadline, and, where a
// protocol is required, a connection only if the server selected it by
// ALPN.
//
// The proxy's forwarding, its WebSocket upgrades and its health checks all
// dial through here, so that a server they cannot speak TLS (or the
// protocol) with fails in the dial — where a failure proves that the
// request was never sent — and never later, inside the request.
package tlsdial

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Dial connects to addr (host:port) and completes the TLS handshake with
// tc, all within timeout (and ctx); see Client for require. A failure to
// connect is the *net.OpError the dial returned, a failed handshake says
// so and wraps its cause.
func Dial(ctx context.Context, addr string, tc *tls.Config, require string, timeout time.Duration) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return Client(ctx, conn, addr, tc, require)
}

// Client runs the handshake with tc on conn, an open connection to addr,
// until ctx ends. With require set ("h2"), a server that does not select
// that protocol by ALPN is an error: a pool that asked for HTTP/2 must not
// be spoken to in HTTP/1.1 behind the operator's back. (HTTP/1.1 needs no
// ALPN: a server that does not negotiate at all speaks it.) conn is closed
// on any error.
func Client(ctx context.Context, conn net.Conn, addr string, tc *tls.Config, require string) (*tls.Conn, error) {
	tconn := tls.Client(conn, tc)
	if err := tconn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	if got := tconn.ConnectionState().NegotiatedProtocol; require != "" && got != require {
		_ = conn.Close()
		return nil, fmt.Errorf("tls to %s: the server selected %q by ALPN, not %q", addr, got, require)
	}
	return tconn, nil
}
