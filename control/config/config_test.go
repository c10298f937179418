package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/health"
	"github.com/xlbproject/xlb/internal/failopen"
)

const minimal = `
interfaces:
  - name: eth0
outer_source:
  ipv4: 192.0.2.10
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    backends:
      - address: 10.0.1.1
`

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../example.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.VIPs, 3)
	assert.Equal(t, netip.MustParseAddr("203.0.113.10"), cfg.VIPs[0].Addr)
	assert.Equal(t, uint16(443), cfg.VIPs[0].Port)
	assert.Equal(t, uint32(2), cfg.VIPs[0].Backends[2].Weight)
	assert.Equal(t, uint16(0), cfg.VIPs[2].Port, "\"*\" is a port-wildcard VIP")
	assert.Equal(t, "udp", cfg.VIPs[2].Proto)
	assert.Nil(t, cfg.Dataplane.NextHopMAC, "the example takes next hops from the FIB")
	assert.Zero(t, cfg.Dataplane.MTU, "the example takes the interfaces' MTU")
	assert.Equal(t, 200000, cfg.Dataplane.NewFlowRateLimit)
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, "x.yaml", cfg.File)
	assert.Equal(t, "auto", cfg.Interfaces[0].Mode)
	assert.Equal(t, Health{
		Spec: health.Spec{Type: "http", Path: "/ready", Status: 200,
			Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 2, Fall: 2},
		Port: 9901, AllDown: AllDownDrop,
	}, cfg.Health)
	assert.Equal(t, DefaultSocket, cfg.API.Socket)
	assert.Equal(t, DefaultMetricsListen, cfg.Metrics.Listen)
	assert.Equal(t, DefaultStatePath, cfg.StatePath)
	assert.Equal(t, DefaultPinPath, cfg.PinPath)
	require.Len(t, cfg.VIPs, 1)
	assert.Equal(t, uint32(65537), cfg.VIPs[0].TableSize)
	assert.Equal(t, 10*time.Second, cfg.Dataplane.TCPCloseTimeout)
	assert.Equal(t, "ipip", cfg.VIPs[0].Forwarding)
	assert.Equal(t, []Backend{{Addr: netip.MustParseAddr("10.0.1.1"), Weight: 1, State: "active"}}, cfg.VIPs[0].Backends)
	// The defaults must take a refused host out within the 1 s target.
	worst := time.Duration(cfg.Health.Fall)*cfg.Health.Interval*11/10 + cfg.Health.Timeout
	assert.Less(t, worst, time.Second)
}

