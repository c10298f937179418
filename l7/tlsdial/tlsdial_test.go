package tlsdial

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/testcert"
)

// server is a TLS listener on loopback offering alpn, with a certificate
// for 127.0.0.1 from ca; every accepted connection completes its handshake.
func server(t *testing.T, ca *testcert.CA, alpn ...string) string {
	t.Helper()
	kp, err := ca.KeyPair(t.TempDir(), "s", "127.0.0.1")
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: alpn})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return ln.Addr().String()
}

func TestDial(t *testing.T) {
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	other, err := testcert.NewCA()
	require.NoError(t, err)
	h2 := server(t, ca, "h2")
	noALPN := server(t, ca)
	stranger := server(t, other, "h2")
	tc := func(alpn ...string) *tls.Config {
		return &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: alpn}
	}

	c, err := Dial(t.Context(), h2, tc("h2"), "h2", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	_ = c.Close()

	_, err = Dial(t.Context(), noALPN, tc("h2"), "h2", 5*time.Second)
	assert.ErrorContains(t, err, `the server selected "" by ALPN, not "h2"`, "no silent fall back to HTTP/1.1")
	c, err = Dial(t.Context(), noALPN, tc("http/1.1"), "", 5*time.Second)
	require.NoError(t, err, "HTTP/1.1 needs no ALPN")
	_ = c.Close()

	_, err = Dial(t.Context(), stranger, tc("h2"), "h2", 5*time.Second)
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr)
	assert.ErrorContains(t, err, "tls handshake with "+stranger)

	// A server that accepts TCP and never answers the ClientHello: the
	// handshake ends with the dial's timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	_, err = Dial(t.Context(), silent.Addr().String(), tc("h2"), "h2", 100*time.Millisecond)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
