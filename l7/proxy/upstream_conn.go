package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/tlsdial"
)

// The HTTP/1.1 connections to an app server are upstreamConns, made by
// the HostClient's dial. Wrapping them is how the proxy learns two things
// about a request that fasthttp cannot tell it, both of which prove that
// the request never reached the server's application:
//
//   - a kept-alive connection that the server ended (or wrote to) while it
//     sat idle in the pool: a non-idempotent request is not written on it
//     but on a new connection (ensureOpen), because nothing could send it
//     again once it had gone out on a connection that then fails;
//   - a server that refuses the TLS handshake only in its first answer:
//     with TLS 1.3 the client's side of the handshake ends before the
//     server has checked the client certificate, so its alert arrives on
//     the first read, after the request went out (refusal).

// upstreamDialer opens the connections to one app server: TCP, then TLS
// when the pool has it, the handshake inside the dial.
type upstreamDialer struct {
	addr     string
	timeout  time.Duration  // the route's dial timeout
	tls      *tls.Config    // nil: cleartext
	replaced *atomic.Uint64 // kept-alive connections replaced (nil: not counted)
	// stale counts the kept-alive connections to this server that an
	// unchecked idempotent request found ended: dropped for a 408
	// (dropStale), or closed before the answer's first byte. The server
	// times its idle connections out together, so the others idle since
	// then are checked before use.
	stale   atomic.Uint64
	copyBuf sync.Pool // *[]byte of upstreamWriteBuffer bytes, for ReadFrom over TLS
}

// copyBuffer takes a buffer for a body copy from d's pool; put it back
// with d.copyBuf.Put.
func (d *upstreamDialer) copyBuffer() *[]byte {
	if b, ok := d.copyBuf.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, upstreamWriteBuffer)
	return &b
}

// dial is the HostClient's DialTimeout. fasthttp passes the request's
// remaining time; the route's dial timeout is usually the shorter bound.
func (d *upstreamDialer) dial(_ string, timeout time.Duration) (net.Conn, error) {
	c := &upstreamConn{dialer: d}
	c.addr.c = c
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
	addr     connAddr // LocalAddr
	// reused: a response has arrived since the last request was written,
	// so the next write begins a request on a kept-alive connection.
	reused bool
	// answered: a response byte has arrived on this connection, so its
	// first request is over.
	answered bool
	// resendable: the request just written went out, unchecked, on a
	// kept-alive connection, and fasthttp sends it again on a new one if
	// this one ends before its answer's first byte (reconnectIf). Cleared
	// by that first byte.
	resendable bool
	// staleSeen is dialer.stale when the connection opened or a response
	// last arrived on it: one idle since a later drop or close may have
	// been ended by the server too.
	staleSeen uint64
	// refused, once set, is the handshake the server refused in its first
	// answer; the connection is closed by fasthttp after that answer.
	refused *dialError
	// The deadlines fasthttp set, for a connection opened in their place.
	readDeadline, writeDeadline time.Time
	// peekFn is peekSocket, made once: a method value passed to
	// RawConn.Control would be allocated on every call.
	peekFn  func(fd uintptr)
	peekBuf [1]byte
	peekErr error
}

// connAddr is an upstream connection's local address, and the way back to
// the connection: fasthttp folds every error before the first byte of a
// response into io.EOF, but it keeps the connection's LocalAddr in the
// response (Response.LocalAddr), so upstreamError can ask the connection
// what it learnt.
type connAddr struct {
	net.Addr
	c *upstreamConn
}

// open makes c's connection, within timeout.
func (c *upstreamConn) open(timeout time.Duration) error {
	conn, raw, err := c.dialer.connect(timeout)
	if err != nil {
		return err
	}
	c.Conn, c.raw = conn, raw
	c.addr.Addr = conn.LocalAddr()
	c.reused, c.answered, c.resendable = false, false, false
	c.staleSeen = c.dialer.stale.Load()
	return nil
}

