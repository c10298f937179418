package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/tlsdial"
)

// The HTTP/1.1 connections to an app server are upstreamConns, made by
// the HostClient's dial. Wrapping them is how the proxy learns what
// fasthttp cannot tell it: that a kept-alive connection was ended (or
// written to) by the server while it sat idle in the pool. A
// non-idempotent request is not written on such a connection but on a new
// one (ensureOpen), because nothing could send it again once it had gone
// out on a connection that then fails.

// upstreamDialer opens the connections to one app server: TCP, then TLS
// when the pool has it, the handshake inside the dial.
type upstreamDialer struct {
	addr    string
	timeout time.Duration // the route's dial timeout
	tls     *tls.Config   // nil: cleartext
}

// dial is the HostClient's DialTimeout. fasthttp passes the request's
// remaining time; the route's dial timeout is usually the shorter bound.
func (d *upstreamDialer) dial(_ string, timeout time.Duration) (net.Conn, error) {
	c := &upstreamConn{dialer: d}
	c.peekFn = c.peekSocket
	if err := c.open(min(timeout, d.timeout)); err != nil {
		return nil, err
	}
	return c, nil
}

// connect opens one connection within timeout and returns it with its
// TCP socket. Every error is a *dialError, so that forward knows the
// request was never sent.
func (d *upstreamDialer) connect(timeout time.Duration) (net.Conn, syscall.RawConn, error) {
	if timeout <= 0 {
		return nil, nil, &dialError{err: fasthttp.ErrDialTimeout}
	}
	c, err := fasthttp.DialTimeout(d.addr, timeout)
	if err != nil {
		return nil, nil, &dialError{err: err}
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		_ = c.Close()
		return nil, nil, &dialError{err: fmt.Errorf("connection to %s is a %T, not a socket", d.addr, c)}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, nil, &dialError{err: fmt.Errorf("socket of the connection to %s: %w", d.addr, err)}
	}
	if d.tls == nil {
		return c, raw, nil
	}
	// The handshake inside the dial, within its timeout: a server it
	// fails with never saw the request. (fasthttp would do it on the
	// first write, where a stalled handshake has only the response
	// timeout and a failed one looks like a failed request.)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tc, err := tlsdial.Client(ctx, c, d.addr, d.tls, "")
	if err != nil {
		return nil, nil, &dialError{err: err}
	}
	return tc, raw, nil
}

// upstreamConn is one HTTP/1.1 connection to an app server as fasthttp
// sees it. fasthttp uses a connection for one request at a time, from one
// goroutine, so its fields need no lock.
type upstreamConn struct {
	net.Conn                 // what requests go on: the TCP connection, or TLS over it
	raw      syscall.RawConn // the TCP socket under it
	dialer   *upstreamDialer
	// reused: a response has arrived since the last request was written,
	// so the next write begins a request on a kept-alive connection.
	reused bool
	// The deadlines fasthttp set, for a connection opened in their place.
	readDeadline, writeDeadline time.Time
	// peekFn is peekSocket, made once: a method value passed to
	// RawConn.Read would be allocated on every call.
	peekFn  func(fd uintptr) bool
	peekBuf [1]byte
	peekErr error
}

// open makes c's connection, within timeout.
func (c *upstreamConn) open(timeout time.Duration) error {
	conn, raw, err := c.dialer.connect(timeout)
	if err != nil {
		return err
	}
	c.Conn, c.raw = conn, raw
	c.reused = false
	return nil
}

func (c *upstreamConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reused = true
	}
	return n, err
}

func (c *upstreamConn) Write(b []byte) (int, error) {
	if c.reused {
		// The first write of a request on a kept-alive connection. fasthttp
		// sends an idempotent request once more on a new connection when
		// this one fails before a response byte (reconnectIf), so only the
		// others pay for the check: non-idempotent methods, and requests
		// that do not fit in one buffer, which is how a streamed body
		// (never sent again) begins.
		c.reused = false
		if !idempotentStart(b) || len(b) >= upstreamWriteBuffer {
			if err := c.ensureOpen(); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Write(b)
}

// ReadFrom is how fasthttp's buffered writer copies a streamed body once
// its buffer is empty: through the TCP connection's own ReadFrom (splice),
// which writes each piece as it arrives rather than holding up to a
// buffer of it until more comes.
func (c *upstreamConn) ReadFrom(r io.Reader) (int64, error) {
	if c.reused {
		// Never the first write of a request (its header goes first, as a
		// Write), but if it were, it could not be sniffed: check.
		c.reused = false
		if err := c.ensureOpen(); err != nil {
			return 0, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// ensureOpen replaces c's connection with a new one when the server ended
// it, or sent on it, while it sat idle: the request then goes out on the
// new connection, as its first request. A connection whose peer's FIN or
// reset had arrived before the request was written cannot have delivered
// the request to anyone; bytes that no request asked for (an unsolicited
// 408, or TLS records such as the close_notify of a closing server) mean
// the connection is no longer in step with the server, and would be read
// as the answer to this request.
func (c *upstreamConn) ensureOpen() error {
	if c.peerQuiet() {
		return nil
	}
	_ = c.Conn.Close()
	timeout := c.dialer.timeout
	if !c.writeDeadline.IsZero() {
		timeout = min(timeout, time.Until(c.writeDeadline))
	}
	if err := c.open(timeout); err != nil {
		var de *dialError
		if errors.As(err, &de) {
			de.late = true
		}
		return err
	}
	// fasthttp set this request's deadlines on the connection just closed.
	if !c.writeDeadline.IsZero() {
		if err := c.Conn.SetWriteDeadline(c.writeDeadline); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
	}
	if !c.readDeadline.IsZero() {
		if err := c.Conn.SetReadDeadline(c.readDeadline); err != nil {
			return fmt.Errorf("set read deadline: %w", err)
		}
	}
	return nil
}

// peerQuiet reports whether the socket has nothing to read — no byte, no
// FIN, no reset — as far as the kernel knows: one non-blocking
// recv(MSG_PEEK) that never waits and consumes nothing.
func (c *upstreamConn) peerQuiet() bool {
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return errors.Is(c.peekErr, syscall.EAGAIN)
}

func (c *upstreamConn) peekSocket(fd uintptr) bool {
	_, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true // done: RawConn.Read must not wait for readability
}

func (c *upstreamConn) SetDeadline(t time.Time) error {
	c.readDeadline, c.writeDeadline = t, t
	return c.Conn.SetDeadline(t)
}

func (c *upstreamConn) SetReadDeadline(t time.Time) error {
	c.readDeadline = t
	return c.Conn.SetReadDeadline(t)
}

func (c *upstreamConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline = t
	return c.Conn.SetWriteDeadline(t)
}

// Handshake tells fasthttp that the connection speaks TLS already (the
// dial did the handshake), so that a HostClient with IsTLS does not wrap
// it in TLS again. It is never called on a cleartext connection, which
// such a client never gets.
func (c *upstreamConn) Handshake() error { return nil }

// idempotentStart reports whether b, the start of a request as written,
// begins with an idempotent method (RFC 9110 §9.2.2).
func idempotentStart(b []byte) bool {
	i := bytes.IndexByte(b[:min(len(b), len("OPTIONS "))], ' ')
	return i > 0 && idempotent(b[:i])
}
