package proxy

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// Header names as fasthttp stores them (normalized), kept as package-level
// constants so the hot path does not build them per request.
const (
	hdrConnection         = "Connection"
	hdrKeepAlive          = "Keep-Alive"
	hdrProxyConnection    = "Proxy-Connection"
	hdrProxyAuthenticate  = "Proxy-Authenticate"
	hdrProxyAuthorization = "Proxy-Authorization"
	hdrTE                 = "Te"
	hdrTrailer            = "Trailer"
	hdrTransferEncoding   = "Transfer-Encoding"
	hdrUpgrade            = "Upgrade"
	hdrXForwardedFor      = "X-Forwarded-For"
	hdrXForwardedProto    = "X-Forwarded-Proto"
	hdrXForwardedHost     = "X-Forwarded-Host"
	hdrForwarded          = "Forwarded"
	hdrSetCookie          = "Set-Cookie"
	hdrContentLength      = "Content-Length"
	hdrExpect             = "Expect"
	hdrRetryAfter         = "Retry-After"
)

// hopByHop lists the RFC 9110 §7.6.1 connection-specific headers plus the
// legacy ones proxies conventionally drop. Connection and Transfer-Encoding
// are framed by fasthttp itself and handled separately.
var hopByHop = [...]string{
	hdrKeepAlive, hdrProxyConnection, hdrProxyAuthenticate,
	hdrProxyAuthorization, hdrTE, hdrTrailer, hdrUpgrade,
}

// headerSet is a bitmask of headers seen in one pass over a header block.
type headerSet uint16

const (
	seenHopByHop   headerSet = 1 << iota // any of hopByHop
	seenConnection                       // Connection with tokens other than close
	seenTransferEncoding
	seenForwarding // any of X-Forwarded-For/-Proto/-Host, Forwarded
	seenExpect
)

// scanRequestHeaders reports which classes of headers need work. It scans
// the raw header block as received (the handler has not modified anything
// yet) line by line and looks only at the first byte of most names, so the
// common request — none of these headers — costs one pass and no
// deletions. Walking the parsed headers instead would re-serialize the
// Cookie header on every request.
func scanRequestHeaders(h *fasthttp.RequestHeader) headerSet {
	var s headerSet
	raw := h.RawHeaders()
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, newline)
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			s |= classify(line[:colon])
		}
	}
	if s&seenConnection != 0 {
		// fasthttp turns a bare "Connection: close" into a flag and keeps
		// the header only when it carries other tokens.
		if v := h.Peek(hdrConnection); len(v) == 0 || equalFold(v, "close") {
			s &^= seenConnection
		}
	}
	return s
}

func scanResponseHeaders(h *fasthttp.ResponseHeader) headerSet {
	var s headerSet
	for k := range h.All() {
		s |= classify(k)
	}
	return s
}

// classify maps a header name to its class; it looks at the first byte
// before comparing names because almost every header is none of these.
func classify(k []byte) headerSet {
	if len(k) < 2 {
		return 0
	}
	switch k[0] | 0x20 {
	case 'c':
		if equalFold(k, hdrConnection) {
			return seenConnection
		}
	case 't':
		if equalFold(k, hdrTransferEncoding) {
			return seenTransferEncoding
		}
		if equalFold(k, hdrTE) || equalFold(k, hdrTrailer) {
			return seenHopByHop
		}
	case 'k', 'u':
		if equalFold(k, hdrKeepAlive) || equalFold(k, hdrUpgrade) {
			return seenHopByHop
		}
	case 'p':
		if equalFold(k, hdrProxyConnection) || equalFold(k, hdrProxyAuthenticate) || equalFold(k, hdrProxyAuthorization) {
			return seenHopByHop
		}
	case 'x':
		if equalFold(k, hdrXForwardedFor) || equalFold(k, hdrXForwardedProto) || equalFold(k, hdrXForwardedHost) {
			return seenForwarding
		}
	case 'f':
		if equalFold(k, hdrForwarded) {
			return seenForwarding
		}
	case 'e':
		if equalFold(k, hdrExpect) {
			return seenExpect
		}
	}
	return 0
}

// Separators for bytes.Cut over raw header blocks and value lists.
var (
	newline = []byte{'\n'}
	comma   = []byte{','}
)

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// connectionTokens calls f for each comma-separated token of a Connection
// header value other than "close" and "keep-alive"; those tokens name more
// hop-by-hop headers (RFC 9110 §7.6.1).
func connectionTokens(v []byte, f func(name []byte)) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, comma)
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || equalFold(tok, "close") || equalFold(tok, "keep-alive") {
			continue
		}
		f(tok)
	}
}

// stripRequestHopByHop removes connection-specific headers from a request
// about to be forwarded. It keeps the client's wish to close its own
// connection out of the upstream request: the upstream connection is ours
// and stays pooled.
func stripRequestHopByHop(h *fasthttp.RequestHeader, seen headerSet) {
	if seen&seenConnection != 0 {
		connectionTokens(h.Peek(hdrConnection), func(name []byte) {
			h.DelBytes(name)
		})
	}
	if seen&seenHopByHop != 0 {
		for _, name := range hopByHop {
			h.Del(name)
		}
	}
	if seen&seenConnection != 0 {
		h.Del(hdrConnection)
	}
	if seen&seenTransferEncoding != 0 {
		// The body is already de-chunked; fasthttp frames it by length.
		h.Del(hdrTransferEncoding)
	}
	if seen&seenExpect != 0 {
		// fasthttp answered "100 Continue" and read the body already; the
		// app server must not be asked to expect anything.
		h.Del(hdrExpect)
	}
	if h.ConnectionClose() {
		h.ResetConnectionClose()
	}
	if !h.IsHTTP11() {
		// An HTTP/1.0 client's request goes upstream as HTTP/1.1 so the
		// upstream connection stays pooled; the client's own connection
		// semantics were captured before this call.
		h.SetProtocol("HTTP/1.1")
	}
}

