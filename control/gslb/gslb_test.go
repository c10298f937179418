package gslb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

const soa = `"@ IN SOA ns1 h 1 2 3 4 60"`

// threeSites is a geo name over three regions whose health comes from
// one daemon each; %s are the daemons' URLs.
const threeSites = `
geoip: %%GEO%%
zones:
  - name: example.com
    records: [` + soa + `]
sites:
  - name: us-east
    location: {lat: 39.0, lon: -77.5}
    vips: [192.0.2.10, "2001:db8:1::10"]
    health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 2, fall: 3}
  - name: eu-west
    location: {lat: 53.3, lon: -6.3, country: IE, continent: EU}
    vips: [198.51.100.10]
    health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 2, fall: 3}
  - name: ap
    location: {continent: AS, country: JP}
    vips: [203.0.113.10]
    health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 2, fall: 3}
names:
  - name: shop.example.com
    policy: geo
    sites: [us-east, eu-west, ap]
    default: eu-west
    ttl: 10s
  - name: api.example.com
    policy: failover
    sites: [eu-west, us-east]
`

func startThree(t *testing.T) (*running, map[string]*fakeDaemon) {
	t.Helper()
	ds := map[string]*fakeDaemon{
		"us-east": newDaemon(t, "192.0.2.10"),
		"eu-west": newDaemon(t, "198.51.100.10"),
		"ap":      newDaemon(t, "203.0.113.10"),
	}
	r := start(t, fmt.Sprintf(threeSites, ds["us-east"].srv.URL, ds["eu-west"].srv.URL, ds["ap"].srv.URL))
	for site := range ds {
		require.Eventually(t, func() bool { return r.checker.Up(site) }, 30*time.Second, 10*time.Millisecond, site)
	}
	return r, ds
}

func TestGeoNearestSiteByClientSubnet(t *testing.T) {
	r, _ := startThree(t)
	for _, tc := range []struct {
		ecs, want string
		scope     uint8
	}{
		{"192.0.2.0/24", "192.0.2.10", 24},       // Virginia → us-east
		{"198.51.100.0/24", "198.51.100.10", 24}, // Paris → eu-west
		{"203.0.113.7/32", "203.0.113.10", 24},   // Tokyo; ap is known by country only: same country
		{"100.64.1.0/24", "198.51.100.10", 24},   // Germany, no coordinates in the database: same continent
		{"10.1.2.0/24", "198.51.100.10", 2},      // not in the database: the default site, for all of the empty 0.0.0.0/2
	} {
		for _, network := range []string{"udp", "tcp"} {
			m := ask(t, network, r.addr, "shop.example.com", dns.TypeA, withECS(tc.ecs))
			require.Equal(t, dns.RcodeSuccess, m.Rcode, tc.ecs)
			assert.True(t, m.Authoritative)
			assert.Equal(t, []string{tc.want}, addrs(m), "%s over %s", tc.ecs, network)
			assert.Equal(t, uint32(10), m.Answer[0].Header().Ttl)
			e := ecsOf(m)
			require.NotNil(t, e, "the ECS option is echoed")
			assert.Equal(t, tc.scope, e.SourceScope, "scope for %s", tc.ecs)
		}
	}
	// Without ECS the resolver's own address (127.0.0.1, unknown) decides:
	// the default site, and no ECS option in the answer.
	m := ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) })
	assert.Equal(t, []string{"198.51.100.10"}, addrs(m))
	assert.Nil(t, ecsOf(m))
	// A source prefix of 0 opts out of ECS: resolver's address, scope 0.
	m = ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, withECS("192.0.2.0/0"))
	assert.Equal(t, []string{"198.51.100.10"}, addrs(m))
	require.NotNil(t, ecsOf(m))
	assert.Equal(t, uint8(0), ecsOf(m).SourceScope)
	// IPv6 clients are located too; AAAA answers the site's IPv6 VIPs.
	m = ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, withECS("2001:db8:e0::/56"))
	assert.Equal(t, []string{"198.51.100.10"}, addrs(m), "Berlin is nearest to Dublin")
	assert.Equal(t, uint8(48), ecsOf(m).SourceScope)
	m = ask(t, "udp", r.addr, "shop.example.com", dns.TypeAAAA, withECS("192.0.2.0/24"))
	assert.Equal(t, []string{"2001:db8:1::10"}, addrs(m))
	// eu-west has no IPv6 VIP: NODATA with the SOA.
	m = ask(t, "udp", r.addr, "shop.example.com", dns.TypeAAAA, withECS("198.51.100.0/24"))
	assert.Equal(t, dns.RcodeSuccess, m.Rcode)
	assert.Empty(t, m.Answer)
	require.Len(t, m.Ns, 1)
	// An answer that does not depend on the client (failover) has scope 0.
	m = ask(t, "udp", r.addr, "api.example.com", dns.TypeA, withECS("203.0.113.0/24"))
	assert.Equal(t, []string{"198.51.100.10"}, addrs(m))
	require.NotNil(t, ecsOf(m))
	assert.Equal(t, uint8(0), ecsOf(m).SourceScope)
	assert.Equal(t, uint8(24), ecsOf(m).SourceNetmask, "source prefix echoed")
	// A malformed ECS option (scope set in a query) is FORMERR.
	m = ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, withECS("192.0.2.0/24"), func(m *dns.Msg) { ecsOf(m).SourceScope = 8 })
	assert.Equal(t, dns.RcodeFormatError, m.Rcode)

	// Virginia over UDP and TCP, and the AAAA query.
	assert.Equal(t, 2.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("shop.example.com.", "A", PolicyGeo, "us-east", "NOERROR")))
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("shop.example.com.", "AAAA", PolicyGeo, "us-east", "NOERROR")))
}

