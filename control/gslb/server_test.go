package gslb

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const zoneConfig = `
zones:
  - name: example.com
    ttl: 300s
    records:
      - "@ IN SOA ns1.example.com. hostmaster.example.com. 7 7200 3600 1209600 60"
      - "@ IN NS ns1.example.com."
      - "@ IN NS ns2.example.com."
      - "@ IN MX 10 mail.example.com."
      - "ns1 IN A 192.0.2.53"
      - "ns2 IN AAAA 2001:db8::53"
      - "www 120 IN A 192.0.2.80"
      - "www IN AAAA 2001:db8::80"
      - "web IN CNAME www"
      - "away IN CNAME www.example.net."
      - "store IN CNAME shop"
      - "_info.deep.sub IN TXT \"hello world\""
sites:
  - name: one
    vips: [192.0.2.10]
names:
  - name: shop.example.com
    sites: [one]
`

func TestZoneRecords(t *testing.T) {
	r := start(t, zoneConfig)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			m := ask(t, network, r.addr, "www.example.com", dns.TypeA)
			require.Equal(t, dns.RcodeSuccess, m.Rcode)
			assert.True(t, m.Authoritative)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, "www.example.com.\t120\tIN\tA\t192.0.2.80", m.Answer[0].String())

			m = ask(t, network, r.addr, "WWW.Example.COM", dns.TypeAAAA) // names are case-insensitive
			assert.Equal(t, []string{"2001:db8::80"}, addrs(m))
			assert.Equal(t, uint32(300), m.Answer[0].Header().Ttl, "zone ttl is the default")

			m = ask(t, network, r.addr, "example.com", dns.TypeNS)
			assert.Len(t, m.Answer, 2)
			m = ask(t, network, r.addr, "example.com", dns.TypeMX)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, "mail.example.com.", m.Answer[0].(*dns.MX).Mx)
			m = ask(t, network, r.addr, "example.com", dns.TypeSOA)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, uint32(7), m.Answer[0].(*dns.SOA).Serial)
			m = ask(t, network, r.addr, "_info.deep.sub.example.com", dns.TypeTXT)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, []string{"hello world"}, m.Answer[0].(*dns.TXT).Txt)

			// CNAME inside the zone is followed; one out of it is not.
			m = ask(t, network, r.addr, "web.example.com", dns.TypeA)
			require.Len(t, m.Answer, 2)
			assert.Equal(t, dns.TypeCNAME, m.Answer[0].Header().Rrtype)
			assert.Equal(t, []string{"192.0.2.80"}, addrs(m))
			m = ask(t, network, r.addr, "away.example.com", dns.TypeA)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, "www.example.net.", m.Answer[0].(*dns.CNAME).Target)

			// A CNAME into a GSLB name gets the GSLB answer.
			m = ask(t, network, r.addr, "store.example.com", dns.TypeA)
			require.Len(t, m.Answer, 2)
			assert.Equal(t, []string{"192.0.2.10"}, addrs(m))
			// ANY: one RRset (RFC 8482).
			m = ask(t, network, r.addr, "example.com", dns.TypeANY)
			require.Len(t, m.Answer, 1)
			assert.Equal(t, dns.TypeSOA, m.Answer[0].Header().Rrtype)
			m = ask(t, network, r.addr, "shop.example.com", dns.TypeANY)
			assert.Equal(t, []string{"192.0.2.10"}, addrs(m))
			// Other opcodes: NOTIMP.
			m = ask(t, network, r.addr, "www.example.com", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus })
			assert.Equal(t, dns.RcodeNotImplemented, m.Rcode)

			// NXDOMAIN and NODATA carry the SOA with the negative TTL.
			m = ask(t, network, r.addr, "nosuch.example.com", dns.TypeA)
			assert.Equal(t, dns.RcodeNameError, m.Rcode)
			assert.True(t, m.Authoritative)
			assert.Empty(t, m.Answer)
			require.Len(t, m.Ns, 1)
			assert.Equal(t, dns.TypeSOA, m.Ns[0].Header().Rrtype)
			assert.Equal(t, uint32(60), m.Ns[0].Header().Ttl)
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{"www.example.com", dns.TypeMX}, {"deep.sub.example.com", dns.TypeA}, {"shop.example.com", dns.TypeTXT}} {
				m = ask(t, network, r.addr, q.name, q.qtype)
				assert.Equal(t, dns.RcodeSuccess, m.Rcode, "%s is NODATA, not NXDOMAIN", q.name)
				assert.Empty(t, m.Answer, q.name)
				require.Len(t, m.Ns, 1, q.name)
				assert.Equal(t, dns.TypeSOA, m.Ns[0].Header().Rrtype)
			}

			// Outside every zone: REFUSED, not authoritative.
			m = ask(t, network, r.addr, "www.example.org", dns.TypeA)
			assert.Equal(t, dns.RcodeRefused, m.Rcode)
			assert.False(t, m.Authoritative)

			// EDNS0 is answered with EDNS0; an unknown version with BADVERS.
			m = ask(t, network, r.addr, "www.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, false) })
			require.NotNil(t, m.IsEdns0())
			assert.Equal(t, uint16(answerUDPSize), m.IsEdns0().UDPSize())
			m = ask(t, network, r.addr, "www.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) })
			assert.Equal(t, dns.RcodeBadVers, m.Rcode)
		})
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("", "A", "", "", "REFUSED")))
}