// TestErrors covers every error path: each case names the line and a piece
// of the reason the operator reads.
func TestErrors(t *testing.T) {
	base := func(vipExtra, backendExtra string) string {
		return "interfaces:\n  - name: eth0\nouter_source:\n  ipv4: 192.0.2.10\nvips:\n  - address: 203.0.113.10\n    port: 80\n    protocol: tcp\n" + vipExtra +
			"    backends:\n      - address: 10.0.1.1\n" + backendExtra
	}
	tests := []struct {
		name string
		in   string
		want string // expected error text, including "x.yaml:LINE: "
	}{
		{"empty", "", "x.yaml: empty configuration"},
		{"syntax", "interfaces: [\n", "x.yaml:1: syntax error: a value is missing where one must come: a '[' or '{' that is not closed, or a ',' with nothing after it (did not find expected node content)"},
		{"two documents", minimal + "---\ninterfaces: []\n", "x.yaml:12: more than one YAML document"},
		{"unknown top field", minimal + "bogus: 1\n", `x.yaml:12: unknown key "bogus" (known keys: api, bgp, bpf,`},
		{"unknown nested field", base("    weigth: 3\n", ""), `x.yaml:9: unknown key "weigth" in vips[0] (known keys:`},
		{"wrong type", "interfaces: 3\n", "x.yaml:1: interfaces must be a list, not 3"},
		{"no interfaces", "outer_source:\n  ipv4: 192.0.2.10\n", "x.yaml:1: interfaces: at least one interface is required"},
		{"interface without name", "interfaces:\n  - mode: native\n", "x.yaml:2: interfaces[0]: name is required"},
		{"interface bad name", "interfaces:\n  - name: a/b\n", `x.yaml:2: interfaces[0].name: "a/b" is not a valid interface name`},
		{"interface twice", "interfaces:\n  - name: eth0\n  - name: eth0\n", `x.yaml:3: interfaces[1].name: interface "eth0" is listed twice`},
		{"bad mode", "interfaces:\n  - name: eth0\n    mode: turbo\n", `x.yaml:3: interfaces[0].mode: unknown attach mode "turbo"`},
		{"bad mac", minimal + "dataplane:\n  next_hop_mac: zz\n", `x.yaml:13: dataplane.next_hop_mac: "zz" is not an Ethernet MAC address`},
		{"zero next hop mac", minimal + "dataplane:\n  next_hop_mac: 00:00:00:00:00:00\n", `x.yaml:13: dataplane.next_hop_mac: "00:00:00:00:00:00" is the zero MAC, which no host has`},
		{"bad src mac", minimal + "dataplane:\n  src_mac: 01:02\n", `x.yaml:13: dataplane.src_mac: "01:02" is not an Ethernet MAC address`},
		{"table size not prime", minimal + "dataplane:\n  table_size: 100\n", "x.yaml:13: dataplane.table_size: 100 is not prime"},
		{"mtu too small", minimal + "dataplane:\n  mtu: 500\n", "x.yaml:13: dataplane.mtu: 500 is below 1280"},
		{"mtu range", minimal + "dataplane:\n  mtu: 70000\n", "x.yaml:13: dataplane.mtu: 70000 is out of range 0..65535"},
		{"negative new-flow rate", minimal + "dataplane:\n  new_flow_rate_limit: -1\n", "x.yaml:13: dataplane.new_flow_rate_limit: -1 is out of range 0..2147483647"},
		{"new-flow rate not a number", minimal + "dataplane:\n  new_flow_rate_limit: lots\n", "x.yaml:13: dataplane.new_flow_rate_limit"},
		{"vip table differs", base("    table_size: 251\n", ""), "x.yaml:9: vips[0].table_size: 251 differs from dataplane.table_size 65537"},
		{"bad outer v4", minimal + "  ipv6: 10.0.0.1\n", ""}, // duplicate key: caught by the YAML parser
		{"outer v4 is v6", "interfaces:\n  - name: eth0\nouter_source:\n  ipv4: 2001:db8::1\n", `x.yaml:4: outer_source.ipv4: "2001:db8::1" is not a unicast IPv4 address`},
		{"outer v6 is v4", "interfaces:\n  - name: eth0\nouter_source:\n  ipv6: 10.0.0.1\n", `x.yaml:4: outer_source.ipv6: "10.0.0.1" is not a unicast IPv6 address`},
		{"max_vips range", minimal + "dataplane:\n  max_vips: 0\n", "x.yaml:13: dataplane.max_vips: 0 is out of range 1..1048576"},
		{"max_backends range", minimal + "dataplane:\n  max_backends: -1\n", "x.yaml:13: dataplane.max_backends: -1 is out of range"},
		{"conntrack range", minimal + "dataplane:\n  conntrack_entries: 10\n", "x.yaml:13: dataplane.conntrack_entries: 10 is out of range 1024..67108864"},
		{"udp idle", minimal + "dataplane:\n  udp_idle_timeout: soon\n", `x.yaml:13: dataplane.udp_idle_timeout: "soon" is not a duration`},
		{"udp idle short", minimal + "dataplane:\n  udp_idle_timeout: 1ms\n", "x.yaml:13: dataplane.udp_idle_timeout: 1ms is shorter than the minimum 1s"},
		{"tcp close", minimal + "dataplane:\n  tcp_close_timeout: later\n", `x.yaml:13: dataplane.tcp_close_timeout: "later" is not a duration`},
		{"tcp close short", minimal + "dataplane:\n  tcp_close_timeout: 10ms\n", "x.yaml:13: dataplane.tcp_close_timeout: 10ms is shorter than the minimum 1s"},
		{"health type", minimal + "health:\n  type: icmp\n", `x.yaml:13: health.type: unknown check type "icmp"`},
		{"health all_down", minimal + "health:\n  all_down: open\n", `x.yaml:13: health.all_down: unknown choice "open" (want fail_open or drop)`},
		{"fail_open_below without fail_open", minimal + "health:\n  fail_open_below: 50%\n", "x.yaml:13: health.fail_open_below: needs all_down: fail_open (with drop, a VIP never fails open)"},
		{"fail_open_below a count", minimal + "health:\n  all_down: fail_open\n  fail_open_below: 2\n", `x.yaml:14: health.fail_open_below: "2" is not a percentage such as 50%`},
		{"fail_open_below 0%", minimal + "health:\n  all_down: fail_open\n  fail_open_below: 0%\n", "x.yaml:14: health.fail_open_below: 0% is not within 1%..100%"},
		{"fail_open_below over 100%", minimal + "health:\n  all_down: fail_open\n  fail_open_below: 150%\n", "x.yaml:14: health.fail_open_below: 150% is not within 1%..100%"},
		{"health port", minimal + "health:\n  port: 70000\n", "x.yaml:13: health.port: 70000 is out of range 0..65535"},
		{"health path", minimal + "health:\n  path: ready\n", `x.yaml:13: health.path: "ready" must start with /`},
		{"health status", minimal + "health:\n  expect_status: 42\n", "x.yaml:13: health.expect_status: 42 is out of range 100..599"},
		{"health interval", minimal + "health:\n  interval: 1ms\n", "x.yaml:13: health.interval: 1ms is shorter than the minimum 10ms"},
		{"health timeout > interval", minimal + "health:\n  interval: 100ms\n  timeout: 1s\n", "x.yaml:14: health.timeout: timeout 1s is longer than the interval 100ms"},
		{"health rise", minimal + "health:\n  rise: 0\n", "x.yaml:13: health.rise: 0 is out of range 1..100"},
		{"health fall", minimal + "health:\n  fall: 101\n", "x.yaml:13: health.fall: 101 is out of range 1..100"},
		{"health port 0 with wildcard", strings.Replace(minimal, "port: 80", `port: "*"`, 1) + "health:\n  port: 0\n", `x.yaml:8: vips[0].port: health.port 0 means "the VIP's port"`},
		{"api socket relative", minimal + "api:\n  socket: xlb.sock\n", `x.yaml:13: api.socket: "xlb.sock" must be an absolute path`},
		{"metrics listen", minimal + "metrics:\n  listen: 9724\n", `x.yaml:13: metrics.listen: "9724" is not host:port`},
		{"state path", minimal + "state:\n  path: state.json\n", `x.yaml:13: state.path: "state.json" must be an absolute path`},
		{"pin path", minimal + "bpf:\n  pin_path: xlb\n", `x.yaml:13: bpf.pin_path: "xlb" must be an absolute path on a bpffs mount`},
		{"vip without address", "interfaces:\n  - name: eth0\nvips:\n  - port: 80\n    protocol: tcp\n", "x.yaml:4: vips[0]: address is required"},
		{"vip bad address", strings.Replace(minimal, "203.0.113.10", "203.0.113", 1), `x.yaml:7: vips[0].address: "203.0.113" is not an IP address`},
		{"vip mapped address", strings.Replace(minimal, "203.0.113.10", "::ffff:203.0.113.10", 1), `x.yaml:7: vips[0].address: "::ffff:203.0.113.10" is an IPv4-mapped IPv6 address`},
		{"vip unspecified", strings.Replace(minimal, "203.0.113.10", "0.0.0.0", 1), `x.yaml:7: vips[0].address: "0.0.0.0" cannot be a VIP`},
		{"vip v4 without outer v4", strings.Replace(minimal, "ipv4: 192.0.2.10", "ipv6: 2001:db8::1", 1), "x.yaml:7: vips[0].address: IPv4 VIP needs outer_source.ipv4"},
		{"vip v6 without outer v6", strings.NewReplacer("203.0.113.10", "2001:db8::10", "10.0.1.1", "2001:db8::1:1").Replace(minimal), "x.yaml:7: vips[0].address: IPv6 VIP needs outer_source.ipv6"},
		{"vip without port", strings.Replace(minimal, "    port: 80\n", "", 1), "x.yaml:7: vips[0]: port is required"},
		{"vip bad port", strings.Replace(minimal, "port: 80", "port: 0", 1), `x.yaml:8: vips[0].port: "0" is not a port 1..65535 or "*"`},
		{"vip port text", strings.Replace(minimal, "port: 80", "port: http", 1), `x.yaml:8: vips[0].port: "http" is not a port`},
		{"vip without protocol", strings.Replace(minimal, "    protocol: tcp\n", "", 1), "x.yaml:7: vips[0]: protocol is required (tcp or udp)"},
		{"vip bad protocol", strings.Replace(minimal, "protocol: tcp", "protocol: sctp", 1), `x.yaml:9: vips[0].protocol: unknown protocol "sctp"`},
		{"vip bad forwarding", base("    forwarding: gre\n", ""), `x.yaml:9: vips[0].forwarding: unknown forwarding mode "gre"`},
		{"vip table not prime", base("    table_size: 65536\n", ""), "x.yaml:9: vips[0].table_size: 65536 is not prime"},
		{"vip table range", base("    table_size: 0\n", ""), "x.yaml:9: vips[0].table_size: 0 is out of range"},
		{"vip too many backends", base("", "      - address: 10.0.1.2\n      - address: 10.0.1.3\n") + "dataplane:\n  table_size: 2\n", "x.yaml:9: vips[0].backends: 3 backends do not fit a table of 2 slots"},
		{"duplicate vip", minimal + "  - address: 203.0.113.10\n    port: 80\n    protocol: tcp\n", "x.yaml:12: vips[1]: duplicate of vips[0]"},
		{"too many vips", minimal + "  - address: 203.0.113.11\n    port: 80\n    protocol: tcp\ndataplane:\n  max_vips: 1\n", "x.yaml:6: vips: 2 VIPs exceed dataplane.max_vips 1"},
		{"backend without address", base("", "      - weight: 2\n"), "x.yaml:11: vips[0].backends[1]: address is required"},
		{"backend bad address", base("", "      - address: 10.0.1\n"), `x.yaml:11: vips[0].backends[1].address: "10.0.1" is not an IP address`},
		{"backend unspecified", base("", "      - address: 0.0.0.0\n"), `x.yaml:11: vips[0].backends[1].address: "0.0.0.0" cannot be a backend`},
		{"backend other family without its outer source", base("", "      - address: 2001:db8::1\n"), "x.yaml:11: vips[0].backends[1].address: 2001:db8::1 is IPv6, which needs outer_source.ipv6"},
		{"l2dsr backend other family", base("    forwarding: l2dsr\n", "      - address: 2001:db8::1\n"), "x.yaml:12: vips[0].backends[1].address: 2001:db8::1 and the VIP 203.0.113.10 are of different IP families (l2dsr"},
		{"gue without a port", base("    forwarding: gue\n", ""), "x.yaml:9: vips[0].forwarding: gue needs dataplane.gue_port"},
		{"gue port range", minimal + "dataplane:\n  gue_port: 70000\n", "x.yaml:13: dataplane.gue_port: 70000 is out of range 0..65535"},
		{"backend twice", base("", "      - address: 10.0.1.1\n"), "x.yaml:11: vips[0].backends[1].address: 10.0.1.1 is already backends[0] of this VIP"},
		{"backend weight", base("", "        weight: 70000\n"), "x.yaml:11: vips[0].backends[0].weight: 70000 is out of range 0..65535"},
		{"backend state", base("", "        state: down\n"), `x.yaml:11: vips[0].backends[0].state: unknown state "down" (want active or draining)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tt.in))
			require.Error(t, err)
			if tt.want != "" {
				assert.Contains(t, err.Error(), tt.want)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "x.yaml"), "every error names the file: %v", err)
		})
	}
}

// TestFailOpenBelow: the panic threshold is a percentage and only means
// something with all_down: fail_open; unset, a VIP fails open only while
// none of its backends passes.
func TestFailOpenBelow(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte(minimal+"health:\n  all_down: fail_open\n  fail_open_below: 50%\n"))
	require.NoError(t, err)
	assert.Equal(t, failopen.Policy{On: true, Below: 50}, cfg.Health.FailOpen())

	cfg, err = Parse("x.yaml", []byte(minimal+"health:\n  all_down: fail_open\n"))
	require.NoError(t, err)
	assert.Equal(t, failopen.Policy{On: true}, cfg.Health.FailOpen())

	cfg, err = Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, failopen.Policy{}, cfg.Health.FailOpen())
}

func TestAllErrorsReported(t *testing.T) {
	in := strings.NewReplacer("port: 80", "port: 0", "protocol: tcp", "protocol: sctp").Replace(minimal)
	_, err := Parse("x.yaml", []byte(in))
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, 2, "both problems listed: %v", err)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/xlb.yaml")
	require.Error(t, err)
	assert.EqualError(t, err, "config file /nonexistent/xlb.yaml does not exist")
}

func TestZeroWeightAndDrainingAccepted(t *testing.T) {
	in := minimal + "        weight: 0\n        state: draining\n"
	cfg, err := Parse("x.yaml", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, Backend{Addr: netip.MustParseAddr("10.0.1.1"), Weight: 0, State: "draining"}, cfg.VIPs[0].Backends[0])
}

// TestMixedFamilies: an IPv4 VIP may have IPv6 L7 hosts and the other way
// round (4-in-6, 6-in-4) in ipip and gue, given the outer source of the
// hosts' family; a VIP whose hosts are all of the other family needs no
// outer source of its own.
func TestMixedFamilies(t *testing.T) {
	for _, mode := range []string{"ipip", "gue"} {
		cfg, err := Parse("x.yaml", []byte(`
interfaces:
  - name: eth0
outer_source:
  ipv6: 2001:db8::1
dataplane:
  gue_port: 6080
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    forwarding: `+mode+`
    backends:
      - address: 2001:db8::11
      - address: 2001:db8::12
`))
		require.NoError(t, err, mode)
		assert.Equal(t, mode, cfg.VIPs[0].Forwarding)
		assert.Equal(t, uint16(6080), cfg.Dataplane.GUEPort)
		assert.Len(t, cfg.VIPs[0].Backends, 2)
	}
}