func TestSiteFailoverWithRiseAndFall(t *testing.T) {
	r, ds := startThree(t)
	eu := ds["eu-west"]
	paris := withECS("198.51.100.0/24")
	assert.Equal(t, []string{"198.51.100.10"}, addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, paris)))
	assert.Equal(t, []string{"198.51.100.10"}, addrs(ask(t, "udp", r.addr, "api.example.com", dns.TypeA)))

	// eu-west's only backend goes down: after fall (3) bad rounds the
	// Paris client gets the next-nearest site and failover the next in line.
	eu.healthy.Store(false)
	failed := time.Now()
	require.Eventually(t, func() bool {
		return addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, paris))[0] != "198.51.100.10"
	}, 30*time.Second, time.Millisecond)
	t.Logf("detection: %v from the backend going down to answers from another site (interval 20ms, fall 3)", time.Since(failed))
	assert.False(t, r.checker.Up("eu-west"))
	assert.GreaterOrEqual(t, eu.badSeen.Load(), int64(3), "down only after fall rounds")
	assert.Equal(t, []string{"192.0.2.10"}, addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, paris)), "us-east is nearer to Paris than Tokyo")
	assert.Equal(t, []string{"192.0.2.10"}, addrs(ask(t, "udp", r.addr, "api.example.com", dns.TypeA)))
	assert.Equal(t, 0.0, testutil.ToFloat64(r.metrics.siteUp.WithLabelValues("eu-west")))
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.siteFlip.WithLabelValues("eu-west", "down")))
	// The default site being down, an unknown client gets the first healthy one.
	assert.Equal(t, []string{"192.0.2.10"}, addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, withECS("10.0.0.0/8"))))

	// Back: up after rise (2) good rounds.
	before := eu.requests.Load()
	eu.healthy.Store(true)
	require.Eventually(t, func() bool { return r.checker.Up("eu-west") }, 30*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, eu.requests.Load()-before, int64(2), "up only after rise rounds")
	assert.Equal(t, []string{"198.51.100.10"}, addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, paris)))
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.siteFlip.WithLabelValues("eu-west", "up")))

	// Every site down: the last resort answers with all sites' VIPs.
	for _, d := range ds {
		d.healthy.Store(false)
	}
	for site := range ds {
		require.Eventually(t, func() bool { return !r.checker.Up(site) }, 30*time.Second, 5*time.Millisecond, site)
	}
	m := ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, paris)
	assert.Equal(t, dns.RcodeSuccess, m.Rcode)
	assert.ElementsMatch(t, []string{"192.0.2.10", "198.51.100.10", "203.0.113.10"}, addrs(m))
	assert.Equal(t, 1.0, testutil.ToFloat64(r.metrics.queries.WithLabelValues("shop.example.com.", "A", PolicyGeo, "all-down:all", "NOERROR")))
}

