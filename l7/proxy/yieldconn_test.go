package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A yieldConn passes every byte both ways unchanged, also with a reader
// and a writer on different goroutines (a tunnel), where the race detector
// checks its write-then-read bookkeeping.
func TestYieldConnPassesBytesBothWays(t *testing.T) {
	peer, raw := tcpPair(t)
	c := &yieldConn{Conn: raw}
	want := pattern(1 << 20)

	var wg sync.WaitGroup
	wg.Add(2)
	var fromPeer []byte
	go func() { // peer → c: read by c on this goroutine
		defer wg.Done()
		fromPeer, _ = io.ReadAll(io.LimitReader(c, int64(len(want))))
	}()
	go func() { // the peer sends want
		defer wg.Done()
		_, err := peer.Write(want)
		assert.NoError(t, err)
	}()
	// c → peer, interleaved with the reads above.
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want))))
		got <- b
	}()
	for off := 0; off < len(want); off += 4096 {
		_, err := c.Write(want[off : off+4096])
		require.NoError(t, err)
	}
	wg.Wait()
	assert.True(t, bytes.Equal(want, fromPeer), "peer → yieldConn unchanged")
	assert.True(t, bytes.Equal(want, <-got), "yieldConn → peer unchanged")
}

// The listener wraps plain connections (TLS ones pass as they are: the TLS
// tests' X-Forwarded-Proto https checks fail if fasthttp stops seeing
// them as TLS); relay sees the socket under a yieldConn, so a tunnel
// between two of them keeps the splice path.
func TestYieldListenerAndUnwrap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	yl := yieldListener{ln}
	t.Cleanup(func() { _ = yl.Close() })
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	c, err := yl.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	y, ok := c.(*yieldConn)
	require.True(t, ok, "a plain connection comes wrapped")
	_, ok = unwrapYield(y).(*net.TCPConn)
	assert.True(t, ok, "unwrapYield gives relay the TCP socket")
	other := wrapped{y}
	assert.Equal(t, net.Conn(other), unwrapYield(other), "anything else stays as it is")
}
