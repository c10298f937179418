package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

func TestStatusCommand(t *testing.T) {
	vips := shopVIPs()
	vips[0].Backends[2].State = api.StateDown
	vips[0].Backends[2].Healthy = false
	vips[0].Backends[2].TableSlots = 0
	vips[0].Backends[0].TableSlots = 65537
	vips[0].Backends[2].LastError = "GET http://10.0.1.13:9901/ready: 503 Service Unavailable"
	st := api.Status{
		Time: clock, Version: "v0.1.0", StartTime: clock.Add(-(3*time.Hour + 25*time.Minute + 7*time.Second)),
		ConfigPath: "/etc/xlb/xlb.yaml", StatePath: "/var/lib/xlb/state.json",
		Interfaces: []api.Interface{
			{Name: "eth0", Mode: "native", ConfiguredMode: "auto", Attached: true},
			{Name: "eth1", Mode: "generic", ConfiguredMode: "auto", Attached: true},
			{Name: "eth2", Mode: "generic", ConfiguredMode: "generic", Attached: true},
			{Name: "eth3", Mode: "unknown", ConfiguredMode: "native", Attached: true},
			{Name: "eth4", ConfiguredMode: "auto", Error: "no such device"},
		},
		Adopted: true, LastReconcile: clock.Add(-1500 * time.Millisecond), VIPs: vips,
	}
	stJSON, err := json.MarshalIndent(st, "", "  ")
	require.NoError(t, err)
	empty := api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcileError: "install table: no such map"}

	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: st} }, []cliCase{
		{
			name:      "table",
			args:      []string{"status"},
			wantCalls: []call{{Method: "Status"}},
			wantOut: "" +
				"Daemon:      xlb v0.1.0, up 3h25m7s\n" +
				"Data path:   adopted from the previous daemon\n" +
				"Interfaces:  eth0 (native), eth1 (GENERIC: no native XDP on this NIC, several times slower), " +
				"eth2 (generic, as configured: several times slower than native), eth3 (mode unknown, configured native), " +
				"eth4 (auto, NOT ATTACHED: no such device)\n" +
				"Reconciled:  1.5s ago\n" +
				"Config:      /etc/xlb/xlb.yaml\n" +
				"State:       /var/lib/xlb/state.json\n" +
				"\n" +
				"VIP                    BACKEND    WEIGHT  STATE     HEALTH  TABLE SHARE     LAST CHECK  LAST ERROR\n" +
				"10.0.0.1:80/tcp        10.0.1.11  1       active    up      100.0% (65537)  300ms ago   -\n" +
				"                       10.0.1.12  1       draining  up      0.0% (0)        200ms ago   -\n" +
				"                       10.0.1.13  1       down      down    0.0% (0)        100ms ago   GET http://10.0.1.13:9901/ready: 503 Service Unavailable\n" +
				"[2001:db8::1]:443/tcp  -          -       -         -       -               -           no backends: traffic is dropped\n",
		},
		{
			name:      "json",
			args:      []string{"status", "-o", "json"},
			wantCalls: []call{{Method: "Status"}},
			wantOut:   string(stJSON) + "\n",
		},
	})
	fib := api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcile: clock,
		OuterSourceV4: netip.MustParseAddr("192.0.2.10"), OuterSourceV6: netip.MustParseAddr("2001:db8::10"),
		Interfaces: []api.Interface{{Name: "eth0", Mode: "native", ConfiguredMode: "auto", Attached: true, MTU: 1500}},
		NextHops: api.NextHops{Mode: api.NextHopFIB, Hosts: []api.NextHop{
			{Backend: netip.MustParseAddr("10.0.1.11"), Iface: "eth0", MAC: "02:00:00:00:00:0b", State: "reachable", Resolved: true},
			{Backend: netip.MustParseAddr("10.0.2.12"), Iface: "eth0", Gateway: netip.MustParseAddr("10.0.1.254"), State: "incomplete"},
			{Backend: netip.MustParseAddr("10.0.3.13"), State: "no route"},
		}}}
	static := api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcile: clock,
		NextHops: api.NextHops{Mode: api.NextHopStatic, MAC: "02:00:00:00:00:01"}}
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: fib} }, []cliCase{
		{
			name:      "next hops from the fib, two unresolved",
			args:      []string{"status"},
			wantCalls: []call{{Method: "Status"}},
			wantOut: "" +
				"Daemon:      xlb v0.1.0, up 0s\n" +
				"Data path:   loaded fresh\n" +
				"Interfaces:  eth0 (native, mtu 1500)\n" +
				"Next hops:   kernel FIB per frame; 2 of 3 UNRESOLVED: their packets are passed to the kernel, not forwarded\n" +
				"Outer src:   192.0.2.10, 2001:db8::10\n" +
				"Reconciled:  0ms ago\n" +
				"\n" +
				"BACKEND    INTERFACE  VIA         MAC                NEXT HOP\n" +
				"10.0.1.11  eth0       on-link     02:00:00:00:00:0b  reachable\n" +
				"10.0.2.12  eth0       10.0.1.254  -                  UNRESOLVED: incomplete\n" +
				"10.0.3.13  -          -           -                  UNRESOLVED: no route\n" +
				"\n" +
				"No VIPs. Add one with `xlb vip add VIP`.\n",
		},
	})
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: static} }, []cliCase{
		{
			name:      "static next hop",
			args:      []string{"status"},
			wantCalls: []call{{Method: "Status"}},
			wantOut: "" +
				"Daemon:      xlb v0.1.0, up 0s\n" +
				"Data path:   loaded fresh\n" +
				"Interfaces:  none\n" +
				"Next hop:    02:00:00:00:00:01 for every frame (dataplane.next_hop_mac)\n" +
				"Reconciled:  0ms ago\n" +
				"\n" +
				"No VIPs. Add one with `xlb vip add VIP`.\n",
		},
	})
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: empty} }, []cliCase{
		{
			name:      "no vips and a reconcile error",
			args:      []string{"status"},
			wantCalls: []call{{Method: "Status"}},
			wantOut: "" +
				"Daemon:      xlb v0.1.0, up 0s\n" +
				"Data path:   loaded fresh\n" +
				"Interfaces:  none\n" +
				"Reconciled:  never\n" +
				"Reconcile:   FAILED: install table: no such map\n" +
				"\n" +
				"No VIPs. Add one with `xlb vip add VIP`.\n",
		},
	})
}