func TestDaemonStatusDecidesHostHealth(t *testing.T) {
	up := newDaemon(t, "192.0.2.10")
	down := newDaemon(t, "192.0.2.10")
	down.healthy.Store(false)
	other := newDaemon(t, "192.0.2.99") // serves another VIP only
	r := start(t, fmt.Sprintf(`
zones:
  - name: example.com
    records: [`+soa+`]
sites:
  - name: two-of-three
    vips: [192.0.2.10]
    health: {daemons: ["%s", "%s", "%s"], min_hosts: 2, interval: 20ms, timeout: 5s, rise: 1, fall: 1}
  - name: probed
    vips: [192.0.2.20]
    health: {probe: "%s/nosuch", interval: 20ms, timeout: 5s, rise: 1, fall: 1}
names:
  - name: x.example.com
    sites: [two-of-three, probed]
    all_down: probed
`, up.srv.URL, down.srv.URL, other.srv.URL, up.srv.URL))
	// Wait for both first rounds.
	require.Eventually(t, func() bool { return down.requests.Load() > 0 && up.requests.Load() > 1 }, 30*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(r.metrics.siteUp.WithLabelValues("two-of-three")) == 0 && up.requests.Load() > 3
	}, 30*time.Second, 5*time.Millisecond)
	assert.False(t, r.checker.Up("two-of-three"), "one of three daemons reports the VIP usable, two are needed")
	assert.False(t, r.checker.Up("probed"), "the probe gets 404")
	m := ask(t, "udp", r.addr, "x.example.com", dns.TypeA)
	assert.Equal(t, []string{"192.0.2.20"}, addrs(m), "all down: the sorry site")

	down.healthy.Store(true)
	require.Eventually(t, func() bool { return r.checker.Up("two-of-three") }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"192.0.2.10"}, addrs(ask(t, "tcp", r.addr, "x.example.com", dns.TypeA)))
}

func TestWeightedSharesHealthySites(t *testing.T) {
	r := start(t, `
zones:
  - name: example.com
    records: [`+soa+`]
sites:
  - {name: a, vips: [192.0.2.1]}
  - {name: b, vips: [192.0.2.2]}
  - {name: c, vips: [192.0.2.3]}
names:
  - name: w.example.com
    policy: weighted
    sites: [a, b, c]
    weights: {a: 3, b: 1, c: 0}
`)
	counts := map[string]int{}
	const n = 400
	for range n {
		m := ask(t, "udp", r.addr, "w.example.com", dns.TypeA)
		require.Len(t, m.Answer, 1)
		counts[addrs(m)[0]]++
	}
	assert.Zero(t, counts["192.0.2.3"], "weight 0 gets nothing")
	assert.Equal(t, n, counts["192.0.2.1"]+counts["192.0.2.2"])
	// 3:1 over 400 draws: a gets 300 ± a wide margin (p < 1e-6 outside).
	assert.InDelta(t, 300, counts["192.0.2.1"], 50, "%v", counts)
}

