package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// fasthttp's parser already rejects, with 400 before the handler runs:
// duplicate Content-Length (even with equal values), a non-numeric
// Content-Length, more than one Transfer-Encoding header, any transfer coding
// other than chunked or identity (so "gzip, chunked" and "chunked, x"),
// Transfer-Encoding on HTTP/1.0, whitespace before the colon and invalid
// header bytes. What it accepts is Content-Length together with
// Transfer-Encoding: chunked — it lets chunked win (RFC 9112 §6.3) and closes
// the connection afterwards. A proxy must not pass such a request on: the app
// server behind may frame it by Content-Length and read the rest of the body
// as a second, smuggled request. So xlb rejects it with 400 here.

var (
	rawContentLength    = []byte("content-length")
	rawTransferEncoding = []byte("transfer-encoding")
)

// conflictingFraming reports whether the request carried both
// Content-Length and Transfer-Encoding. By the time the handler runs
// fasthttp has de-chunked the body and rewritten the parsed framing to a
// plain Content-Length, but it has also marked the connection for closing;
// so the raw header block is scanned only for requests that are about to
// close, and the common keep-alive request never pays for it.
func conflictingFraming(h *fasthttp.RequestHeader) bool {
	if !h.ConnectionClose() {
		return false
	}
	var cl, te bool
	raw := h.RawHeaders()
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, newline)
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		cl = cl || bytes.EqualFold(name, rawContentLength)
		te = te || bytes.EqualFold(name, rawTransferEncoding)
	}
	return cl && te
}
