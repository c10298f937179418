package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

func TestBackendCommands(t *testing.T) {
	newDaemon := func() *fakeDaemon { return &fakeDaemon{vips: shopVIPs()} }
	vipJSON, err := json.MarshalIndent(shopVIPs()[0], "", "  ")
	require.NoError(t, err)
	backendsJSON, err := json.MarshalIndent(shopVIPs()[0].Backends, "", "  ")
	require.NoError(t, err)

	runCLICases(t, newDaemon, []cliCase{
		{
			name:      "add",
			args:      []string{"backend", "add", "10.0.0.1:80/tcp", "10.0.1.11"},
			wantCalls: []call{{"AddBackend", []any{vip4, api.BackendSpec{Addr: l7a, Weight: 1}}}},
			wantOut:   "backend 10.0.1.11 added to vip 10.0.0.1:80/tcp\n",
		},
		{
			name:      "add weighted drained",
			args:      []string{"backend", "add", "10.0.0.1:80/tcp", "10.0.1.12", "--weight", "3", "--drain"},
			wantCalls: []call{{"AddBackend", []any{vip4, api.BackendSpec{Addr: l7b, Weight: 3, Drain: true}}}},
			wantOut:   "backend 10.0.1.12 added to vip 10.0.0.1:80/tcp\n",
		},
		{
			name:      "add json prints the vip after the change",
			args:      []string{"be", "add", "10.0.0.1:80/tcp", "10.0.1.11", "-o", "json"},
			wantCalls: []call{{"AddBackend", []any{vip4, api.BackendSpec{Addr: l7a, Weight: 1}}}, {"GetVIP", []any{vip4}}},
			wantOut:   string(vipJSON) + "\n",
		},
		{name: "add invalid backend", args: []string{"backend", "add", "10.0.0.1:80/tcp", "10.0.1.300"}, wantErr: `invalid BACKEND argument: parse backend: invalid IP address "10.0.1.300"`},
		{name: "add multicast backend", args: []string{"backend", "add", "10.0.0.1:80/tcp", "239.1.1.1"}, wantErr: "multicast address 239.1.1.1"},
		{name: "add invalid vip", args: []string{"backend", "add", "10.0.0.1/tcp", "10.0.1.11"}, wantErr: "invalid VIP argument"},
		{name: "add missing backend", args: []string{"backend", "add", "10.0.0.1:80/tcp"}, wantErr: "accepts 2 arg(s), received 1"},
		{
			name:      "del",
			args:      []string{"backend", "del", "[2001:db8::1]:443/tcp", "2001:db8::11"},
			wantCalls: []call{{"DeleteBackend", []any{vip6, mustAddr("2001:db8::11")}}},
			wantOut:   "backend 2001:db8::11 deleted from vip [2001:db8::1]:443/tcp\n",
		},
		{
			name:      "drain",
			args:      []string{"backend", "drain", "10.0.0.1:80/tcp", "10.0.1.12"},
			wantCalls: []call{{"SetBackendState", []any{vip4, l7b, true}}},
			wantOut:   "backend 10.0.1.12 of vip 10.0.0.1:80/tcp draining\n",
		},
		{
			name:      "drain with --force reaches the daemon forced",
			args:      []string{"backend", "drain", "10.0.0.1:80/tcp", "10.0.1.12", "--force"},
			wantCalls: []call{{"SetBackendState+force", []any{vip4, l7b, true}}},
			wantOut:   "backend 10.0.1.12 of vip 10.0.0.1:80/tcp draining\n",
		},
		{
			name:      "weight 0 with --force",
			args:      []string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.12", "0", "--force"},
			wantCalls: []call{{"SetBackendWeight+force", []any{vip4, l7b, uint32(0)}}},
			wantOut:   "backend 10.0.1.12 of vip 10.0.0.1:80/tcp now has weight 0\n",
		},
		{name: "undrain has no --force", args: []string{"backend", "undrain", "10.0.0.1:80/tcp", "10.0.1.12", "--force"}, wantErr: "unknown flag: --force"},
		{
			name:      "undrain",
			args:      []string{"backend", "undrain", "10.0.0.1:80/tcp", "10.0.1.12"},
			wantCalls: []call{{"SetBackendState", []any{vip4, l7b, false}}},
			wantOut:   "backend 10.0.1.12 of vip 10.0.0.1:80/tcp undrained\n",
		},
		{
			name:      "weight",
			args:      []string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.13", "5"},
			wantCalls: []call{{"SetBackendWeight", []any{vip4, l7c, uint32(5)}}},
			wantOut:   "backend 10.0.1.13 of vip 10.0.0.1:80/tcp now has weight 5\n",
		},
		{
			name:      "weight zero",
			args:      []string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.13", "0"},
			wantCalls: []call{{"SetBackendWeight", []any{vip4, l7c, uint32(0)}}},
			wantOut:   "backend 10.0.1.13 of vip 10.0.0.1:80/tcp now has weight 0\n",
		},
		{name: "weight fraction", args: []string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.13", "1.5"}, wantErr: `invalid WEIGHT "1.5"`},
		{name: "weight not a number", args: []string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.13", "heavy"}, wantErr: `invalid WEIGHT "heavy"`},
		{
			name:      "list",
			args:      []string{"backend", "list", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"GetVIP", []any{vip4}}},
			wantOut: "" +
				"BACKEND    WEIGHT  STATE     HEALTH  TABLE SHARE    LAST ERROR\n" +
				"10.0.1.11  1       active    up      50.0% (32769)  -\n" +
				"10.0.1.12  1       draining  up      0.0% (0)       -\n" +
				"10.0.1.13  1       active    up      50.0% (32768)  -\n",
		},
		{
			name:      "list json",
			args:      []string{"backend", "ls", "10.0.0.1:80/tcp", "-o", "json"},
			wantCalls: []call{{"GetVIP", []any{vip4}}},
			wantOut:   string(backendsJSON) + "\n",
		},
		{
			name:      "list json of a vip without backends is []",
			args:      []string{"backend", "ls", "[2001:db8::1]:443/tcp", "-o", "json"},
			wantCalls: []call{{"GetVIP", []any{vip6}}},
			wantOut:   "[]\n",
		},
	})
}
