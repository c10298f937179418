package proxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	b := <-accepted
	require.NotNil(t, b)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// wrapped hides the *net.TCPConn, as a TLS or counting wrapper would.
type wrapped struct{ net.Conn }

// TestRelayMovesEveryByte sends 4 MiB of random bytes from a client
// through relay to a server and checks they arrive unchanged and counted,
// between two sockets (read and write, then splice as the stream goes
// on) and over the copy a wrapped connection takes.
func TestRelayMovesEveryByte(t *testing.T) {
	payload := make([]byte, 4<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		wrap bool
	}{{"sockets", false}, {"wrapped connection", true}} {
		t.Run(tt.name, func(t *testing.T) {
			client, fromClient := tcpPair(t) // client writes, the relay reads fromClient
			toServer, server := tcpPair(t)   // the relay writes toServer, server reads
			var src, dst net.Conn = fromClient, toServer
			if tt.wrap {
				src, dst = wrapped{fromClient}, wrapped{toServer}
			}
			var last, count atomic.Int64
			last.Store(time.Now().UnixNano())
			done := make(chan error, 1)
			go func() { done <- relay(dst, src, time.Minute, &last, &count) }()

			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(server)
				got <- b
			}()
			// Many writes of varied size, like a session's messages.
			for off := 0; off < len(payload); {
				n := min(1+off%9000, len(payload)-off)
				_, err := client.Write(payload[off : off+n])
				require.NoError(t, err)
				off += n
			}
			require.NoError(t, client.CloseWrite())
			select {
			case err := <-done:
				require.NoError(t, err, "the relay ends cleanly when its source ends")
			case <-time.After(60 * time.Second):
				t.Fatal("relay did not end after its source closed")
			}
			require.NoError(t, toServer.CloseWrite())
			b := <-got
			assert.True(t, bytes.Equal(payload, b), "bytes arrive unchanged (got %d of %d)", len(b), len(payload))
			assert.Equal(t, int64(len(payload)), count.Load())
		})
	}
}

// TestSockRelayTakesUnwrappedSockets: between two plain TCP sockets the
// zero-copy path handles the relay itself (it does not hand it to the
// copy loop).
func TestSockRelayTakesUnwrappedSockets(t *testing.T) {
	client, fromClient := tcpPair(t)
	toServer, server := tcpPair(t)
	var last, count atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan error, 1)
	go func() { done <- sockRelay(toServer, fromClient, time.Minute, &last, &count) }()
	_, err := client.Write([]byte("SELECT 1"))
	require.NoError(t, err)
	buf := make([]byte, 8)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadFull(server, buf)
	require.NoError(t, err)
	assert.Equal(t, "SELECT 1", string(buf))
	require.NoError(t, client.CloseWrite())
	require.NoError(t, <-done, "spliced until the source ended, not refused with errNoPipe")
	assert.Equal(t, int64(8), count.Load())
}

// TestSockRelayPicksCopyOrSplice: a session of small queries and answers
// stays on read and write (no pipe is ever opened) and every message
// arrives without waiting for a later byte; a stream of large writes turns
// the direction to splice. Both deliver every byte in order.
func TestSockRelayPicksCopyOrSplice(t *testing.T) {
	for _, tt := range []struct {
		name     string
		msgs     int
		size     int
		wantPipe bool
	}{{"small messages", 2000, 120, false}, {"stream", 64, 64 << 10, true}} {
		t.Run(tt.name, func(t *testing.T) {
			client, fromClient := tcpPair(t)
			toServer, server := tcpPair(t)
			raw, err := toServer.SyscallConn()
			require.NoError(t, err)
			srcRaw, err := fromClient.SyscallConn()
			require.NoError(t, err)
			var last, count atomic.Int64
			last.Store(time.Now().UnixNano())
			m := newMover(raw, &count)
			defer m.closePipe()
			done := make(chan error, 1)
			// No deadline within the test: a message left unread would
			// wait for good, not until the next slice.
			go func() { done <- m.run(fromClient, srcRaw, time.Hour, time.Hour, &last) }()

			sent := make([]byte, 0, tt.msgs*tt.size)
			got := make([]byte, tt.size)
			require.NoError(t, server.SetReadDeadline(time.Now().Add(60*time.Second)))
			for i := range tt.msgs {
				msg := bytes.Repeat([]byte{byte('a' + i%26)}, tt.size)
				sent = append(sent, msg...)
				_, err := client.Write(msg)
				require.NoError(t, err)
				// Each message is read whole at the server before the
				// next is sent: a relay that waited on the poller with
				// bytes still unread would stall here until the test's
				// deadline, a failure.
				_, err = io.ReadFull(server, got)
				require.NoError(t, err, "message %d", i)
				require.Equal(t, msg, got, "message %d", i)
			}
			require.NoError(t, client.CloseWrite())
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(60 * time.Second):
				t.Fatal("relay did not end after its source closed")
			}
			assert.Equal(t, int64(len(sent)), count.Load())
			assert.Equal(t, tt.wantPipe, m.pr >= 0, "pipe opened (splice in use)")
		})
	}
}