func TestTruncatedAnswerFallsBackToTCP(t *testing.T) {
	var b strings.Builder
	b.WriteString(`
zones:
  - name: example.com
    records: ["@ IN SOA ns1.example.com. h.example.com. 1 2 3 4 60"]
sites:
  - name: big
    vips: [`)
	for i := range 60 {
		fmt.Fprintf(&b, "192.0.2.%d, ", i+1)
	}
	b.WriteString(`192.0.2.100]
names:
  - name: many.example.com
    sites: [big]
`)
	r := start(t, b.String())
	m := ask(t, "udp", r.addr, "many.example.com", dns.TypeA)
	assert.True(t, m.Truncated, "61 A records do not fit 512 bytes")
	assert.Less(t, len(m.Answer), 61, "the UDP answer was cut")
	m = ask(t, "tcp", r.addr, "many.example.com", dns.TypeA)
	assert.False(t, m.Truncated)
	assert.Len(t, addrs(m), 61)
	// A client advertising 1232 bytes gets everything over UDP.
	m = ask(t, "udp", r.addr, "many.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) })
	assert.False(t, m.Truncated)
	assert.Len(t, addrs(m), 61)
}

// TestGoResolver asks through Go's own stub resolver (net.Resolver with
// PreferGo), as an application would.
func TestGoResolver(t *testing.T) {
	r := start(t, zoneConfig)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, r.addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := res.LookupHost(ctx, "www.example.com")
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"192.0.2.80", "2001:db8::80"}, ips)
	ips, err = res.LookupHost(ctx, "store.example.com")
	require.NoError(t, err)
	assert.Equal(t, []string{"192.0.2.10"}, ips, "CNAME to the GSLB name, which has no IPv6 VIP")
	mx, err := res.LookupMX(ctx, "example.com")
	require.NoError(t, err)
	require.Len(t, mx, 1)
	assert.Equal(t, "mail.example.com.", mx[0].Host)
	_, err = res.LookupHost(ctx, "nosuch.example.com")
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr)
	assert.True(t, dnsErr.IsNotFound)
}

// The queries metric names the query type; a type outside the named set
// is counted as "other", so arbitrary type numbers cannot grow the series.
func TestQueriesCountedByType(t *testing.T) {
	r := start(t, zoneConfig)
	ask(t, "udp", r.addr, "www.example.com", dns.TypeAAAA)
	ask(t, "udp", r.addr, "shop.example.com", dns.TypeA)
	ask(t, "udp", r.addr, "www.example.com", dns.TypeNAPTR)
	ask(t, "udp", r.addr, "www.example.com", 65000)
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("example.com.", "AAAA", "static", "", "NOERROR")))
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("shop.example.com.", "A", PolicyFailover, "one", "NOERROR")))
	assert.Equal(t, 2.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("example.com.", "other", "static", "", "NOERROR")))
}
