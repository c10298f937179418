// Package proxyproto writes PROXY protocol version 2 headers (HAProxy's
// binary preamble, https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt),
// which xlb sends at the start of a forwarded TCP connection so that a
// server behind it (a PROXY-aware PostgreSQL pooler, HAProxy, another
// proxy) sees the client's address instead of xlb's.
//
// Only writing is here: xlb never accepts the PROXY protocol.
package proxyproto

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// signature starts every version 2 header.
var signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// Version 2 in the high nibble, the command in the low one.
const (
	cmdLocal = 0x20 // the proxy's own connection (health checks): no addresses
	cmdProxy = 0x21 // a relayed connection: the addresses follow
)

// Address family (high nibble) and transport (low nibble).
const (
	famUnspec = 0x00
	famTCP4   = 0x11
	famTCP6   = 0x21
)

// Header is the version 2 header of a connection relayed for a client at
// src that connected to dst (the proxy's listening address). Both must be
// TCP addresses; otherwise (or when either is not an IP) the header is a
// LOCAL one, which tells the server to use the connection's own
// addresses. An IPv4 client of a dual-stack listener is sent as IPv4.
func Header(src, dst net.Addr) []byte {
	s, sok := tcpAddrPort(src)
	d, dok := tcpAddrPort(dst)
	if !sok || !dok {
		return Local()
	}
	sa, da := s.Addr().Unmap(), d.Addr().Unmap()
	if sa.Is4() != da.Is4() {
		// Mixed families cannot share one header: send both as IPv6.
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	var b []byte
	if sa.Is4() {
		b = start(cmdProxy, famTCP4, 12)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = start(cmdProxy, famTCP6, 36)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, s.Port())
	return binary.BigEndian.AppendUint16(b, d.Port())
}

// Local is the header of a connection the proxy makes for itself, such as
// a health check: a server that demands the PROXY protocol on every
// connection accepts it and uses the connection's real addresses.
func Local() []byte { return start(cmdLocal, famUnspec, 0) }

func start(cmd, fam byte, n uint16) []byte {
	b := make([]byte, 0, 16+int(n))
	b = append(b, signature[:]...)
	b = append(b, cmd, fam)
	return binary.BigEndian.AppendUint16(b, n)
}

func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := t.AddrPort()
	return ap, ap.Addr().IsValid()
}