func (c *upstreamConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if c.resendable {
			c.resendable = false
			if isTimeout408(b[:n]) {
				return 0, c.dropStale()
			}
		}
		c.reused, c.answered = true, true
		c.staleSeen = c.dialer.stale.Load()
	} else if err != nil {
		if c.resendable && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Ended before its answer's first byte: the server closed it
			// while idle, and likely its other idle connections with it.
			c.resendable = false
			c.dialer.stale.Add(1)
		}
		if !c.answered && c.dialer.tls != nil && c.refused == nil {
			c.refused = refusal(c.dialer.addr, err)
		}
	}
	return n, err
}

func (c *upstreamConn) Write(b []byte) (int, error) {
	if c.reused {
		// The first write of a request on a kept-alive connection. fasthttp
		// sends an idempotent request once more on a new connection when
		// this one fails before a response byte (reconnectIf), so only the
		// others pay for the check: non-idempotent methods, requests that
		// do not fit in one buffer, which is how a streamed body (never
		// sent again) begins, and any request on a connection idle since
		// another one to this server was found ended (stale). The rest
		// go out unchecked, resendable.
		c.reused = false
		if !idempotentStart(b) || len(b) >= upstreamWriteBuffer || c.staleSeen != c.dialer.stale.Load() {
			if err := c.ensureOpen(); err != nil {
				return 0, err
			}
		} else {
			c.resendable = true
		}
	}
	n, err := c.Conn.Write(b)
	c.wrote(err)
	return n, err
}

// ReadFrom is how fasthttp's buffered writer copies a streamed body once
// its buffer is empty: each piece is written as it arrives rather than
// held until a buffer of it has come. A TCP connection has its own
// ReadFrom; a TLS one is copied through a pooled 4 KiB buffer (io.Copy
// would allocate 32 KiB per body).
func (c *upstreamConn) ReadFrom(r io.Reader) (int64, error) {
	if c.reused {
		// Never the first write of a request (its header goes first, as a
		// Write), but if it were, it could not be sniffed: check.
		c.reused = false
		if err := c.ensureOpen(); err != nil {
			return 0, err
		}
	}
	var n int64
	var err error
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		buf := c.dialer.copyBuffer()
		n, err = io.CopyBuffer(writerOnly{c.Conn}, r, *buf)
		c.dialer.copyBuf.Put(buf)
	}
	c.wrote(err)
	return n, err
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// wrote looks at the result of a write: a failed write of a TLS
// connection's first request may be explained by a refused handshake.
func (c *upstreamConn) wrote(err error) {
	if err != nil && !c.answered && c.dialer.tls != nil && c.refused == nil {
		c.refusedBeforeWrite(err)
	}
}

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
	if c.dialer.replaced != nil {
		c.dialer.replaced.Add(1)
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
	// Failing that, the request has still not gone out anywhere.
	if !c.writeDeadline.IsZero() {
		if err := c.Conn.SetWriteDeadline(c.writeDeadline); err != nil {
			return &dialError{err: fmt.Errorf("set write deadline: %w", err), late: true}
		}
	}
	if !c.readDeadline.IsZero() {
		if err := c.Conn.SetReadDeadline(c.readDeadline); err != nil {
			return &dialError{err: fmt.Errorf("set read deadline: %w", err), late: true}
		}
	}
	return nil
}

// isTimeout408 says whether b, the first bytes read for a request, begin
// a 408 (Request Timeout) status line.
func isTimeout408(b []byte) bool {
	const line = len("HTTP/1.1 408")
	return len(b) >= line && bytes.HasPrefix(b, []byte("HTTP/1.")) && (b[7] == '0' || b[7] == '1') &&
		string(b[8:line]) == " 408" && (len(b) == line || b[line] == ' ' || b[line] == '\r')
}

// dropStale ends a kept-alive connection whose answer to an idempotent
// request written on it, unchecked, is a 408: the server's own
// "Request Timeout" for the idle connection, sent before the request
// reached it (Node.js, Apache's mod_reqtimeout and others do so, then
// close), not an answer to the request, which it had whole. fasthttp sees
// a connection that ended before a response byte (io.EOF) and sends the
// request once more, as browsers do with a 408 on a reused connection.
// It takes the oldest idle connection, which the server has most likely
// timed out too; stale makes that one checked first (ensureOpen), and
// replaced by a new one if its 408 is there. A 408 on a checked or a new
// connection is the server's answer and passes.
func (c *upstreamConn) dropStale() error {
	if c.dialer.replaced != nil {
		c.dialer.replaced.Add(1)
	}
	c.dialer.stale.Add(1)
	_ = c.Conn.Close()
	return io.EOF
}

