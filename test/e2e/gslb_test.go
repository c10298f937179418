package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/test/topo"
)

// Global load balancing across three sites: each site is an edge host
// running the real `xlb daemon` (XDP, BGP to the router) and an L7 host;
// the real `xlb dns` asks the three daemons' status JSON and answers each
// client with the nearest healthy site's VIP. Clients in two regions (by
// their source address in the test's GeoIP database) and a resolver that
// sends EDNS Client Subnet for a third ask it real DNS questions, then
// fetch the VIP they were given through the router.
//
//	c-us, c-eu ──► dns (xlb dns) ─── GET /api/status ──► lb-us | lb-eu | lb-ap
//	     │                                                 ▲ BGP    │ IP-in-IP
//	     └──► router (FRR) ──────── VIP packets ───────────┘        ▼
//	     ◄──────────────────────────────────────────── l7-us | l7-eu | l7-ap
const (
	gslbZone = "gslb.example."
	gslbName = "shop.gslb.example."
	// gslbAPNet is where the ECS queries say their client is: Tokyo in
	// the test database.
	gslbAPNet = "203.0.113.0/24"
)

// gslbSite is one site of the bed.
type gslbSite struct {
	name     string
	lat, lon float64
	vip      netip.Addr
	lb       *haLB
	l7       *ctlL7
}

type gslbBed struct {
	bgpBed
	dnsHost  *topo.Host
	cUS, cEU *topo.Host
	sites    []*gslbSite
	dnsCfg   string
	dnsLog   string
	dnsCmd   *exec.Cmd
	dnsDone  chan error
	dnsAddr  string // host:port of xlb dns
}

func newGSLBBed(t *testing.T) *gslbBed {
	t.Helper()
	b := &gslbBed{bgpBed: newBGPBed(t, haHold, time.Second)}
	var err error
	b.dnsHost, err = b.tp.AddHost(topo.HostConfig{Name: "dns"})
	require.NoError(t, err)
	b.cUS, err = b.tp.AddHost(topo.HostConfig{Name: "c-us", NoOffloads: true})
	require.NoError(t, err)
	b.cEU, err = b.tp.AddHost(topo.HostConfig{Name: "c-eu", NoOffloads: true})
	require.NoError(t, err)
	b.sites = []*gslbSite{
		{name: "us", lat: 39.0, lon: -77.5, vip: netip.MustParseAddr("198.51.100.41")},
		{name: "eu", lat: 53.3, lon: -6.3, vip: netip.MustParseAddr("198.51.100.42")},
		{name: "ap", lat: 35.7, lon: 139.7, vip: netip.MustParseAddr("198.51.100.43")},
	}
	for _, s := range b.sites {
		s.lb = b.newLB(t, "lb-"+s.name)
		s.l7 = addCtlL7(t, b.tp, "l7-"+s.name, false, s.vip)
	}
	// Static neighbours: the test measures health and DNS, not ARP.
	for _, c := range []*topo.Host{b.cUS, b.cEU} {
		require.NoError(t, c.AddNeigh(b.router.Addr4, b.router.MAC))
		require.NoError(t, c.AddNeigh(b.dnsHost.Addr4, b.dnsHost.MAC))
		require.NoError(t, b.dnsHost.AddNeigh(c.Addr4, c.MAC))
		for _, s := range b.sites {
			require.NoError(t, c.AddRoute(netip.PrefixFrom(s.vip, 32), b.router.Addr4))
			require.NoError(t, s.l7.host.AddNeigh(c.Addr4, c.MAC))
		}
	}
	for _, s := range b.sites {
		lb, l := s.lb, s.l7.host
		require.NoError(t, b.router.AddNeigh(lb.host.Addr4, lb.host.MAC))
		require.NoError(t, lb.host.AddNeigh(b.router.Addr4, b.router.MAC))
		require.NoError(t, lb.host.AddNeigh(l.Addr4, l.MAC))
		require.NoError(t, l.AddNeigh(lb.host.Addr4, lb.host.MAC))
		require.NoError(t, lb.host.AddNeigh(b.dnsHost.Addr4, b.dnsHost.MAC))
		require.NoError(t, b.dnsHost.AddNeigh(lb.host.Addr4, lb.host.MAC))
		b.writeLBConfig(t, s)
	}
	b.dnsAddr = netip.AddrPortFrom(b.dnsHost.Addr4, 53).String()
	b.dnsCfg = filepath.Join(b.dir, "dns.yaml")
	b.dnsLog = filepath.Join(b.dir, "dns.log")
	b.writeDNSConfig(t)
	t.Cleanup(func() {
		b.stopDNS()
		if t.Failed() {
			if out, err := os.ReadFile(b.dnsLog); err == nil {
				t.Logf("xlb dns log (tail):\n%s", tail(out, 60))
			}
		}
	})
	return b
}

