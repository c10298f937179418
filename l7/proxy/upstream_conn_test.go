package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/internal/testcert"
)

// A TLS 1.3 server that refuses the client certificate and resets the
// connection at once may do so before the first request is written: the
// write fails, and the alert the server sent before its reset, still
// queued, says why. The connection reports the refused handshake, as it
// does when the alert is what the first read finds.
func TestRefusalFoundAfterFailedWrite(t *testing.T) {
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	other, err := testcert.NewCA()
	require.NoError(t, err)
	dir := t.TempDir()
	serverCert, err := ca.KeyPair(dir, "app", "127.0.0.1")
	require.NoError(t, err)
	clientCert, err := other.KeyPair(dir, "proxy", "xlb-proxy")
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	refused := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			refused <- err
			return
		}
		tc := tls.Server(c, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool, // not the client's CA
			MinVersion:   tls.VersionTLS13,
		})
		herr := tc.Handshake()
		_ = c.(*net.TCPConn).SetLinger(0) // close with a reset
		_ = c.Close()
		refused <- herr
	}()

	d := &upstreamDialer{addr: ln.Addr().String(), timeout: 5 * time.Second, tls: &tls.Config{
		RootCAs:      ca.Pool,
		ServerName:   "127.0.0.1",
		Certificates: []tls.Certificate{clientCert},
		MinVersion:   tls.VersionTLS13,
	}}
	conn, err := d.dial(d.addr, 5*time.Second)
	require.NoError(t, err, "the client's side of a TLS 1.3 handshake ends before the server checks its certificate")
	t.Cleanup(func() { _ = conn.Close() })
	require.Error(t, <-refused, "the server refused the certificate")
	requireReset(t, conn)

	_, err = conn.Write([]byte("POST /checkout/pay HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\norder"))
	require.Error(t, err, "the write meets the reset")
	var de *dialError
	require.True(t, errors.As(upstreamError(conn.LocalAddr(), err), &de), "%v", upstreamError(conn.LocalAddr(), err))
	assert.Contains(t, de.Error(), "tls handshake with "+d.addr)
	assert.Contains(t, de.Error(), "remote error: tls:")
}

// requireReset waits until the TCP socket under c, an upstreamConn, has
// met a reset (the kernel's state of it is TCP_CLOSE).
func requireReset(t *testing.T, c net.Conn) {
	t.Helper()
	raw := c.LocalAddr().(*connAddr).c.raw
	require.Eventually(t, func() bool {
		var state uint8
		_ = raw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				state = info.State
			}
		})
		return state == unix.BPF_TCP_CLOSE
	}, 30*time.Second, 5*time.Millisecond, "the connection was reset")
}

func TestHandshakeRefusalAlerts(t *testing.T) {
	for a, want := range map[tls.AlertError]bool{
		42: true, 43: true, 44: true, 45: true, 46: true, 48: true, 49: true, 116: true, // certificate and access
		40: false, 47: false, 50: false, 51: false, 80: false, 90: false, 0: false, // handshake_failure, illegal_parameter, decode/decrypt, internal_error, user_canceled, close_notify
	} {
		assert.Equal(t, want, handshakeRefusal(a), "alert %d", a)
	}
	assert.False(t, handshakeRefusal(errors.New("bad certificate")), "only an alert value counts")
	// What crypto/tls returns for a received alert is its unexported alert
	// type (tls.AlertError is QUIC's): the same integer kind.
}