// TestSockRelaySeesFINBehindData: a client's last bytes and its FIN,
// both in the socket when the relay reads (one wake-up of the poller for
// both), end the relay: the FIN is found by the read after the data, not
// at the next read deadline. The relay runs without a deadline within the
// test, so a missed FIN fails it instead of costing a second.
func TestSockRelaySeesFINBehindData(t *testing.T) {
	client, fromClient := tcpPair(t)
	toServer, server := tcpPair(t)
	raw, err := toServer.SyscallConn()
	require.NoError(t, err)
	srcRaw, err := fromClient.SyscallConn()
	require.NoError(t, err)
	_, err = client.Write([]byte("Xbye"))
	require.NoError(t, err)
	require.NoError(t, client.CloseWrite())
	// The FIN has arrived (the socket is in CLOSE_WAIT), behind the data.
	require.Eventually(t, func() bool {
		var st uint8
		_ = srcRaw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				st = info.State
			}
		})
		return st == unix.BPF_TCP_CLOSE_WAIT
	}, 30*time.Second, time.Millisecond)

	var last, count atomic.Int64
	last.Store(time.Now().UnixNano())
	m := newMover(raw, &count)
	defer m.closePipe()
	done := make(chan error, 1)
	go func() { done <- m.run(fromClient, srcRaw, time.Hour, time.Hour, &last) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the relay missed the FIN behind the data")
	}
	assert.Equal(t, int64(4), count.Load())
	buf := make([]byte, 4)
	require.NoError(t, server.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadFull(server, buf)
	require.NoError(t, err)
	assert.Equal(t, "Xbye", string(buf))
}

// TestRelayIdle: a pair with no byte in either direction for idle ends
// with a timeout, not before idle has passed.
func TestRelayIdle(t *testing.T) {
	_, fromClient := tcpPair(t)
	toServer, _ := tcpPair(t)
	var last, count atomic.Int64
	start := time.Now()
	last.Store(start.UnixNano())
	err := relay(toServer, fromClient, 200*time.Millisecond, &last, &count)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "never closed before idle")
	assert.Zero(t, count.Load())
}

// BenchmarkRelayMessage is one small message and its answer through
// sockRelay in each direction, as a database query costs.
func BenchmarkRelayMessage(b *testing.B) {
	pair := func() (*net.TCPConn, *net.TCPConn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		ch := make(chan net.Conn, 1)
		go func() { c, _ := ln.Accept(); ch <- c }()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		return a.(*net.TCPConn), (<-ch).(*net.TCPConn)
	}
	client, fromClient := pair()
	toServer, server := pair()
	defer client.Close()
	defer server.Close()
	var last, up, down atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() { _ = sockRelay(toServer, fromClient, time.Hour, &last, &up) }()
	go func() { _ = sockRelay(fromClient, toServer, time.Hour, &last, &down) }()
	go func() { _, _ = io.Copy(server, server) }() // the server echoes
	msg := make([]byte, 100)
	buf := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// Both sockets of a forwarded connection send small messages at once
// (TCP_NODELAY): a query must not wait for Nagle's timer.
func TestTCPForwardedSocketsNoDelay(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "0"), servers)
	c, br, name := dialGreeting(t, tp.addr)
	require.NotEmpty(t, name)
	echo(t, c, br, "ping")
	tp.tcp.mu.Lock()
	defer tp.tcp.mu.Unlock()
	require.Len(t, tp.tcp.conns, 1)
	for tc := range tp.tcp.conns {
		for side, conn := range map[string]net.Conn{"client": tc.client, "server": tc.server} {
			raw, err := conn.(*net.TCPConn).SyscallConn()
			require.NoError(t, err)
			var v int
			var serr error
			require.NoError(t, raw.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) }))
			require.NoError(t, serr)
			assert.Equal(t, 1, v, "TCP_NODELAY on the %s side", side)
		}
	}
}
