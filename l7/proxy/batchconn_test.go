package proxy

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// A client that reads nothing holds the writer back: no more than
// maxBatchPending bytes (plus the one write that crossed it) wait in the
// proxy, and once the client reads, everything arrives.
func TestBatchConnBackPressure(t *testing.T) {
	peer, raw := tcpPair(t)
	c := newBatchConn(raw)
	c.startBatching()

	const chunk = 16 << 10
	want := pattern(16 << 20) // far more than the socket buffers hold
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(want); off += chunk {
			if _, err := c.Write(want[off : off+chunk]); err != nil {
				done <- err
				return
			}
		}
		done <- c.Close()
	}()
	pending := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending)
	}
	require.Eventually(t, func() bool { return pending() >= maxBatchPending }, 30*time.Second, time.Millisecond,
		"the socket fills and the bytes wait in the batch")
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
