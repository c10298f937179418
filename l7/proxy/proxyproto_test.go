package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxyHeader is a parsed PROXY protocol v2 header.
type proxyHeader struct {
	local    bool // the LOCAL command: no addresses
	src, dst netip.AddrPort
}

// readProxyV2 parses a PROXY protocol v2 header from r, as a server that
// demands one does, written from the specification independently of the
// proxy's writer: signature, version 2, command, family, length, then
// the addresses and ports for TCP over IPv4 or IPv6.
func readProxyV2(r io.Reader) (proxyHeader, error) {
	var h proxyHeader
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, fmt.Errorf("read header: %w", err)
	}
	if !bytes.Equal(fixed[:12], []byte("\r\n\r\n\x00\r\nQUIT\n")) {
		return h, errors.New("no PROXY v2 signature")
	}
	if fixed[12]>>4 != 2 {
		return h, fmt.Errorf("version %d", fixed[12]>>4)
	}
	body := make([]byte, binary.BigEndian.Uint16(fixed[14:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return h, fmt.Errorf("read addresses: %w", err)
	}
	switch cmd := fixed[12] & 0xf; cmd {
	case 0:
		h.local = true
		return h, nil
	case 1:
	default:
		return h, fmt.Errorf("command %d", cmd)
	}
	var alen int
	switch fixed[13] {
	case 0x11:
		alen = 4
	case 0x21:
		alen = 16
	default:
		return h, fmt.Errorf("family/transport %#x", fixed[13])
	}
	if len(body) < 2*alen+4 {
		return h, fmt.Errorf("address block of %d bytes", len(body))
	}
	sa, _ := netip.AddrFromSlice(body[:alen])
	da, _ := netip.AddrFromSlice(body[alen : 2*alen])
	h.src = netip.AddrPortFrom(sa, binary.BigEndian.Uint16(body[2*alen:]))
	h.dst = netip.AddrPortFrom(da, binary.BigEndian.Uint16(body[2*alen+2:]))
	return h, nil
}

// proxyV2Server is a real TCP server that demands a PROXY v2 header on
// every connection (a connection without one is closed), then answers
// with the addresses it read, "src dst\n", and echoes the rest.
type proxyV2Server struct {
	ln      net.Listener
	mu      sync.Mutex
	headers []proxyHeader
	refused int
}

func newProxyV2Server(t *testing.T) *proxyV2Server {
	t.Helper()
	s := &proxyV2Server{}
	s.ln = serveProxyV2(t, func(h proxyHeader, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.refused++
		} else {
			s.headers = append(s.headers, h)
		}
	}, func(c net.Conn, br *bufio.Reader, h proxyHeader) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = fmt.Fprintf(c, "%s %s\n", h.src, h.dst)
		_, _ = io.Copy(c, br)
	})
	return s
}

// serveProxyV2 accepts on a loopback listener until the test ends, as a
// server that demands a PROXY v2 header does: each connection's header
// (read within 30 s) or the error that refuses it goes to seen; a refused
// connection is closed, an accepted one is handed to serve with br, which
// holds what followed the header, and closed when serve returns.
func serveProxyV2(t *testing.T, seen func(proxyHeader, error), serve func(c net.Conn, br *bufio.Reader, h proxyHeader)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				h, err := readProxyV2(br)
				_ = c.SetReadDeadline(time.Time{})
				seen(h, err)
				if err == nil {
					serve(c, br, h)
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln
}

// TestTCPProxyProtocolV2 runs a pool with proxy_protocol: v2 in front of
// a server that demands the header: the server learns the client's
// address and port and the address the client connected to, and the
// client's bytes follow the header unchanged.
func TestTCPProxyProtocolV2(t *testing.T) {
	srv := newProxyV2Server(t)
	y := strings.Replace(tcpConfig("1h", "0"), "    close_on_down: true\n", "    close_on_down: true\n    proxy_protocol: v2\n", 1)
	y = strings.Replace(y, `      - {name: b, addr: "{b}"}`+"\n", "", 1)
	y = strings.Replace(y, `{a}`, srv.ln.Addr().String(), 1)
	tp := startTCPProxy(t, y, nil)

	for range 3 {
		c, br, line := dialGreeting(t, tp.addr)
		require.NotEmpty(t, line, "the server accepted the header")
		assert.Equal(t, c.LocalAddr().String()+" "+tp.addr, line, "the server sees the client, not the proxy")
		echo(t, c, br, "SELECT 1; -- bytes after the header arrive unchanged")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	assert.Len(t, srv.headers, 3)
	assert.Zero(t, srv.refused)
	for _, h := range srv.headers {
		assert.False(t, h.local)
	}
}

// Without the option no header is sent: the same server refuses.
func TestTCPNoProxyProtocolByDefault(t *testing.T) {
	srv := newProxyV2Server(t)
	y := strings.Replace(tcpConfig("1h", "0"), `      - {name: b, addr: "{b}"}`+"\n", "", 1)
	y = strings.Replace(y, `{a}`, srv.ln.Addr().String(), 1)
	tp := startTCPProxy(t, y, nil)
	c, err := net.Dial("tcp", tp.addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "0123456789abcdef\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "the server closed a connection without a header")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	assert.Equal(t, 1, srv.refused)
}