// writeLBConfig is a site's daemon config: its VIP on its one L7 host,
// announced to the router, and the status JSON on the host's address
// where xlb dns reads it.
func (b *gslbBed) writeLBConfig(t *testing.T, s *gslbSite) {
	t.Helper()
	lb := s.lb
	cfg := fmt.Sprintf(`interfaces:
  - name: eth0
    mode: native
outer_source:
  ipv4: %s
dataplane:
  max_vips: 4
  max_backends: 16
  conntrack_entries: 16384
health:
  port: %d
api:
  socket: %s
metrics:
  listen: %s:9724
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: %s
    port: 80
    protocol: tcp
    backends:
      - address: %s
bgp:
  asn: %d
  shutdown_drain: 1s
  peers:
    - address: %s
      asn: %d
      hold_time: %s
      keepalive: %s
`, lb.host.Addr4, ctlAdminPort, lb.socket, lb.host.Addr4, filepath.Join(lb.dir, "state.json"), lb.pin,
		s.vip, s.l7.host.Addr4, haEdgeASN, b.router.Addr4, haRouterASN, b.hold, b.keepalive)
	require.NoError(t, os.WriteFile(lb.cfg, []byte(cfg), 0o600))
}

// writeDNSConfig writes the GeoIP database (c-us in Virginia, c-eu in
// Paris, gslbAPNet in Tokyo) and xlb dns's config.
func (b *gslbBed) writeDNSConfig(t *testing.T) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24, IncludeReservedNetworks: true})
	require.NoError(t, err)
	for _, n := range []struct {
		net      netip.Prefix
		lat, lon float64
	}{
		{netip.PrefixFrom(b.cUS.Addr4, 32), 38.9, -77.0},
		{netip.PrefixFrom(b.cEU.Addr4, 32), 48.85, 2.35},
		{netip.MustParsePrefix(gslbAPNet), 35.68, 139.69},
	} {
		_, ipnet, err := net.ParseCIDR(n.net.String())
		require.NoError(t, err)
		require.NoError(t, tree.Insert(ipnet, mmdbtype.Map{"location": mmdbtype.Map{
			"latitude": mmdbtype.Float64(n.lat), "longitude": mmdbtype.Float64(n.lon)}}))
	}
	db := filepath.Join(b.dir, "geo.mmdb")
	f, err := os.Create(db)
	require.NoError(t, err)
	_, err = tree.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	var sites strings.Builder
	for _, s := range b.sites {
		// Timeouts generous for a busy machine: a slow answer must not
		// count as a failure and flip a site.
		fmt.Fprintf(&sites, `  - name: %s
    location: {lat: %g, lon: %g}
    vips: [%s]
    health: {daemons: ["%s:9724"], interval: 300ms, timeout: 3s, rise: 2, fall: 2, bgp: required}
`, s.name, s.lat, s.lon, s.vip, s.lb.host.Addr4)
	}
	cfg := fmt.Sprintf(`listen: "%s"
metrics: "%s:9725"
geoip: %s
zones:
  - name: %s
    records:
      - "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60"
      - "@ IN NS ns1"
      - "ns1 IN A %s"
sites:
%snames:
  - name: %s
    policy: geo
    sites: [us, eu, ap]
    default: us
    ttl: 5s
`, b.dnsAddr, b.dnsHost.Addr4, db, gslbZone, b.dnsHost.Addr4, sites.String(), gslbName)
	require.NoError(t, os.WriteFile(b.dnsCfg, []byte(cfg), 0o600))
}