func TestReloadKeepsSiteHealth(t *testing.T) {
	r, ds := startThree(t)
	ds["eu-west"].healthy.Store(false)
	require.Eventually(t, func() bool { return !r.checker.Up("eu-west") }, 30*time.Second, 5*time.Millisecond)

	text := fmt.Sprintf(threeSites, ds["us-east"].srv.URL, ds["eu-west"].srv.URL, ds["ap"].srv.URL)
	text = strings.ReplaceAll(text, "records: ["+soa+"]", "records: ["+soa+`, "www IN A 192.0.2.80"]`)
	text = strings.ReplaceAll(text, "%GEO%", writeGeoDB(t))
	cfg, err := Parse("test.yaml", []byte(text))
	require.NoError(t, err)
	cfg.Sites = cfg.Sites[:2] // ap removed (and from the geo name)
	cfg.Names[0].Sites = cfg.Names[0].Sites[:2]
	chk := NewChecker(cfg.Sites, r.metrics, r.checker.log, r.checker)
	assert.Equal(t, 2, testutil.CollectAndCount(r.metrics.siteUp), "a removed site's gauge goes")
	select {
	case <-chk.Ready():
	default:
		t.Fatal("a checker seeded from the running one needs no first round")
	}
	assert.False(t, chk.Up("eu-west"), "down stays down across the reload")
	assert.True(t, chk.Up("us-east"))
	geo, err := OpenLocator(cfg.GeoIP)
	require.NoError(t, err)
	t.Cleanup(func() { _ = geo.Close() })
	r.srv.Reload(cfg, chk, geo)

	assert.Equal(t, []string{"192.0.2.80"}, addrs(ask(t, "udp", r.addr, "www.example.com", dns.TypeA)))
	assert.Equal(t, []string{"192.0.2.10"}, addrs(ask(t, "udp", r.addr, "shop.example.com", dns.TypeA, withECS("198.51.100.0/24"))))
}

// The daemon's BGP section decides too: a host whose routers do not hear
// the VIP (no established session, or the prefix not announced) does not
// serve the site, however healthy its backends are.
func TestDaemonBGPStateDecidesHostHealth(t *testing.T) {
	vip := netip.MustParseAddr("192.0.2.10")
	up := api.BGPPeer{Addr: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: "established", Up: true}
	down := api.BGPPeer{Addr: netip.MustParseAddr("10.0.0.2"), ASN: 65000, State: "active"}
	announced := []netip.Prefix{netip.PrefixFrom(vip, 32)}
	tests := []struct {
		name   string
		mode   string // health.bgp
		bgp    *api.BGPStatus
		wantUp bool
		reason string
	}{
		{name: "bgp off, auto", mode: BGPAuto, bgp: nil, wantUp: true},
		{name: "bgp off, required", mode: BGPRequired, bgp: nil, reason: "does not run BGP"},
		{name: "established and announced", mode: BGPAuto, bgp: &api.BGPStatus{Peers: []api.BGPPeer{down, up}, Announced: announced}, wantUp: true},
		{name: "no session established", mode: BGPAuto, bgp: &api.BGPStatus{Peers: []api.BGPPeer{down}, Announced: announced}, reason: "no established BGP session"},
		{name: "no peers", mode: BGPRequired, bgp: &api.BGPStatus{Announced: announced}, reason: "no established BGP session"},
		{name: "vip withdrawn", mode: BGPAuto, bgp: &api.BGPStatus{Peers: []api.BGPPeer{up}, Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.11/32")}}, reason: "not announced"},
		{name: "announcements held", mode: BGPAuto, bgp: &api.BGPStatus{Peers: []api.BGPPeer{up}, Held: "first reconcile not done"}, reason: "first reconcile not done"},
		{name: "ignored", mode: BGPIgnore, bgp: &api.BGPStatus{Peers: []api.BGPPeer{down}}, wantUp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemon(t, vip.String())
			d.bgp.Store(tt.bgp)
			cfg, err := Parse("test.yaml", []byte(fmt.Sprintf(`
zones:
  - name: example.com
    records: [`+soa+`]
sites:
  - name: s
    vips: [%s]
    health: {daemons: ["%s"], timeout: 5s, bgp: %s}
`, vip, d.srv.URL, tt.mode)))
			require.NoError(t, err)
			c := NewChecker(cfg.Sites, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			ok, reason := c.check(context.Background(), cfg.Sites[0])
			assert.Equal(t, tt.wantUp, ok, reason)
			assert.Contains(t, reason, tt.reason)
		})
	}
}
