package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"sync/atomic"
)

// yieldConn yields the processor once before a read that follows a write.
//
// Why: the proxy reads right after it writes: the app server's response
// right after sending it the request, the client's next request right after
// sending it the response. The answer is rarely there that soon, so Go's
// read (which tries read(2) before it waits for the poller) fails with
// EAGAIN, parks, and reads again when the poller wakes it: two read(2)s
// per answer. Yielding first lets the other connections' ready work run,
// which is usually long enough for the answer to arrive, and the first
// read(2) then finds it. When nothing else is runnable the yield returns at
// once and the read behaves as before.
type yieldConn struct {
	net.Conn
	wrote atomic.Bool // a write since the last read
}

func (c *yieldConn) Write(b []byte) (int, error) {
	c.wrote.Store(true)
	return c.Conn.Write(b)
}

// ReadFrom keeps the socket's own ReadFrom (splice, or a write per chunk
// read) visible through the wrapper. Without it a bufio.Writer in front of
// the connection copies a streamed request body into its buffer and sends
// it only when the buffer is full: the app server would wait for the start
// of a body that the client sends the rest of only after an answer.
func (c *yieldConn) ReadFrom(r io.Reader) (int64, error) {
	c.wrote.Store(true)
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides every method but Write, so io.Copy does not come back
// to ReadFrom.
type writerOnly struct{ io.Writer }

func (c *yieldConn) Read(b []byte) (int, error) {
	if c.wrote.Load() {
		c.wrote.Store(false)
		runtime.Gosched()
	}
	return c.Conn.Read(b)
}

// yieldListener hands out its connections as yieldConns. TLS connections
// (the HTTP/1.1 ones of a TLS listener) pass as they are: fasthttp must see
// them as TLS.
type yieldListener struct{ net.Listener }

func (l yieldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		return c, nil
	}
	return &yieldConn{Conn: c}, nil
}

// unwrapYield is the connection under a yieldConn, for the code that needs
// the socket itself (splice).
func unwrapYield(c net.Conn) net.Conn {
	if y, ok := c.(*yieldConn); ok {
		return y.Conn
	}
	return c
}
