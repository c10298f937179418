package gslb

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("dns.yaml", []byte(`
geoip: /var/lib/GeoLite2-City.mmdb
zones:
  - name: Example.COM
    records: ["@ IN SOA ns1 hostmaster 1 2 3 4 60"]
sites:
  - name: us
    location: {lat: 39, lon: -77.5}
    vips: [192.0.2.10, "2001:db8::10"]
    health:
      daemons: ["10.0.0.1:9724", "http://10.0.0.2:9724/"]
  - name: eu
    location: {country: fr, continent: eu}
    vips: [198.51.100.10]
    health: {probe: "http://198.51.100.10/healthz", rise: 3, fall: 1}
names:
  - name: shop.example.com
    policy: geo
    sites: [us, eu]
`))
	require.NoError(t, err)
	assert.Equal(t, DefaultListen, cfg.Listen)
	require.Len(t, cfg.Zones, 1)
	assert.Equal(t, "example.com.", cfg.Zones[0].Origin)
	assert.Equal(t, "ns1.example.com.", cfg.Zones[0].SOA.Ns, "relative names are relative to the zone")
	assert.Equal(t, uint32(3600), cfg.Zones[0].SOA.Hdr.Ttl)
	us := cfg.Sites[0]
	assert.Equal(t, []string{"http://10.0.0.1:9724", "http://10.0.0.2:9724"}, us.Health.Daemons)
	assert.Equal(t, "192.0.2.10", us.Health.VIP.String(), "the first VIP is checked")
	assert.Equal(t, 1, us.Health.MinHosts)
	assert.Equal(t, DefaultInterval, us.Health.Interval)
	assert.Equal(t, DefaultRise, us.Health.Rise)
	eu := cfg.Sites[1]
	assert.Equal(t, Location{Country: "FR", Continent: "EU"}, eu.Location)
	assert.Equal(t, 3, eu.Health.Rise)
	assert.Equal(t, 1, eu.Health.Fall)
	n := cfg.Names[0]
	assert.Equal(t, "shop.example.com.", n.FQDN)
	assert.Equal(t, "us", n.Default, "the first site is the default")
	assert.Equal(t, AllDownAll, n.AllDown)
	assert.Equal(t, uint32(DefaultGSLBTTL/time.Second), n.TTL)
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"two documents", "zones: []\n---\nsites: []\n", []string{"dns.yaml:2: more than one YAML document"}},
		{"typo", "zones: []\nlisten: \"127.0.0.1:53\"\nsitez: []\n", []string{`dns.yaml:3: unknown key "sitez" (did you mean "sites"?)`}},
		{"bad record", `zones:
  - name: example.com
    records:
      - "@ IN SOA ns1 h 1 2 3 4 60"
      - "www IN A 300.1.1.1"
      - "www IN SRV 1 1 80 x"
      - "www.example.net. IN A 192.0.2.1"
`, []string{`dns.yaml:5: zones[0].records[1]: "www IN A 300.1.1.1": not an IPv4 address: "300.1.1.1" (zone-file syntax: NAME [TTL] [IN] TYPE DATA, e.g. "www 300 IN A 192.0.2.1")`, "dns.yaml:6: zones[0].records[2]: type SRV is not served", "dns.yaml:7: zones[0].records[3]: www.example.net. is outside zone example.com."}},
		{"no soa", "zones:\n  - name: example.com\n    records: [\"@ IN NS ns1\"]\n", []string{"dns.yaml:3: zones[0].records: zone example.com. needs an SOA"}},
		{"cname with data", "zones:\n  - name: example.com\n    records:\n      - \"@ IN SOA ns1 h 1 2 3 4 60\"\n      - \"w IN CNAME x\"\n      - \"w IN A 192.0.2.1\"\n", []string{"w.example.com. has a CNAME and other records"}},
		{"names", `zones:
  - name: example.com
    records: ["@ IN SOA ns1 h 1 2 3 4 60", "www IN A 192.0.2.1"]
sites:
  - name: a
    vips: [192.0.2.1, nope]
    health: {daemons: ["10.0.0.1:9724"], probe: "http://x/", min_hosts: 2}
names:
  - name: shop.example.org
    policy: nearest
    sites: [a, b]
  - name: www.example.com
    policy: geo
    sites: [a]
    default: c
    all_down: sorry
`, []string{
			"dns.yaml:6: sites[0].vips[1]: \"nope\" is not an IP address",
			"dns.yaml:7: sites[0].health: give daemons or probe, not both",
			"dns.yaml:7: sites[0].health.min_hosts: must be 1..1",
			"dns.yaml:10: names[0].policy: unknown policy \"nearest\"",
			"dns.yaml:11: names[0].sites[1]: unknown site \"b\"",
			"dns.yaml:9: names[0].name: shop.example.org. is in none of the zones",
			"dns.yaml:12: names[1].name: www.example.com. also has records",
			"dns.yaml:13: names[1].policy: policy geo needs geoip",
			"dns.yaml:15: names[1].default: default site \"c\" is not in sites",
			"dns.yaml:16: names[1].all_down: want \"all\" or a site name, not \"sorry\"",
		}},
		{"combined policies and bgp", `zones:
  - name: example.com
    records: ["@ IN SOA ns1 h 1 2 3 4 60"]
sites:
  - {name: a, vips: [192.0.2.1], health: {daemons: ["10.0.0.1:9724"], bgp: always}}
  - {name: b, vips: [192.0.2.2], health: {probe: "http://192.0.2.2/", bgp: required}}
names:
  - name: x.example.com
    sites: [a, b]
    nearby_km: 100
    weights: {a: -1}
  - name: y.example.com
    policy: weighted
    sites: [a, b]
    priorities: {a: 1}
`, []string{
			`dns.yaml:5: sites[0].health.bgp: unknown value "always" (want auto, required or ignore)`,
			"dns.yaml:6: sites[1].health.bgp: bgp applies to daemons only",
			"dns.yaml:10: names[0].nearby_km: nearby_km applies to policy geo only",
			"dns.yaml:11: names[0].weights.a: weight must be 0 or more",
			"dns.yaml:15: names[1].priorities: priorities apply to policy failover only",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("dns.yaml", []byte(tc.text))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestDocsConfigParses: the configuration docs/gslb.md shows is one an
// operator can start from: every name's sites exist, and no GSLB name
// collides with the zone's records.
func TestDocsConfigParses(t *testing.T) {
	page, err := os.ReadFile("../../docs/gslb.md")
	require.NoError(t, err)
	before, rest, ok := strings.Cut(string(page), "## Config\n\n```yaml\n")
	require.True(t, ok, "docs/gslb.md has no ## Config section opening with a yaml block")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	// Blank lines in place of the text above it: errors name the page's lines.
	above := strings.Repeat("\n", strings.Count(before, "\n")+3)
	cfg, err := Parse("docs/gslb.md", []byte(above+block))
	require.NoError(t, err)
	assert.NotEmpty(t, cfg.Names)
}

// TestLoadExample: the example installed as /etc/xlb/dns.yaml.example
// loads as shipped, needing no GeoIP database.
func TestLoadExample(t *testing.T) {
	cfg, err := Load("example.yaml")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:53", cfg.Listen)
	assert.Empty(t, cfg.GeoIP, "the example's names need no database")
	require.Len(t, cfg.Zones, 1)
	assert.Equal(t, "gslb.example.com.", cfg.Zones[0].Origin)
	require.Len(t, cfg.Sites, 3)
	assert.Nil(t, cfg.Sites[2].Health.Daemons, "partner is probed over HTTP")
	require.Len(t, cfg.Names, 2)
	assert.Equal(t, "shop.gslb.example.com.", cfg.Names[0].FQDN)
	assert.Equal(t, []int{3, 1}, cfg.Names[1].Weights)
}
