package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeBehindMax is the largest write an upstream connection holds back
// until the read that follows it: a request's headers and a small body.
const writeBehindMax = 4 << 10

// writeBehindConn is an upstream connection that sends its last small
// write from inside the read that follows it.
//
// Why: the proxy reads the app server's answer right after writing the
// request, and the answer is never there that soon; Go's read tries
// read(2) first, fails with EAGAIN, waits for the poller and reads again:
// two reads per answer, a sixth of the proxy's system calls per request.
// Here Read starts a raw read first (which arms the wait), writes the held
// request from inside it, and waits for the poller without trying to
// read: the answer cannot arrive before the request left, so every byte
// of it raises readiness after the wait was armed, and the one read(2)
// finds it. (Yielding before the read instead saved the same call but
// served connections out of order: see docs/benchmarks.md.)
//
// A write that does not fit, or that the socket would not take at once, is
// written the ordinary way. Errors have the shape the socket's own would:
// a failed held write is a "write" *net.OpError, a deadline wraps
// os.ErrDeadlineExceeded.
type writeBehindConn struct {
	*net.TCPConn
	raw syscall.RawConn
	buf []byte // holds pending; reused
	// pending is the held write; the state below is the raw read's,
	// between Read and its callback.
	pending []byte
	sent    bool // pending went out inside this Read
	blocked bool // the socket did not take all of pending at once
	into    []byte
	n       int
	errno   syscall.Errno
	op      string
	eof     bool
	cb      func(uintptr) bool // c.readAfterWrite, made once: a method value per Read would allocate
}

func newWriteBehindConn(c *net.TCPConn) (net.Conn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &writeBehindConn{TCPConn: c, raw: raw, buf: make([]byte, 0, writeBehindMax)}
	w.cb = w.readAfterWrite
	return w, nil
}

func (c *writeBehindConn) Write(b []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	if len(b) > writeBehindMax {
		return c.TCPConn.Write(b)
	}
	c.pending = append(c.buf[:0], b...)
	return len(b), nil
}

// ReadFrom keeps the socket's own ReadFrom (splice, or a write per chunk
// read) for a streamed request body: behind a bufio.Writer without it,
// the body would wait in the buffer until it filled.
func (c *writeBehindConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.TCPConn.ReadFrom(r)
}

// flush writes the held write, if any, the ordinary way.
func (c *writeBehindConn) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	p := c.pending
	c.pending = nil
	_, err := c.TCPConn.Write(p)
	return err
}

func (c *writeBehindConn) Close() error {
	c.pending = nil
	return c.TCPConn.Close()
}

func (c *writeBehindConn) Read(b []byte) (int, error) {
	if len(c.pending) == 0 || len(b) == 0 {
		return c.TCPConn.Read(b)
	}
	c.into, c.n, c.errno, c.op, c.eof, c.sent, c.blocked = b, 0, 0, "", false, false, false
	err := c.raw.Read(c.cb)
	c.into = nil
	switch {
	case c.blocked:
		// The socket's buffer was full: the rest goes out the ordinary
		// way, then the answer is read so too.
		if err := c.flush(); err != nil {
			return 0, err
		}
		return c.TCPConn.Read(b)
	case c.errno != 0 && c.n == 0 && (c.op == "write" || c.errno == unix.ECONNRESET || c.errno == unix.EPIPE):
		// The server was gone before a byte of its answer: it had closed
		// this kept-alive connection while it was idle (the FIN's wake-up
		// came before this read armed its wait, so only the reset that the
		// late write draws wakes it). For the client that is the end of the
		// connection before a response — io.EOF, which fasthttp retries
		// once on a new connection for an idempotent request — as it is
		// when the read finds the FIN.
		c.pending = nil
		return 0, io.EOF
	case c.errno != 0:
		c.pending = nil
		return c.n, c.opError(c.op, os.NewSyscallError(c.op, c.errno))
	case err != nil:
		c.pending = nil
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		return 0, err
	case c.eof:
		return 0, io.EOF
	}
	return c.n, nil
}

// readAfterWrite is the raw read's callback: the first call writes the
// held request and waits (false) without reading; the calls after a
// wake-up read.
func (c *writeBehindConn) readAfterWrite(fd uintptr) bool {
	if !c.sent {
		for len(c.pending) > 0 {
			n, e := rawIO(unix.SYS_WRITE, int(fd), c.pending)
			if e == 0 && n == 0 {
				e = unix.EPIPE // nothing written of a non-empty buffer: never retry forever
			}
			switch {
			case e == unix.EAGAIN:
				c.blocked = true
				return true
			case e != 0:
				c.op, c.errno = "write", e
				return true
			}
			c.pending = c.pending[n:]
		}
		c.pending, c.sent = nil, true
		return false
	}
	n, e := rawIO(unix.SYS_READ, int(fd), c.into)
	switch {
	case e == unix.EAGAIN:
		return false
	case e != 0:
		c.op, c.errno = "read", e
	case n == 0:
		c.eof = true
	}
	c.n = n
	return true
}

func (c *writeBehindConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
