package gslb

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDig asks with BIND's dig, a client xlb did not write: zone
// records, NXDOMAIN, REFUSED, minimal ANY, ECS with its echoed scope, and
// a truncated UDP answer that dig retries over TCP by itself.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig is not installed (make deps installs Debian's dnsutils)")
	}
	r := start(t, `
geoip: %GEO%
zones:
  - name: example.com
    records:
      - "@ IN SOA ns1.example.com. hostmaster.example.com. 7 7200 3600 1209600 60"
      - "@ IN NS ns1.example.com."
      - "ns1 IN A 192.0.2.53"
      - "www IN A 192.0.2.80"
      - "@ IN MX 10 mail.example.com."
sites:
  - {name: us-east, location: {lat: 39.0, lon: -77.5}, vips: [192.0.2.10]}
  - {name: eu-west, location: {lat: 53.3, lon: -6.3}, vips: [198.51.100.10]}
  - {name: big, vips: [`+manyVIPs(60)+`]}
names:
  - {name: shop.example.com, policy: geo, sites: [us-east, eu-west], default: us-east}
  - {name: many.example.com, sites: [big]}
`)
	host, port, err := net.SplitHostPort(r.addr)
	require.NoError(t, err)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dig, append([]string{"@" + host, "-p", port, "+norecurse", "+time=5", "+tries=2"}, args...)...).CombinedOutput()
		require.NoError(t, err, "dig %v: %s", args, out)
		return string(out)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"A record", []string{"www.example.com", "A"}, []string{"status: NOERROR", "flags: qr aa", "www.example.com.\t3600\tIN\tA\t192.0.2.80"}},
		{"MX", []string{"example.com", "MX"}, []string{"IN\tMX\t10 mail.example.com."}},
		{"NXDOMAIN with the SOA", []string{"nosuch.example.com", "A"}, []string{"status: NXDOMAIN", "AUTHORITY: 1", "IN\tSOA\tns1.example.com."}},
		{"REFUSED outside the zones", []string{"example.org", "A"}, []string{"status: REFUSED"}},
		{"ANY gets one RRset", []string{"example.com", "ANY"}, []string{"ANSWER: 1,", "IN\tSOA"}},
		{"geo by ECS", []string{"+subnet=198.51.100.0/24", "shop.example.com", "A"}, []string{"CLIENT-SUBNET: 198.51.100.0/24/24", "IN\tA\t198.51.100.10"}},
		{"geo without ECS: the default site", []string{"shop.example.com", "A"}, []string{"IN\tA\t192.0.2.10"}},
		{"truncated over UDP, whole over TCP", []string{"+noedns", "many.example.com", "A"}, []string{"Truncated, retrying in TCP mode", "ANSWER: 60,"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(tt.args...)
			for _, w := range tt.want {
				assert.Contains(t, out, w)
			}
		})
	}
}

// manyVIPs lists n documentation addresses for a site with a large answer.
func manyVIPs(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "192.0.2.%d", 100+i)
	}
	return b.String()
}