// startDNS runs `xlb dns` in its namespace and waits until it answers.
func (b *gslbBed) startDNS(t *testing.T) {
	t.Helper()
	b.dnsCmd, b.dnsDone = startLogged(t, b.dnsHost, b.dnsLog, "xlb dns", 60*time.Second, func() bool {
		_, err := b.ask(b.cUS, "udp", "")
		return err == nil
	}, b.bin, "dns", "--config", b.dnsCfg)
}

func (b *gslbBed) stopDNS() {
	if b.dnsCmd == nil {
		return
	}
	_ = b.dnsCmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.dnsDone:
	case <-time.After(30 * time.Second):
		_ = b.dnsCmd.Process.Kill()
		<-b.dnsDone
	}
	b.dnsCmd = nil
}

// ask sends one A query for gslbName from client c over network, with
// an ECS option for ecs when not empty, and returns the answer.
func (b *gslbBed) ask(c *topo.Host, network, ecs string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, network, b.dnsAddr)
	if err != nil {
		return nil, err
	}
	co := &dns.Conn{Conn: conn}
	defer co.Close()
	m := new(dns.Msg)
	m.SetQuestion(gslbName, dns.TypeA)
	m.RecursionDesired = false
	if ecs != "" {
		pfx := netip.MustParsePrefix(ecs)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(pfx.Bits()), Address: pfx.Addr().AsSlice()})
	}
	cl := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := cl.ExchangeWithConn(m, co)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return r, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// siteOf names the site whose VIP an answer carries ("" for none, "+"
// joined for several).
func (b *gslbBed) siteOf(m *dns.Msg) string {
	var names []string
	for _, rr := range m.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		addr, _ := netip.AddrFromSlice(a.A)
		for _, s := range b.sites {
			if s.vip == addr.Unmap() {
				names = append(names, s.name)
			}
		}
	}
	slices.Sort(names)
	return strings.Join(names, "+")
}

// gslbClient is one kind of client: a host, and the ECS subnet its
// resolver sends (empty: none).
type gslbClient struct {
	label string
	host  *topo.Host
	ecs   string
}

func (b *gslbBed) clients() []gslbClient {
	return []gslbClient{{"us", b.cUS, ""}, {"eu", b.cEU, ""}, {"ap-ecs", b.cUS, gslbAPNet}}
}

// count asks n questions per client (alternating UDP and TCP) and counts
// the answering sites per client.
func (b *gslbBed) count(t *testing.T, n int) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, c := range b.clients() {
		out[c.label] = map[string]int{}
		for i := range n {
			network := "udp"
			if i%2 == 1 {
				network = "tcp"
			}
			m, err := b.ask(c.host, network, c.ecs)
			require.NoError(t, err, "client %s over %s", c.label, network)
			out[c.label][b.siteOf(m)]++
		}
	}
	return out
}

