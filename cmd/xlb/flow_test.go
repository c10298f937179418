package main

import (
	"net/netip"
	"testing"

	"github.com/xlbproject/xlb/control/api"
)

func TestFlowCommand(t *testing.T) {
	ans := api.FlowAnswer{Backend: l7c, Via: api.ViaMaglev, Slot: 4242, Hash: 0x1badb002}
	src := netip.MustParseAddrPort("192.0.2.7:40000")
	anyUDP := api.VIPKey{Addr: mustAddr("10.0.0.2"), Proto: api.ProtoUDP}
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{flow: ans} }, []cliCase{
		{
			name:      "table",
			args:      []string{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"Flow", []any{api.FlowQuery{Src: src, VIP: vip4}}}},
			wantOut: "" +
				"SOURCE           VIP              BACKEND    VIA     SLOT  HASH\n" +
				"192.0.2.7:40000  10.0.0.1:80/tcp  10.0.1.13  maglev  4242  0x1badb002\n",
		},
		{
			name:      "json",
			args:      []string{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp", "-o", "json"},
			wantCalls: []call{{"Flow", []any{api.FlowQuery{Src: src, VIP: vip4}}}},
			wantOut:   "{\n  \"backend\": \"10.0.1.13\",\n  \"via\": \"maglev\",\n  \"slot\": 4242,\n  \"hash\": 464367618\n}\n",
		},
		{
			name:      "any-port vip with --dport",
			args:      []string{"flow", "192.0.2.7:40000", "10.0.0.2:*/udp", "--dport", "53"},
			wantCalls: []call{{"Flow", []any{api.FlowQuery{Src: src, VIP: anyUDP, DstPort: 53}}}},
		},
		// Ignored on a VIP of one port, where it answered for that port.
		{name: "another --dport on a one-port vip", args: []string{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp", "--dport", "53"},
			wantErr: "vip 10.0.0.1:80/tcp listens on port 80 only, so a packet to port 53 is not its own; --dport is for a VIP of every port (ADDR:*/PROTO)"},
		{
			name:      "--dport restating a one-port vip's port",
			args:      []string{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp", "--dport", "80"},
			wantCalls: []call{{"Flow", []any{api.FlowQuery{Src: src, VIP: vip4, DstPort: 80}}}},
		},
		{name: "any-port vip without --dport", args: []string{"flow", "192.0.2.7:40000", "10.0.0.2:*/udp"}, wantErr: "vip 10.0.0.2:*/udp listens on every port: say which with --dport"},
		{name: "bad source", args: []string{"flow", "192.0.2.7", "10.0.0.1:80/tcp"}, wantErr: `invalid SRC:PORT argument: parse source "192.0.2.7": missing :PORT`},
		{name: "family mismatch", args: []string{"flow", "[2001:db8::7]:1", "10.0.0.1:80/tcp"}, wantErr: "source [2001:db8::7]:1 and vip 10.0.0.1:80/tcp are of different address families"},
	})
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{flow: api.FlowAnswer{Via: api.ViaMaglev}} }, []cliCase{
		{
			name:      "no backend",
			args:      []string{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"Flow", []any{api.FlowQuery{Src: src, VIP: vip4}}}},
			wantOut:   "192.0.2.7:40000 → 10.0.0.1:80/tcp: no backend; the VIP has no active L7 host, so the packet would be dropped\n",
		},
	})
}
