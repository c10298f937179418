package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minimal ends at line 11; bgpBase's "bgp:" is line 12.
const bgpBase = minimal + `bgp:
  asn: 65001
  peers:
    - address: 192.0.2.1
      asn: 65000
`

func TestBGPDefaults(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Nil(t, cfg.BGP, "no bgp section: BGP is off")

	cfg, err = Parse("x.yaml", []byte(bgpBase))
	require.NoError(t, err)
	require.NotNil(t, cfg.BGP)
	assert.Equal(t, &BGP{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"), ListenPort: 0,
		ShutdownDrain: DefaultShutdownDrain, RestartTime: DefaultBGPRestartTime,
		Peers: []BGPPeer{{Addr: netip.MustParseAddr("192.0.2.1"), Port: 179, ASN: 65000,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []string{"ipv4"}}},
	}, cfg.BGP)
}

func TestBGPFull(t *testing.T) {
	src := strings.Replace(minimal, "  ipv4: 192.0.2.10\n", "  ipv4: 192.0.2.10\n  ipv6: 2001:db8::10\n", 1) + `bgp:
  asn: 4200000001
  router_id: 10.255.0.1
  listen_port: 1179
  shutdown_drain: 5s
  restart_time: 0s
  peers:
    - address: 2001:db8::1
      port: 1790
      asn: 65000
      password: s3cret
      hold_time: 6s
      families: [ipv6, ipv4]
  vips:
    - address: 203.0.113.10
      communities: ["65001:100", "0:666"]
      local_pref: 200
`
	cfg, err := Parse("x.yaml", []byte(src))
	require.NoError(t, err)
	b := cfg.BGP
	assert.Equal(t, uint32(4200000001), b.ASN)
	assert.Equal(t, netip.MustParseAddr("10.255.0.1"), b.RouterID)
	assert.Equal(t, uint16(1179), b.ListenPort)
	assert.Equal(t, 5*time.Second, b.ShutdownDrain)
	assert.Zero(t, b.RestartTime, "0 disables graceful restart")
	assert.Equal(t, []BGPPeer{{Addr: netip.MustParseAddr("2001:db8::1"), Port: 1790, ASN: 65000, Password: "s3cret",
		HoldTime: 6 * time.Second, Keepalive: 2 * time.Second, Families: []string{"ipv6", "ipv4"}}}, b.Peers)
	assert.Equal(t, []BGPVIP{{Addr: netip.MustParseAddr("203.0.113.10"), Communities: []uint32{65001<<16 | 100, 666}, LocalPref: 200}}, b.VIPs)
}

func TestBGPErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"no asn", minimal + "bgp:\n  peers:\n    - address: 192.0.2.1\n      asn: 65000\n", "x.yaml:12: bgp: asn is required"},
		{"asn zero", strings.Replace(bgpBase, "asn: 65001", "asn: 0", 1), "x.yaml:13: bgp.asn: 0 is not an AS number"},
		{"as_trans", strings.Replace(bgpBase, "asn: 65001", "asn: 23456", 1), "x.yaml:13: bgp.asn: 23456 is AS_TRANS"},
		{"no peers", minimal + "bgp:\n  asn: 65001\n", "x.yaml:12: bgp: at least one peer is required"},
		{"router id v6", bgpBase + "  router_id: 2001:db8::1\n", `x.yaml:17: bgp.router_id: "2001:db8::1" is not a unicast IPv4 address`},
		{"router id needed", strings.Replace(bgpBase, "ipv4: 192.0.2.10", "ipv6: 2001:db8::10", 1), "vips[0].address: IPv4 VIP needs outer_source.ipv4"},
		{"peer address", strings.Replace(bgpBase, "192.0.2.1\n", "router1\n", 1), `x.yaml:15: bgp.peers[0].address: "router1" is not a unicast IP address`},
		{"peer without asn", strings.Replace(bgpBase, "      asn: 65000\n", "", 1), "x.yaml:15: bgp.peers[0]: asn is required"},
		{"peer twice", bgpBase + "    - address: 192.0.2.1\n      asn: 65000\n", "x.yaml:17: bgp.peers[1].address: 192.0.2.1 is already peers[0]"},
		{"hold too short", bgpBase + "      hold_time: 1s\n", "x.yaml:17: bgp.peers[0].hold_time: 1s is shorter than the minimum 3s"},
		{"keepalive not shorter", bgpBase + "      hold_time: 3s\n      keepalive: 3s\n", "x.yaml:18: bgp.peers[0].keepalive: 3s is not shorter than the hold time 3s"},
		{"fractional timer", bgpBase + "      hold_time: 4500ms\n", "x.yaml:17: bgp.peers[0].hold_time: BGP timers are whole seconds"},
		{"bad family", bgpBase + "      families: [ipv4, evpn]\n", `x.yaml:17: bgp.peers[0].families[1]: unknown family "evpn"`},
		{"v6 without next hop", bgpBase + "      families: [ipv6]\n", "x.yaml:17: bgp.peers[0].families[0]: ipv6 routes need outer_source.ipv6"},
		{"long password", bgpBase + "      password: " + strings.Repeat("k", 81) + "\n", "x.yaml:17: bgp.peers[0].password: 81 characters"},
		{"drain", bgpBase + "  shutdown_drain: soon\n", `x.yaml:17: bgp.shutdown_drain: "soon" is not a duration`},
		{"restart too long", bgpBase + "  restart_time: 2h\n", "x.yaml:17: bgp.restart_time: 2h0m0s is longer than graceful restart's maximum"},
		{"community", bgpBase + "  vips:\n    - address: 203.0.113.10\n      communities: [\"70000:1\"]\n", `x.yaml:19: bgp.vips[0].communities[0]: "70000:1" is not a community`},
		{"typo", bgpBase + "      hold: 9s\n", `x.yaml:17: unknown key "hold" in bgp.peers[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tt.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
