package proxy

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzHeaderRewrite feeds arbitrary header blocks through the request
// rewrite and checks its invariants: no hop-by-hop header survives, nor any
// header the Connection header named, and an untrusted client's forwarding
// headers are exactly the ones built from the connection.
//
//	go test -run XXX -fuzz FuzzHeaderRewrite -fuzztime 30s ./l7/proxy/
func FuzzHeaderRewrite(f *testing.F) {
	for _, seed := range []string{
		"Accept: */*\r\n",
		"Connection: keep-alive, X-A\r\nX-A: 1\r\nKeep-Alive: 5\r\n",
		"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil\r\n",
		"Te: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\nProxy-Connection: close\r\n",
		"Connection: close\r\n",
		"connection: X-Forwarded-For\r\n",
		"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n",
	} {
		f.Add(seed)
	}
	client := netip.MustParseAddr("192.0.2.7")
	f.Fuzz(func(t *testing.T, hdrs string) {
		var req fasthttp.Request
		raw := "POST /x HTTP/1.1\r\nHost: shop\r\n" + hdrs + "\r\n"
		if err := req.Header.Read(bufioReader(raw)); err != nil {
			return // the parser refuses it: it never reaches the rewrite
		}
		h := &req.Header
		var named [][]byte
		if v := h.Peek(hdrConnection); len(v) > 0 {
			connectionTokens(v, func(n []byte) { named = append(named, bytes.Clone(n)) })
		}
		seen := scanRequestHeaders(h)
		stripRequestHopByHop(h, seen)
		setForwarded(h, seen, client, h.Host(), false, false, nil)

		for _, name := range hopByHop {
			if v := h.Peek(name); len(v) > 0 {
				t.Fatalf("hop-by-hop %s survived: %q", name, v)
			}
		}
		for _, name := range []string{hdrConnection, hdrTransferEncoding, hdrExpect} {
			if v := h.Peek(name); len(v) > 0 {
				t.Fatalf("%s survived: %q", name, v)
			}
		}
		if h.ConnectionClose() {
			t.Fatal("client's Connection: close would reach the app server")
		}
		for _, n := range named {
			switch {
			case equalFold(n, hdrXForwardedFor), equalFold(n, hdrXForwardedProto),
				equalFold(n, hdrXForwardedHost), equalFold(n, hdrForwarded):
				continue // named, then set afresh from the connection
			}
			if v := h.PeekBytes(n); len(v) > 0 {
				t.Fatalf("header %q named by Connection survived: %q", n, v)
			}
		}
		if got := h.PeekAll(hdrXForwardedFor); len(got) != 1 || string(got[0]) != "192.0.2.7" {
			t.Fatalf("X-Forwarded-For = %q", got)
		}
		// The host may carry folded whitespace (fasthttp turns obs-fold into
		// spaces, as RFC 9112 §5.2 allows); the element must quote it.
		wantFwd := appendForwardedElem(nil, client, valueHTTP, h.Host())
		if got := h.PeekAll(hdrForwarded); len(got) != 1 || !bytes.Equal(got[0], wantFwd) {
			t.Fatalf("Forwarded = %q, want %q", got, wantFwd)
		}
		if got := h.PeekAll(hdrXForwardedProto); len(got) != 1 || string(got[0]) != "http" {
			t.Fatalf("X-Forwarded-Proto = %q", got)
		}
	})
}
