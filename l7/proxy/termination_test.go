package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/valyala/fasthttp"
)

func TestClassifyUpstream(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}
	tests := []struct {
		name       string
		err        error
		want       cause
		neverSent  bool
		noResponse bool
	}{
		{"refused", &dialError{err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}, causeConnectRefused, true, false},
		{"dial timeout", &dialError{err: fasthttp.ErrDialTimeout}, causeConnectTimeout, true, false},
		{"other dial error", &dialError{err: refused}, causeConnectError, true, false},
		{"upstream TLS handshake (in the dial)", &dialError{err: fmt.Errorf("tls handshake with x: %w", &tls.CertificateVerificationError{})}, causeConnectError, true, false},
		{"TLS 1.3 certificate refusal after the handshake (h2 client)", &net.OpError{Op: "remote error", Err: tls.AlertError(116)}, causeConnectError, true, false},
		{"other TLS alert after the handshake", &net.OpError{Op: "remote error", Err: tls.AlertError(80)}, causeUpstreamError, false, true},
		{"no free connection (not the server's fault)", fasthttp.ErrNoFreeConns, causeConnectTimeout, true, false},
		{"closed before a response byte", fasthttp.ErrConnectionClosed, causeUpstreamReset, false, true},
		{"reset while writing", &net.OpError{Op: "write", Err: syscall.ECONNRESET}, causeUpstreamReset, false, true},
		{"reset mid-response", fmt.Errorf("error when reading response headers: %w", syscall.ECONNRESET), causeUpstreamReset, false, false},
		{"timeout, nothing read", fasthttp.ErrTimeout, causeResponseTimeout, false, true},
		{"partial headers then EOF", fmt.Errorf("error when reading response headers: %w", io.EOF), causeUpstreamError, false, false},
		{"garbage", errors.New("cannot parse response status line"), causeUpstreamError, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := classifyUpstream(tt.err)
			assert.Equal(t, tt.want.String(), f.cause.String())
			assert.Equal(t, tt.neverSent, f.neverSent, "neverSent")
			assert.Equal(t, tt.noResponse, f.noResponse, "noResponse")
			_, isDial := tt.err.(*dialError)
			assert.Equal(t, isDial || tt.want == causeConnectError, f.connectErr, "connectErr: only a failed connect counts against the server")
		})
	}
	for c := range numCauses {
		assert.NotEqual(t, "unknown", c.String(), "cause %d has a name", c)
	}
}
