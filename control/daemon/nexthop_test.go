package daemon

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/l4"
)

// TestCheckNextHop: the daemon refuses to start when forwarded frames
// could reach no next hop, and says what to set.
func TestCheckNextHop(t *testing.T) {
	eth := &net.Interface{Name: "eth0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	lo := &net.Interface{Name: "lo"}
	ifaces := map[string]*net.Interface{"eth0": eth, "lo": lo}
	iface := func(name string) (*net.Interface, error) {
		if i, ok := ifaces[name]; ok {
			return i, nil
		}
		return nil, errors.New("no such interface")
	}
	sysctls := func(v4, v6 string) func(string) (string, error) {
		return func(p string) (string, error) {
			switch p {
			case "net/ipv4/conf/eth0/forwarding", "net/ipv4/conf/lo/forwarding":
				return v4, nil
			case "net/ipv6/conf/eth0/forwarding", "net/ipv6/conf/lo/forwarding":
				return v6, nil
			}
			return "", errors.New("no such sysctl " + p)
		}
	}
	cfg := func(ifname string, v6 bool) *config.Config {
		c := &config.Config{Interfaces: []config.Interface{{Name: ifname}}}
		c.OuterSource.IPv4 = netip.MustParseAddr("192.0.2.10")
		if v6 {
			c.OuterSource.IPv6 = netip.MustParseAddr("2001:db8::10")
		}
		return c
	}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	tests := []struct {
		name      string
		cfg       *config.Config
		dp        l4.Config
		attaching bool
		sysctl    func(string) (string, error)
		wantErr   string
	}{
		{name: "fib, forwarding on", cfg: cfg("eth0", true), attaching: true, sysctl: sysctls("1", "1")},
		{name: "fib, ipv4 forwarding off", cfg: cfg("eth0", false), attaching: true, sysctl: sysctls("0", "1"),
			wantErr: "dataplane.next_hop_mac is not set, so next hops come from the kernel's FIB, and the kernel answers a FIB lookup (bpf_fib_lookup) " +
				"only on an interface that forwards: net.ipv4.conf.eth0.forwarding is 0, so every packet for a VIP would be passed to this host's own stack " +
				"instead of forwarded (counted as fib_fwd_disabled). Run `sysctl -w net.ipv4.conf.eth0.forwarding=1` and keep the setting in /etc/sysctl.d/ " +
				"(docs/deploy.md), or set dataplane.next_hop_mac to send every frame to one fixed router"},
		{name: "fib, ipv6 forwarding off for an ipv6 outer source", cfg: cfg("eth0", true), attaching: true, sysctl: sysctls("1", "0"),
			wantErr: "net.ipv6.conf.eth0.forwarding is 0, so every packet"},
		// One command for everything that is off, and what IPv6
		// forwarding does to router advertisements.
		{name: "fib, both families off", cfg: cfg("eth0", true), attaching: true, sysctl: sysctls("0", "0"),
			wantErr: "Run `sysctl -w net.ipv4.conf.eth0.forwarding=1 net.ipv6.conf.eth0.forwarding=1` and keep the setting in /etc/sysctl.d/ " +
				"(docs/deploy.md), or set dataplane.next_hop_mac to send every frame to one fixed router; " +
				"with IPv6 forwarding on, eth0 ignores router advertisements unless net.ipv6.conf.eth0.accept_ra=2"},
		{name: "fib, ipv6 forwarding off without ipv6", cfg: cfg("eth0", false), attaching: true, sysctl: sysctls("1", "0")},
		{name: "fib on an interface without a mac", cfg: cfg("lo", false), attaching: true, sysctl: sysctls("1", "1"),
			wantErr: "interface lo has no Ethernet address, so the kernel's FIB cannot give next hops on it: set dataplane.next_hop_mac and dataplane.src_mac"},
		{name: "fib, not attaching", cfg: cfg("lo", false), sysctl: sysctls("0", "0")},
		{name: "override with a source mac", cfg: cfg("lo", false), dp: l4.Config{NextHopMAC: mac, SrcMAC: mac}, attaching: true, sysctl: sysctls("0", "0")},
		{name: "override with an l2dsr vip still needs forwarding", cfg: func() *config.Config {
			c := cfg("eth0", false)
			c.VIPs = []config.VIP{{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: "tcp", Forwarding: api.ModeL2DSR}}
			return c
		}(), dp: l4.Config{NextHopMAC: mac, SrcMAC: mac}, attaching: true, sysctl: sysctls("0", "1"),
			wantErr: "vip 203.0.113.10:80/tcp forwards with l2dsr, which takes the L7 hosts' MACs from the kernel's FIB, and the kernel answers a FIB lookup (bpf_fib_lookup) only on an interface that forwards: net.ipv4.conf.eth0.forwarding is 0"},
		{name: "override without a source mac", cfg: cfg("lo", false), dp: l4.Config{NextHopMAC: mac}, sysctl: sysctls("1", "1"),
			wantErr: "dataplane.next_hop_mac needs the source MAC of forwarded frames: interface lo has no Ethernet address, set dataplane.src_mac"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNextHop(tt.cfg, tt.dp, tt.attaching, tt.sysctl, iface)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestDataplaneMTU: the MTU check is on by default, at the smallest MTU of
// the configured interfaces; a configured value wins.
func TestDataplaneMTU(t *testing.T) {
	ifaces := map[string]*net.Interface{
		"eth0": {Name: "eth0", MTU: 9000, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		"eth1": {Name: "eth1", MTU: 1500, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 2}},
	}
	iface := func(name string) (*net.Interface, error) {
		if i, ok := ifaces[name]; ok {
			return i, nil
		}
		return nil, errors.New("no such interface")
	}
	tests := []struct {
		name   string
		ifaces []string
		mtu    int
		want   uint32
	}{
		{"unset: the interface's", []string{"eth0"}, 0, 9000},
		{"unset: the smallest of the interfaces", []string{"eth0", "eth1", "eth9"}, 0, 1500},
		{"configured", []string{"eth0", "eth1"}, 1400, 1400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{}
			for _, n := range tt.ifaces {
				cfg.Interfaces = append(cfg.Interfaces, config.Interface{Name: n})
			}
			cfg.Dataplane.MTU = tt.mtu
			assert.Equal(t, tt.want, dataplaneConfig(cfg, iface).MTU)
		})
	}
}
