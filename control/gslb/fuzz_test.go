package gslb

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzAnswer feeds arbitrary bytes through the path a UDP datagram takes
// (replyUDP: header, accept rules, unpack, answer, cut to size) and packs
// the answer. It must never panic, and every answer packs within the
// UDP limit.
func FuzzAnswer(f *testing.F) {
	cfg, err := Parse("fuzz.yaml", []byte(zoneConfig))
	require.NoError(f, err)
	s := NewServer(cfg, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, q := range []*dns.Msg{
		new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA),
		new(dns.Msg).SetQuestion("shop.example.com.", dns.TypeANY),
		new(dns.Msg).SetQuestion("web.example.com.", dns.TypeA).SetEdns0(65535, true),
	} {
		b, err := q.Pack()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1})
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := s.replyUDP(b, remote, time.Now())
		if m == nil {
			return // no header, or a response: dropped
		}
		out, err := m.Pack()
		assert.NoError(t, err)
		assert.LessOrEqual(t, len(out), answerUDPSize)
	})
}

// TestGarbageDoesNotStopTheServer sends malformed and truncated packets
// and an oversized EDNS buffer, then checks real queries still work.
func TestGarbageDoesNotStopTheServer(t *testing.T) {
	r := start(t, zoneConfig)
	c, err := net.Dial("udp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	q, err := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA).Pack()
	require.NoError(t, err)
	for _, pkt := range [][]byte{{}, {0xff}, q[:5], q[:len(q)-3], append(append([]byte{}, q...), 0, 0, 0), make([]byte, 3000)} {
		_, err := c.Write(pkt)
		require.NoError(t, err)
	}
	// Malformed queries that carry a header (truncated question, two
	// questions claimed) are answered FORMERR.
	two := append([]byte{}, q...)
	two[5] = 2
	_, err = c.Write(two)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	require.NoError(t, err)
	var resp dns.Msg
	require.NoError(t, resp.Unpack(buf[:n]))
	assert.Equal(t, dns.RcodeFormatError, resp.Rcode)

	m := ask(t, "udp", r.addr, "www.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(65535, false) })
	assert.Equal(t, []string{"192.0.2.80"}, addrs(m))
	assert.Equal(t, uint16(answerUDPSize), m.IsEdns0().UDPSize(), "never more than 1232 over UDP")
	assert.Equal(t, []string{"192.0.2.80"}, addrs(ask(t, "tcp", r.addr, "www.example.com", dns.TypeA)))
}