// TestStatusLabelsAlign: every line above the tables starts its value in
// the same column, whichever of them a status has. "Outer source:" and
// "Reconcile error:" used to be one and four columns wider than the rest.
func TestStatusLabelsAlign(t *testing.T) {
	clock := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcile: clock,
		LastReconcileError: "install table: no such map", ConfigPath: "/etc/xlb/xlb.yaml", StatePath: "/var/lib/xlb/state.json",
		OuterSourceV4: netip.MustParseAddr("192.0.2.10"),
		Conntrack:     api.ConntrackUsage{Entries: 1, Capacity: 100},
		Interfaces:    []api.Interface{{Name: "eth0", Mode: "native", ConfiguredMode: "auto", Attached: true}},
		NextHops:      api.NextHops{Mode: api.NextHopFIB},
		Store:         api.StoreStatus{Kind: "etcd", Endpoints: []string{"10.0.0.5:2379"}, Prefix: "/xlb/", Up: true},
		BGP:           &api.BGPStatus{ASN: 64512, RouterID: netip.MustParseAddr("192.0.2.10"), Held: "no VIP is usable", LastError: "peer down"},
	}
	var out strings.Builder
	require.NoError(t, printStatus(&out, st))
	var labels []string
	for _, para := range strings.Split(out.String(), "\n\n") {
		for _, l := range strings.Split(para, "\n") {
			label, _, ok := strings.Cut(l, ":")
			if !ok || strings.Contains(label, "  ") {
				break // a table
			}
			labels = append(labels, label)
			value := strings.TrimLeft(l[len(label)+1:], " ")
			assert.Equal(t, statusLabelWidth, len(l)-len(value), "value of %q starts in another column", l)
		}
	}
	assert.Equal(t, []string{"Daemon", "Data path", "Conntrack", "Interfaces", "Next hops", "Outer src", "Reconciled", "Reconcile", "Config", "State", "Store",
		"BGP", "BGP held", "BGP error"}, labels,
		"every optional line is shown")
}
