package gslb

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// BenchmarkGeoQueryUDP is one geo query with ECS over loopback UDP, one
// query in flight, client and server in this process:
//
//	go test -run '^$' -bench GeoQuery -cpu 1 ./control/gslb/
func BenchmarkGeoQueryUDP(b *testing.B) {
	r := start(b, `
geoip: %GEO%
zones:
  - name: example.com
    records: [`+soa+`]
sites:
  - {name: us-east, location: {lat: 39.0, lon: -77.5}, vips: [192.0.2.10]}
  - {name: eu-west, location: {lat: 53.3, lon: -6.3}, vips: [198.51.100.10]}
  - {name: ap, location: {country: JP, continent: AS}, vips: [203.0.113.10]}
names:
  - {name: shop.example.com, policy: geo, sites: [us-east, eu-west, ap]}
`)
	c, err := net.Dial("udp", r.addr)
	require.NoError(b, err)
	defer c.Close()
	m := new(dns.Msg).SetQuestion("shop.example.com.", dns.TypeA)
	withECS("198.51.100.0/24")(m)
	q, err := m.Pack()
	require.NoError(b, err)
	buf := make([]byte, 1500)
	for b.Loop() {
		if _, err := c.Write(q); err != nil {
			b.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		var resp dns.Msg
		if err := resp.Unpack(buf[:n]); err != nil || len(resp.Answer) != 1 {
			b.Fatalf("bad answer: %v %v", err, resp.Answer)
		}
	}
}