// fetch resolves gslbName as client c and fetches its answer over HTTP
// through the router: the L7 host that answers.
func (b *gslbBed) fetch(t *testing.T, c gslbClient) string {
	t.Helper()
	m, err := b.ask(c.host, "udp", c.ecs)
	require.NoError(t, err)
	require.Len(t, m.Answer, 1)
	vip, _ := netip.AddrFromSlice(m.Answer[0].(*dns.A).A)
	var host string
	require.Eventually(t, func() bool {
		host, err = httpGet(newHTTPClient(c.host), vip.Unmap())
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "GET http://%s/ from %s: %v", vip, c.host.Name, &err)
	return host
}

// waitAnswer waits until client c is answered with site want and
// returns how long that took from since.
func (b *gslbBed) waitAnswer(t *testing.T, c gslbClient, want string, since time.Time) time.Duration {
	t.Helper()
	var last string
	var took time.Duration
	require.Eventually(t, func() bool {
		m, err := b.ask(c.host, "udp", c.ecs)
		if err != nil {
			last = err.Error()
			return false
		}
		last = b.siteOf(m)
		took = time.Since(since)
		return last == want
	}, 90*time.Second, 50*time.Millisecond, "client %s: answered %q, want %q", c.label, &last, want)
	return took
}

// waitRoute waits until the router's route to vip is via lb (or, with
// lb nil, gone) and returns how long that took from since.
func (b *gslbBed) waitRoute(t *testing.T, vip netip.Addr, lb *haLB, since time.Time) time.Duration {
	t.Helper()
	var want []netip.Addr
	if lb != nil {
		want = []netip.Addr{lb.host.Addr4}
	}
	var got []netip.Addr
	var took time.Duration
	require.Eventually(t, func() bool {
		var err error
		got, err = b.frr.NextHops(netip.PrefixFrom(vip, 32))
		took = time.Since(since)
		return err == nil && slices.Equal(got, want)
	}, 90*time.Second, 50*time.Millisecond, "router next hops to %s: %v, want %v", vip, &got, want)
	return took
}

// blockBGP drops BGP in and out of lb's namespace (on) or lets it
// through again (off).
func blockBGP(t *testing.T, lb *haLB, on bool) {
	t.Helper()
	const table = "xlbgslb"
	cmds := [][]string{{"delete", "table", "inet", table}}
	if on {
		cmds = [][]string{
			{"add", "table", "inet", table},
			{"add", "chain", "inet", table, "in", "{ type filter hook input priority 0; }"},
			{"add", "chain", "inet", table, "out", "{ type filter hook output priority 0; }"},
			{"add", "rule", "inet", table, "in", "tcp", "sport", "179", "drop"},
			{"add", "rule", "inet", table, "in", "tcp", "dport", "179", "drop"},
			{"add", "rule", "inet", table, "out", "tcp", "sport", "179", "drop"},
			{"add", "rule", "inet", table, "out", "tcp", "dport", "179", "drop"},
		}
	}
	for _, c := range cmds {
		out, err := lb.host.Run(context.Background(), "nft", c...)
		require.NoError(t, err, "nft %v: %s", c, out)
	}
}

func TestGSLBSiteFailover(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed (make deps installs nftables)")
	}
	b := newGSLBBed(t)
	for _, s := range b.sites {
		b.startLB(t, s.lb)
	}
	for _, s := range b.sites {
		b.waitRoute(t, s.vip, s.lb, time.Now())
	}
	b.startDNS(t)
	us, eu, ap := b.clients()[0], b.clients()[1], b.clients()[2]
	siteUS, siteEU := b.sites[0], b.sites[1]
	const n = 40

	// Every site healthy: each client gets its own region's site.
	for _, c := range b.clients() {
		b.waitAnswer(t, c, map[string]string{"us": "us", "eu": "eu", "ap-ecs": "ap"}[c.label], time.Now())
	}
	before := b.count(t, n)
	t.Logf("all sites up: answers per client and site %v", before)
	assert.Equal(t, map[string]int{"us": n}, before["us"])
	assert.Equal(t, map[string]int{"eu": n}, before["eu"])
	assert.Equal(t, map[string]int{"ap": n}, before["ap-ecs"])
	assert.Equal(t, "l7-us", b.fetch(t, us), "the US client's answer is served by the US site")
	assert.Equal(t, "l7-eu", b.fetch(t, eu))
	assert.Equal(t, "l7-ap", b.fetch(t, ap))
	m, err := b.ask(b.cUS, "udp", gslbAPNet)
	require.NoError(t, err)
	require.NotNil(t, m.IsEdns0())
	var scope uint8
	for _, o := range m.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			scope = e.SourceScope
		}
	}
	assert.Equal(t, uint8(24), scope, "the ECS scope is the database network's")
	if _, err := exec.LookPath("dig"); err == nil {
		// A real client of another make: BIND's dig, from the EU client's
		// namespace, once plain and once with ECS for Tokyo.
		for _, tc := range []struct{ ecs, want string }{{"", "eu"}, {gslbAPNet, "ap"}} {
			args := []string{"@" + b.dnsHost.Addr4.String(), "+short", "+norecurse", "+time=5", "+tries=3", gslbName, "A"}
			if tc.ecs != "" {
				args = append(args, "+subnet="+tc.ecs)
			}
			out, err := b.cEU.Run(context.Background(), "dig", args...)
			require.NoError(t, err, "dig %v: %s", args, out)
			siteVIP := map[string]string{}
			for _, s := range b.sites {
				siteVIP[s.name] = s.vip.String()
			}
			assert.Equal(t, siteVIP[tc.want], strings.TrimSpace(string(out)), "dig %v", args)
		}
	} else {
		t.Log("dig is not installed (make deps installs Debian's dnsutils): no query from it")
	}

	t.Run("1 the US site's L7 host dies: US clients go to the next nearest site", func(t *testing.T) {
		killed := time.Now()
		siteUS.l7.stop()
		withdrawn := b.waitRoute(t, siteUS.vip, nil, killed)
		switched := b.waitAnswer(t, us, "eu", killed)
		t.Logf("L7 host killed: route withdrawn after %v, xlb dns answers the US client with eu after %v (detection time)",
			withdrawn.Round(time.Millisecond), switched.Round(time.Millisecond))
		got := b.count(t, n)
		t.Logf("US site down: answers per client and site %v", got)
		assert.Equal(t, map[string]int{"eu": n}, got["us"], "next nearest to Virginia is Ireland")
		assert.Equal(t, map[string]int{"eu": n}, got["eu"])
		assert.Equal(t, map[string]int{"ap": n}, got["ap-ecs"])
		assert.Equal(t, "l7-eu", b.fetch(t, us), "and the EU site serves it")

		back := time.Now()
		siteUS.l7.start(t)
		announced := b.waitRoute(t, siteUS.vip, siteUS.lb, back)
		returned := b.waitAnswer(t, us, "us", back)
		t.Logf("L7 host back: route announced after %v, US clients answered with us again after %v",
			announced.Round(time.Millisecond), returned.Round(time.Millisecond))
		got = b.count(t, n)
		assert.Equal(t, map[string]int{"us": n}, got["us"])
		assert.Equal(t, "l7-us", b.fetch(t, us))
	})

	t.Run("2 the EU edge host loses BGP: its healthy backends do not keep the site up", func(t *testing.T) {
		cut := time.Now()
		blockBGP(t, siteEU.lb, true)
		switched := b.waitAnswer(t, eu, "us", cut)
		t.Logf("BGP blocked: xlb dns answers the EU client with us after %v (hold time %v)", switched.Round(time.Millisecond), b.hold)
		st, err := siteEU.lb.api.Status(context.Background())
		require.NoError(t, err)
		require.NotNil(t, st.BGP)
		require.Len(t, st.VIPs, 1)
		require.Len(t, st.VIPs[0].Backends, 1)
		assert.Equal(t, api.StateActive, st.VIPs[0].Backends[0].State, "the EU VIP still has its active backend: BGP alone took the site out")
		for _, p := range st.BGP.Peers {
			assert.False(t, p.Up, "session to %s", p.Addr)
		}
		logText, err := os.ReadFile(b.dnsLog)
		require.NoError(t, err)
		assert.Contains(t, string(logText), "no established BGP session", "xlb dns took the EU site down for its BGP state")
		got := b.count(t, n)
		t.Logf("EU site without BGP: answers per client and site %v", got)
		assert.Equal(t, map[string]int{"us": n}, got["eu"], "next nearest to Paris is Virginia")
		assert.Equal(t, map[string]int{"us": n}, got["us"])
		assert.Equal(t, map[string]int{"ap": n}, got["ap-ecs"])

		back := time.Now()
		blockBGP(t, siteEU.lb, false)
		returned := b.waitAnswer(t, eu, "eu", back)
		t.Logf("BGP back: EU clients answered with eu again after %v", returned.Round(time.Millisecond))
		assert.Equal(t, map[string]int{"eu": n}, b.count(t, n)["eu"])
		assert.Equal(t, "l7-eu", b.fetch(t, eu))
	})
}
