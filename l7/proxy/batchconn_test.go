package proxy

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// pattern is n bytes that differ from one offset to the next, so that a
// lost, doubled or reordered chunk shows in a compare.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// Every write arrives, in order, and Close sends what is still pending
// before the peer sees the end of the stream.
func TestBatchConnDeliversInOrderAndCloseFlushes(t *testing.T) {
	peer, raw := tcpPair(t)
	c := newBatchConn(raw)
	c.startBatching()

	want := pattern(300_000)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	for off := 0; off < len(want); {
		n := min(1+off%997, len(want)-off) // chunks of many sizes
		w, err := c.Write(want[off : off+n])
		require.NoError(t, err)
		require.Equal(t, n, w)
		off += n
	}
	require.NoError(t, c.Close()) // right after the last write: still pending
	b := <-got
	assert.Equal(t, len(want), len(b))
	assert.True(t, bytes.Equal(want, b), "the bytes arrive unchanged and in order")

	_, err := c.Write([]byte("late"))
	assert.Error(t, err, "a write after Close fails")
}

// A client that reads nothing holds the writer back: the proxy holds at
// most two batches (the one the flusher is writing and the one waiting,
// each at most maxBatchPending plus the write that crossed it), the
// writer blocks with a full batch waiting, and once the client reads,
// everything arrives.
//
// Every figure is a count, and every assertion holds at every instant for
// a correct batchConn, so no machine speed can fail it: the polls only
// choose when to look (once nothing has moved for a while, so that a
// batchConn that buffers without bound has run away by then).
func TestBatchConnBackPressure(t *testing.T) {
	peer, raw := tcpPair(t)
	// Small fixed socket buffers: the kernel's share of the backlog stays
	// far below the pattern whatever tcp_wmem and tcp_rmem allow here.
	require.NoError(t, peer.SetReadBuffer(64<<10))
	require.NoError(t, raw.SetWriteBuffer(64<<10))
	c := newBatchConn(raw)
	c.startBatching()

	const chunk = 16 << 10
	const maxHeld = 2 * (maxBatchPending + chunk)
	want := pattern(16 << 20) // far more than the socket buffers hold
	var accepted atomic.Int64 // bytes Write has returned for
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += chunk {
			n, err := c.Write(want[off : off+chunk])
			if err != nil {
				done <- err
				return
			}
			accepted.Add(int64(n))
		}
		done <- c.Close()
	}()
	pending := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending)
	}
	// held is what Write accepted and the kernel has not taken. It never
	// overcounts: accepted is read before the kernel's share, which only
	// grows while the peer reads nothing.
	held := func() (int, int) {
		a := int(accepted.Load())
		k := kernelHeld(t, raw, peer)
		return a - k, k
	}
	var (
		last          [3]int
		same, maxSeen int
	)
	require.Eventually(t, func() bool {
		h, k := held()
		p := pending()
		maxSeen = max(maxSeen, h)
		if now := [3]int{h, k, p}; now != last {
			last, same = now, 0
			return false
		}
		same++
		return same >= 20 && p >= maxBatchPending
	}, 30*time.Second, time.Millisecond,
		"the socket fills and a full batch waits behind the one being written")
	h, k := held()
	t.Logf("peer reading nothing: Write accepted %d bytes, the kernel holds %d, the proxy %d (%d pending)",
		accepted.Load(), k, h, pending())
	assert.LessOrEqual(t, maxSeen, maxHeld, "the proxy never holds more than two batches")
	assert.LessOrEqual(t, pending(), maxBatchPending+chunk, "the writer blocks instead of growing the batch")
	select {
	case err := <-done:
		t.Fatalf("the writer finished although the peer read nothing: %v", err)
	default:
	}

	b, err := io.ReadAll(peer)
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, bytes.Equal(want, b), "the bytes arrive unchanged and in order (%d of %d)", len(b), len(want))
}

// kernelHeld is what the kernel holds of the bytes written to w while r,
// the other end of the loopback connection, reads nothing: w's send queue
// (not yet acknowledged) plus r's receive queue (not yet read). A byte in
// flight may count twice, never zero times.
func kernelHeld(t *testing.T, w, r *net.TCPConn) int {
	return sockQueue(t, w, unix.SIOCOUTQ) + sockQueue(t, r, unix.SIOCINQ)
}

func sockQueue(t *testing.T, c *net.TCPConn, req uint) int {
	raw, err := c.SyscallConn()
	if !assert.NoError(t, err) {
		return 0
	}
	var n int
	var qerr error
	assert.NoError(t, raw.Control(func(fd uintptr) { n, qerr = unix.IoctlGetInt(int(fd), req) }))
	assert.NoError(t, qerr, "ioctl %#x", req)
	return n
}

// A write error (the client reset the connection) is returned by the
// writes after it, and Close still returns.
func TestBatchConnWriteErrorSticks(t *testing.T) {
	peer, raw := tcpPair(t)
	c := newBatchConn(raw)
	c.startBatching()
	require.NoError(t, peer.SetLinger(0))
	require.NoError(t, peer.Close()) // RST

	buf := pattern(32 << 10)
	require.Eventually(t, func() bool {
		_, err := c.Write(buf)
		return err != nil
	}, 30*time.Second, time.Millisecond, "a write fails once the flusher met the reset")
	_, err := c.Write(buf)
	assert.Error(t, err, "and every write after it")
	_ = c.Close() // returns: the flusher does not wait on a broken socket
}

// Before batching starts (the TLS handshake, every HTTP/1.1 connection)
// a write goes straight to the socket.
func TestBatchConnDirectUntilStarted(t *testing.T) {
	peer, raw := tcpPair(t)
	c := newBatchConn(raw)
	n, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	got := make([]byte, 5)
	_, err = io.ReadFull(peer, got)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
	require.NoError(t, c.Close())
}
