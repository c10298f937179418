package main

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

func TestBGPPeersCommand(t *testing.T) {
	bs := &api.BGPStatus{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"),
		Announced: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32"), netip.MustParsePrefix("2001:db8::10/128")},
		Peers: []api.BGPPeer{
			{Addr: netip.MustParseAddr("192.0.2.1"), ASN: 65000, State: "established", Up: true},
			{Addr: netip.MustParseAddr("192.0.2.2"), ASN: 65000, State: "active", Flaps: 3, LastError: "hold timer expired"},
		},
	}
	bsJSON, err := json.MarshalIndent(bs, "", "  ")
	require.NoError(t, err)
	table := "" +
		"BGP:         AS 65001, router id 192.0.2.10; announcing 203.0.113.10/32, 2001:db8::10/128\n" +
		"PEER       ASN    STATE        SINCE  FLAPS  LAST ERROR\n" +
		"192.0.2.1  65000  established  never  0      -\n" +
		"192.0.2.2  65000  ACTIVE       never  3      hold timer expired\n"
	withBGP := api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcile: clock, BGP: bs}
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: withBGP} }, []cliCase{
		{name: "table", args: []string{"bgp", "peers"}, wantCalls: []call{{Method: "Status"}}, wantOut: table},
		{name: "json", args: []string{"bgp", "peers", "-o", "json"}, wantCalls: []call{{Method: "Status"}}, wantOut: string(bsJSON) + "\n"},
		{name: "bad output", args: []string{"bgp", "peers", "-o", "yaml"}, wantErr: "yaml"},
		{name: "in status", args: []string{"status"}, wantCalls: []call{{Method: "Status"}}, wantOut: "" +
			"Daemon:      xlb v0.1.0, up 0s\n" +
			"Data path:   loaded fresh\n" +
			"Interfaces:  none\n" +
			"Reconciled:  0ms ago\n" +
			"\n" + table + "\n" +
			"No VIPs. Add one with `xlb vip add VIP`.\n"},
	})
	held := api.Status{Time: clock, BGP: &api.BGPStatus{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"),
		Held: "first reconcile not done", LastError: "announce 203.0.113.10/32: boom"}}
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: held} }, []cliCase{
		{name: "held", args: []string{"bgp", "peers"}, wantCalls: []call{{Method: "Status"}}, wantOut: "" +
			"BGP:         AS 65001, router id 192.0.2.10; announcing nothing\n" +
			"BGP held:    first reconcile not done\n" +
			"BGP error:   announce 203.0.113.10/32: boom\n" +
			"PEER  ASN  STATE  SINCE  FLAPS  LAST ERROR\n"},
	})
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: api.Status{Time: clock}} }, []cliCase{
		{name: "not configured", args: []string{"bgp", "peers"}, wantCalls: []call{{Method: "Status"}}, wantErr: "bgp is not configured on this daemon"},
	})
	// Not found here is not a missing VIP: no hint to list VIPs.
	_, _, err = runXLB(t, startDaemon(t, &fakeDaemon{status: api.Status{Time: clock}}), "bgp", "peers")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "xlb vip list")
}