// stripResponseHopByHop is stripRequestHopByHop for the upstream response.
// A "Connection: close" from the app server is about the upstream
// connection, which fasthttp already closes; the client connection stays.
func stripResponseHopByHop(h *fasthttp.ResponseHeader, seen headerSet) {
	if seen&seenConnection != 0 {
		connectionTokens(h.Peek(hdrConnection), func(name []byte) {
			h.DelBytes(name)
		})
		h.Del(hdrConnection)
	}
	if seen&seenHopByHop != 0 {
		for _, name := range hopByHop {
			h.Del(name)
		}
	}
	if h.ConnectionClose() {
		h.ResetConnectionClose()
	}
}

// trustedNets is the set of peer addresses whose incoming forwarding headers
// are kept (another proxy in front of us); from anyone else they are
// replaced, because a client could otherwise forge its address.
type trustedNets []netip.Prefix

func (t trustedNets) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Canonical header keys for SetCanonical/AddBytesKV, which then skip
// normalizing the name per request.
var (
	keyXForwardedFor   = []byte(hdrXForwardedFor)
	keyXForwardedProto = []byte(hdrXForwardedProto)
	keyXForwardedHost  = []byte(hdrXForwardedHost)
	keyForwarded       = []byte(hdrForwarded)
	valueHTTP          = []byte("http")
	valueHTTPS         = []byte("https")
)

// setForwarded writes X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host
// and Forwarded (RFC 7239) from the connection. When the peer is trusted the
// incoming X-Forwarded-For and Forwarded chains are extended and the incoming
// -Proto/-Host kept; otherwise every incoming forwarding header is dropped
// first. host is the request's authority as routed (the absolute-form URI's
// host wins over the Host header, RFC 9112 §3.2.2). buf is scratch space
// reused across requests; the grown buffer is returned.
func setForwarded(h *fasthttp.RequestHeader, seen headerSet, client netip.Addr, host []byte, tls, trusted bool, buf []byte) []byte {
	client = client.Unmap()
	proto := valueHTTP
	if tls {
		proto = valueHTTPS
	}

	// Without incoming forwarding headers (the common case) the new ones
	// are appended without searching for an existing one.
	set := h.AddBytesKV
	var prevXFF, prevFwd []byte
	keepProto, keepHost := false, false
	if seen&seenForwarding != 0 {
		set = h.SetCanonical
		if trusted {
			prevXFF = h.PeekBytes(keyXForwardedFor)
			prevFwd = h.PeekBytes(keyForwarded)
			keepProto = len(h.PeekBytes(keyXForwardedProto)) > 0
			keepHost = len(h.PeekBytes(keyXForwardedHost)) > 0
		} else {
			h.DelBytes(keyXForwardedFor)
			h.DelBytes(keyForwarded)
			h.DelBytes(keyXForwardedProto)
			h.DelBytes(keyXForwardedHost)
		}
	}

	// One scratch buffer holds each value in turn; the header copies it.
	buf = buf[:0]
	if len(prevXFF) > 0 {
		buf = append(buf, prevXFF...)
		buf = append(buf, ", "...)
	}
	buf = client.AppendTo(buf)
	set(keyXForwardedFor, buf)

	buf = buf[:0]
	if len(prevFwd) > 0 {
		buf = append(buf, prevFwd...)
		buf = append(buf, ", "...)
	}
	buf = appendForwardedElem(buf, client, proto, host)
	set(keyForwarded, buf)

	if !keepProto {
		set(keyXForwardedProto, proto)
	}
	if !keepHost && len(host) > 0 {
		set(keyXForwardedHost, host)
	}
	return buf
}

// appendForwardedElem appends one RFC 7239 forwarded-element. IPv6 nodes and
// hosts with a port are not tokens and must be quoted.
func appendForwardedElem(buf []byte, client netip.Addr, proto, host []byte) []byte {
	buf = append(buf, "for="...)
	if client.Is6() {
		buf = append(buf, `"[`...)
		buf = client.AppendTo(buf)
		buf = append(buf, `]"`...)
	} else {
		buf = client.AppendTo(buf)
	}
	buf = append(buf, ";proto="...)
	buf = append(buf, proto...)
	if len(host) > 0 {
		buf = append(buf, ";host="...)
		if isToken(host) {
			buf = append(buf, host...)
		} else {
			buf = appendQuoted(buf, host)
		}
	}
	return buf
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

func appendQuoted(buf, b []byte) []byte {
	buf = append(buf, '"')
	for _, c := range b {
		if c == '"' || c == '\\' {
			buf = append(buf, '\\')
		}
		buf = append(buf, c)
	}
	return append(buf, '"')
}
