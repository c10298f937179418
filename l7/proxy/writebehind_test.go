package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeBehindPair is a writeBehindConn to a real loopback peer.
func writeBehindPair(t *testing.T) (*writeBehindConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	peer, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })
	wb, err := newWriteBehindConn(c.(*net.TCPConn))
	require.NoError(t, err)
	t.Cleanup(func() { _ = wb.Close() })
	return wb.(*writeBehindConn), peer
}

func TestWriteBehindConn(t *testing.T) {
	wb, peer := writeBehindPair(t)
	br := bufio.NewReader(peer)

	// A small write waits for the read; the read sends it, then gets the
	// answer.
	n, err := wb.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	require.NoError(t, err)
	assert.Equal(t, 18, n)
	assert.NotEmpty(t, wb.pending, "held until the read")
	served := make(chan struct{})
	go func() {
		defer close(served)
		line, _ := br.ReadString('\n')
		_, _ = br.ReadString('\n')
		_, _ = peer.Write([]byte("answer to " + line))
	}()
	buf := make([]byte, 64)
	n, err = wb.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "answer to GET / HTTP/1.1\r\n", string(buf[:n]))
	<-served

	// Two writes before a read keep their order; a large one is not held.
	_, err = wb.Write([]byte("one,"))
	require.NoError(t, err)
	big := strings.Repeat("x", writeBehindMax+1)
	_, err = wb.Write([]byte(big))
	require.NoError(t, err)
	assert.Empty(t, wb.pending)
	got := make([]byte, 4+len(big))
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	assert.Equal(t, "one,"+big, string(got))

	// ReadFrom (a streamed body) sends what was held first.
	_, err = wb.Write([]byte("head,"))
	require.NoError(t, err)
	_, err = wb.ReadFrom(strings.NewReader("body"))
	require.NoError(t, err)
	got = make([]byte, 9)
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	assert.Equal(t, "head,body", string(got))

	// No answer before the deadline: the error a socket's read gives.
	_, err = wb.Write([]byte("quiet?"))
	require.NoError(t, err)
	require.NoError(t, wb.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = wb.Read(buf)
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne))
	assert.True(t, ne.Timeout())
	got = make([]byte, 6)
	_, err = io.ReadFull(br, got)
	require.NoError(t, err)
	assert.Equal(t, "quiet?", string(got), "the held write went out all the same")
	require.NoError(t, wb.SetReadDeadline(time.Time{}))

	// The peer closes while the connection is idle: the read that sends
	// the held write ends with io.EOF (its FIN, or the reset the late
	// write draws), never a hang, as a read after a plain write would.
	require.NoError(t, peer.Close())
	time.Sleep(10 * time.Millisecond) // the FIN arrives while idle (not an assertion on time)
	_, err = wb.Write([]byte("late"))
	require.NoError(t, err)
	_, err = wb.Read(buf)
	assert.ErrorIs(t, err, io.EOF)
}

// An app server that closes an idle keep-alive connection (its FIN seen,
// or not, before the next request goes out on it) costs a GET nothing:
// the request goes again on a new connection, as HTTP clients do.
func TestServerClosedIdleConnection(t *testing.T) {
	var closed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	text := strings.NewReplacer("{c1}", srv.Listener.Addr().String(), "{c2}", srv.Listener.Addr().String()).Replace(shopConfig)
	tp := startProxy(t, text, shopServers(t, nil))
	c := client(t)
	for i := range 5 {
		resp, body := do(t, c, "GET", tp.url+"/checkout/cart", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
		n := closed.Load()
		require.Eventually(t, func() bool { return closed.Load() > n }, 30*time.Second, 5*time.Millisecond, "the server closed the idle connection")
	}
}
