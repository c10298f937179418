package proxy

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// batchConn sits under the TLS layer of a client connection and, once its
// connection has negotiated h2, gathers the TLS records written to it into
// one write(2) per wave of ready streams.
//
// Why: net/http's HTTP/2 server flushes its buffer whenever its write queue
// runs empty, and with many streams in flight the handlers finish one at a
// time, so each response was its own TLS record, its own write(2) and, on
// loopback or a fast LAN, its own trip through the receiving side of the
// TCP stack in the same system call: 1.7 client writes per request, a
// quarter of the proxy's CPU under h2load. Here a write only appends to a
// buffer and wakes one flusher goroutine per connection, which first yields
// (runtime.Gosched), so that the streams whose upstream answers are already
// in hand run and append theirs before the flusher sends everything at
// once. The delay is that of the goroutines already runnable, never a
// timer. HTTP/1.1 connections keep writing directly: fasthttp already
// writes one response per write(2) and pipelining is rare.
//
// Back-pressure stays: once maxBatchPending bytes wait, Write blocks until
// the flusher takes them, as a write to a full socket would. A connection
// thus holds at most two batches, the one in the flusher's write(2) and
// the one waiting, each at most maxBatchPending plus the write that crossed
// it. A write error is kept and returned by every later Write.
type batchConn struct {
	net.Conn

	batching bool // set once, before the conn is shared (see startBatching)

	mu      sync.Mutex
	room    sync.Cond // signalled when the flusher took the pending bytes, or failed
	pending []byte
	kicked  bool // the flusher has been woken and not yet taken pending
	closing bool
	err     error
	kick    chan struct{}
	done    chan struct{}

	closeOnce sync.Once
	closeErr  error
}

const (
	// maxBatchPending bounds the bytes that wait for the flusher: a few
	// full TLS records.
	maxBatchPending = 256 << 10
	// batchCloseFlush bounds how long Close waits to send what is still
	// pending (a GOAWAY, the TLS close_notify) to a client that stopped
	// reading.
	batchCloseFlush = time.Second
)

var errBatchClosed = errors.New("write on closed connection")

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c}
	b.room.L = &b.mu
	return b
}

// startBatching turns batching on. It must be called before the connection
// is handed to the server that writes to it (the hand-over orders it before
// every Write).
func (c *batchConn) startBatching() {
	c.batching = true
	c.kick = make(chan struct{}, 1)
	c.done = make(chan struct{})
	go c.flushLoop()
}

func (c *batchConn) Write(b []byte) (int, error) {
	if !c.batching {
		return c.Conn.Write(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closing && len(c.pending) >= maxBatchPending {
		c.room.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closing {
		return 0, errBatchClosed
	}
	c.pending = append(c.pending, b...)
	if !c.kicked {
		c.kicked = true
		c.kick <- struct{}{} // never blocks: one kick at most is outstanding
	}
	return len(b), nil
}

func (c *batchConn) flushLoop() {
	defer close(c.done)
	var buf []byte
	for range c.kick {
		// Let the goroutines that are already runnable (other streams'
		// handlers, the h2 server's write loop) append before sending.
		runtime.Gosched()
		c.mu.Lock()
		buf, c.pending = c.pending, buf[:0]
		c.kicked = false
		closing := c.closing
		// The writers blocked on a full batch go on filling the next one
		// while this one is written: waking them only after the write(2)
		// left them asleep with nothing pending for as long as a full
		// socket held it, and the batch was full or empty by chance.
		c.room.Broadcast()
		c.mu.Unlock()
		var err error
		if len(buf) > 0 {
			_, err = c.Conn.Write(buf)
		}
		if err != nil {
			c.mu.Lock()
			if c.err == nil {
				c.err = err
			}
			c.room.Broadcast()
			c.mu.Unlock()
		}
		if closing {
			return
		}
	}
}

// Close sends what is pending (within batchCloseFlush) and closes the
// connection.
func (c *batchConn) Close() error {
	c.closeOnce.Do(func() {
		if c.batching {
			c.mu.Lock()
			c.closing = true
			if !c.kicked {
				c.kicked = true
				c.kick <- struct{}{}
			}
			c.room.Broadcast()
			c.mu.Unlock()
			_ = c.Conn.SetWriteDeadline(time.Now().Add(batchCloseFlush))
			<-c.done
		}
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
