package proxy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

func TestForwardedElement(t *testing.T) {
	tests := []struct {
		name   string
		client string
		proto  string
		host   string
		want   string
	}{
		{"ipv4 token host", "192.0.2.1", "http", "shop.example", "for=192.0.2.1;proto=http;host=shop.example"},
		{"ipv6 is quoted and bracketed", "2001:db8::1", "https", "shop.example", `for="[2001:db8::1]";proto=https;host=shop.example`},
		{"v4-mapped v6 is v4", "::ffff:192.0.2.1", "http", "", "for=192.0.2.1;proto=http"},
		{"host with port is quoted", "192.0.2.1", "http", "shop.example:8080", `for=192.0.2.1;proto=http;host="shop.example:8080"`},
		{"quote and backslash escaped", "192.0.2.1", "http", `a"b\c`, `for=192.0.2.1;proto=http;host="a\"b\\c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := netip.MustParseAddr(tt.client).Unmap()
			got := appendForwardedElem(nil, a, []byte(tt.proto), []byte(tt.host))
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestConnectionTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"close", nil},
		{"keep-alive", nil},
		{"Keep-Alive, X-A", []string{"X-A"}},
		{" x-a ,, X-B , close", []string{"x-a", "X-B"}},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got []string
			connectionTokens([]byte(tt.in), func(b []byte) { got = append(got, string(b)) })
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestScanRequestHeaders(t *testing.T) {
	tests := []struct {
		name string
		hdrs string
		want headerSet
	}{
		{"plain", "Accept: */*\r\nCookie: a=b\r\n", 0},
		{"hop-by-hop", "Keep-Alive: 5\r\n", seenHopByHop},
		{"upgrade", "upgrade: websocket\r\n", seenHopByHop},
		{"connection close only is a flag, not a header", "Connection: close\r\n", 0},
		{"connection with tokens", "Connection: keep-alive, X-A\r\n", seenConnection},
		{"forwarding", "x-forwarded-for: 1.2.3.4\r\n", seenForwarding},
		{"forwarded", "Forwarded: for=1.2.3.4\r\n", seenForwarding},
		{"transfer-encoding", "Transfer-Encoding: chunked\r\n", seenTransferEncoding},
		{"everything", "Te: trailers\r\nConnection: X-A\r\nX-Forwarded-Proto: https\r\n", seenHopByHop | seenConnection | seenForwarding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req fasthttp.Request
			parseRequest(t, "POST / HTTP/1.1\r\nHost: h\r\n"+tt.hdrs+"\r\n", &req)
			assert.Equal(t, tt.want, scanRequestHeaders(&req.Header))
		})
	}
}

func TestConflictingFraming(t *testing.T) {
	tests := []struct {
		name string
		hdrs string
		want bool
	}{
		{"content-length only", "Content-Length: 0\r\n", false},
		{"chunked only", "Transfer-Encoding: chunked\r\n", false},
		{"connection close only", "Connection: close\r\nContent-Length: 0\r\n", false},
		{"both", "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", true},
		{"both, odd case", "content-LENGTH: 0\r\ntransfer-encoding: chunked\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req fasthttp.Request
			parseRequest(t, "POST / HTTP/1.1\r\nHost: h\r\n"+tt.hdrs+"\r\n", &req)
			require.NotEmpty(t, req.Header.RawHeaders())
			assert.Equal(t, tt.want, conflictingFraming(&req.Header))
		})
	}
}
