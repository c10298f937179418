package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
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

	// The peer closes: the read that sends the held write ends with EOF or
	// a reset, never a hang.
	require.NoError(t, peer.Close())
	_, err = wb.Write([]byte("late"))
	require.NoError(t, err)
	_, err = wb.Read(buf)
	require.Error(t, err)
	var op *net.OpError
	if !errors.Is(err, io.EOF) {
		require.True(t, errors.As(err, &op), "%v", err)
		assert.Contains(t, []string{"read", "write"}, op.Op)
	}
}