// peerQuiet reports whether the socket has nothing to read — no byte, no
// FIN, no reset — as far as the kernel knows: one non-blocking
// recv(MSG_PEEK) that never waits and consumes nothing.
func (c *upstreamConn) peerQuiet() bool {
	// Control, not Read: RawConn.Read fails at once when the last
	// request's read deadline has passed, as it has on a connection idle
	// for longer than the route's response timeout.
	if err := c.raw.Control(c.peekFn); err != nil {
		return false
	}
	if !errors.Is(c.peekErr, syscall.EAGAIN) {
		return false
	}
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return c.tlsQuiet(tc)
	}
	return true
}

// tlsQuiet reports whether tc holds no whole record read from the socket
// yet unprocessed (a partial one, the rest still on its way, is not seen):
// a server that sends its close_notify right behind its last
// answer has both read from the socket together, so the socket looks
// quiet while the TLS layer holds the alert. A read with a deadline
// already past processes whole records so held (an alert ends in io.EOF,
// data is returned) and returns at once, without a system call, when
// there are none; such a timeout leaves the connection usable. The
// deadline fasthttp set is put back.
func (c *upstreamConn) tlsQuiet(tc *tls.Conn) bool {
	if tc.SetReadDeadline(time.Unix(1, 0)) != nil {
		return false
	}
	n, err := tc.Read(c.peekBuf[:])
	if tc.SetReadDeadline(c.readDeadline) != nil {
		return false
	}
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

func (c *upstreamConn) peekSocket(fd uintptr) {
	_, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

// refusedBeforeWrite looks, after a failed write of a TLS connection's
// first request, for the alert that explains it: a server that refused
// the handshake and closed may have reset the connection before the
// request was written, and the alert it sent first is still queued.
func (c *upstreamConn) refusedBeforeWrite(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	// The alert, if any, is already in the receive queue: the bound only
	// matters for a connection that has none.
	if c.Conn.SetReadDeadline(time.Now().Add(alertWait)) != nil {
		return
	}
	_, rerr := c.Conn.Read(c.peekBuf[:])
	c.refused = refusal(c.dialer.addr, rerr)
}

// alertWait bounds the read for an alert after a failed first write.
const alertWait = 50 * time.Millisecond

// refusal is the failed handshake that err shows — a TLS alert from the
// server that refuses the proxy's certificate or access, received before
// any byte of its first answer — or nil. A server that refuses the
// handshake has not handed the request to its application. Other alerts
// (internal_error, say) may come from a server that did process the
// request, so they stay failures after sending.
func refusal(addr string, err error) *dialError {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "remote error" && handshakeRefusal(opErr.Err) {
		return &dialError{err: fmt.Errorf("tls handshake with %s: refused by the server after the client's side ended: %w", addr, err), late: true}
	}
	return nil
}

// handshakeRefusal reports whether err, a received TLS alert, is one of
// those a server sends when it refuses the client's certificate or access
// (RFC 8446 §6.2): bad_certificate (42) to access_denied (49), and
// certificate_required (116). crypto/tls does not export its alert type,
// an integer kind, so its value is read by reflection.
func handshakeRefusal(err error) bool {
	v := reflect.ValueOf(err)
	if v.Kind() != reflect.Uint8 {
		return false
	}
	a := v.Uint()
	return (a >= 42 && a <= 49 && a != 47) || a == 116 // 47: illegal_parameter
}

func (c *upstreamConn) LocalAddr() net.Addr { return &c.addr }

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

// upstreamError is err, the error of a request, or what the connection it
// last went on (local, the response's LocalAddr) knows better: that the
// server refused the handshake.
func upstreamError(local net.Addr, err error) error {
	if a, ok := local.(*connAddr); ok && a.c.refused != nil {
		return a.c.refused
	}
	return err
}

// idempotentStart reports whether b, the start of a request as written,
// begins with an idempotent method (RFC 9110 §9.2.2).
func idempotentStart(b []byte) bool {
	i := bytes.IndexByte(b[:min(len(b), len("OPTIONS "))], ' ')
	return i > 0 && idempotent(b[:i])
}
