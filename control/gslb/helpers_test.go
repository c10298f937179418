package gslb

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/statuspage"
)

// Test networks placed by the test database.
var geoNets = []struct {
	cidr               string
	lat, lon           float64
	coords             bool
	country, continent string
}{
	{"192.0.2.0/24", 38.9, -77.0, true, "US", "NA"},     // Virginia
	{"198.51.100.0/24", 48.85, 2.35, true, "FR", "EU"},  // Paris
	{"203.0.113.0/24", 35.68, 139.69, true, "JP", "AS"}, // Tokyo
	{"100.64.1.0/24", 0, 0, false, "DE", "EU"},          // country only
	{"2001:db8:e0::/48", 52.52, 13.4, true, "DE", "EU"}, // Berlin
}

// writeGeoDB writes a small City-format database and returns its path.
func writeGeoDB(t testing.TB) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24, IncludeReservedNetworks: true})
	require.NoError(t, err)
	for _, n := range geoNets {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		require.NoError(t, err)
		rec := mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(n.country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(n.continent)},
		}
		if n.coords {
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(n.lat), "longitude": mmdbtype.Float64(n.lon)}
		}
		require.NoError(t, tree.Insert(ipnet, rec))
	}
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = tree.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return path
}

// fakeDaemon is a real HTTP server with the daemon's own status routes
// (statuspage.Mount with api.LiveHandler, as `xlb daemon` mounts them on
// its metrics listener), fed by a Service that reports one VIP whose
// backend is active or down.
type fakeDaemon struct {
	srv      *httptest.Server
	vip      netip.Addr
	healthy  atomic.Bool
	bgp      atomic.Pointer[api.BGPStatus] // nil: BGP off
	requests atomic.Int64
	badSeen  atomic.Int64 // status requests answered while unhealthy
}

// statusService is the part of api.Service the status page reads; the
// other methods are never called by GET /api/status.
type statusService struct {
	api.Service
	d *fakeDaemon
}

func (s statusService) Status(context.Context) (api.Status, error) {
	s.d.requests.Add(1)
	state := api.StateActive
	if !s.d.healthy.Load() {
		state = api.StateDown
		s.d.badSeen.Add(1)
	}
	return api.Status{Time: time.Now(), Version: "test", VIPs: []api.VIP{{
		Key:  api.VIPKey{Addr: s.d.vip, Port: 80, Proto: api.ProtoTCP},
		Mode: api.ModeIPIP, TableSize: 7,
		Backends: []api.Backend{{Addr: netip.MustParseAddr("10.9.0.1"), Weight: 1, State: state, Healthy: state == api.StateActive}},
	}}, BGP: s.d.bgp.Load()}, nil
}

func (s statusService) Stats(context.Context) (api.Stats, error) {
	return api.Stats{Time: time.Now()}, nil
}

func newDaemon(t testing.TB, vip string) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{vip: netip.MustParseAddr(vip)}
	d.healthy.Store(true)
	mux := http.NewServeMux()
	statuspage.Mount(mux, api.LiveHandler(statusService{d: d}))
	d.srv = httptest.NewServer(mux)
	t.Cleanup(d.srv.Close)
	return d
}

// running is a started server.
type running struct {
	addr    string
	metrics *Metrics
	checker *Checker
	srv     *Server
}

// start parses cfgText (%GEO% replaced by a test database), starts its
// health checks and serves it on loopback UDP and TCP on one port.
func start(t testing.TB, cfgText string) *running {
	t.Helper()
	if strings.Contains(cfgText, "%GEO%") {
		cfgText = strings.ReplaceAll(cfgText, "%GEO%", writeGeoDB(t))
	}
	cfg, err := Parse("test.yaml", []byte(cfgText))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m := NewMetrics(prometheus.NewRegistry())
	var geo *Locator
	if cfg.GeoIP != "" {
		geo, err = OpenLocator(cfg.GeoIP)
		require.NoError(t, err)
		t.Cleanup(func() { _ = geo.Close() })
	}
	chk := NewChecker(cfg.Sites, m, log, nil)
	srv := NewServer(cfg, chk, geo, m, log)
	pc, ln := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { chk.Run(ctx) })
	wg.Go(func() { _ = srv.Serve(ctx, pc, ln) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &running{addr: ln.Addr().String(), metrics: m, checker: chk, srv: srv}
}

// listenPair opens UDP and TCP on the same loopback port.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln
		}
		_ = ln.Close()
	}
	t.Fatal("no free loopback port for UDP and TCP")
	return nil, nil
}

// ask sends one query over network ("udp" or "tcp").
func ask(t *testing.T, network, addr, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	for _, e := range edit {
		e(m)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	require.NoError(t, err)
	return r
}

// withECS adds an EDNS0 Client Subnet option for cidr.
func withECS(cidr string) func(*dns.Msg) {
	return func(m *dns.Msg) {
		pfx := netip.MustParsePrefix(cidr)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(pfx.Bits()), Address: pfx.Addr().AsSlice()}
		e.Family = 1
		if pfx.Addr().Is6() {
			e.Family = 2
		}
		o := m.IsEdns0()
		if o == nil {
			m.SetEdns0(1232, false)
			o = m.IsEdns0()
		}
		o.Option = append(o.Option, e)
	}
}

// addrs returns the A/AAAA addresses of an answer.
func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}
