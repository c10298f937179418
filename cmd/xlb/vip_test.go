package main

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// cliCase is one CLI invocation and what it must send and print.
type cliCase struct {
	name      string
	args      []string
	wantCalls []call // exactly these Service calls, in order
	wantOut   string // exact stdout ("" = don't check)
	wantErr   string // error substring
}

func runCLICases(t *testing.T, newDaemon func() *fakeDaemon, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDaemon()
			path := startDaemon(t, d)
			stdout, stderr, err := runXLB(t, path, tt.args...)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Empty(t, stdout, "no data on failure")
			} else {
				require.NoError(t, err)
				assert.Empty(t, stderr)
			}
			if tt.wantOut != "" {
				assert.Equal(t, tt.wantOut, stdout)
			}
			assert.Equal(t, tt.wantCalls, d.Calls())
		})
	}
}

func TestVIPCommands(t *testing.T) {
	newDaemon := func() *fakeDaemon { return &fakeDaemon{vips: shopVIPs()} }
	vipJSON, err := json.MarshalIndent(shopVIPs()[0], "", "  ")
	require.NoError(t, err)
	listJSON, err := json.MarshalIndent(shopVIPs(), "", "  ")
	require.NoError(t, err)
	any53 := api.VIPKey{Addr: netip.MustParseAddr("10.0.0.2"), Port: 0, Proto: api.ProtoUDP}

	runCLICases(t, newDaemon, []cliCase{
		{
			name:      "add",
			args:      []string{"vip", "add", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"AddVIP", []any{api.VIPSpec{Key: vip4}}}},
			wantOut:   "vip 10.0.0.1:80/tcp added\n",
		},
		{
			name: "add with backends and options",
			args: []string{"vip", "add", "10.0.0.2:*/udp", "--mode", "l2dsr", "--table-size", "251", "--backend", "10.0.1.11", "--backend", "10.0.1.12"},
			wantCalls: []call{{"AddVIP", []any{api.VIPSpec{Key: any53, Mode: api.ModeL2DSR, TableSize: 251,
				Backends: []api.BackendSpec{{Addr: l7a}, {Addr: l7b}}}}}},
			wantOut: "vip 10.0.0.2:*/udp added\n",
		},
		{
			name:      "add json prints the vip",
			args:      []string{"vip", "add", "10.0.0.1:80/tcp", "-o", "json"},
			wantCalls: []call{{"AddVIP", []any{api.VIPSpec{Key: vip4}}}, {"GetVIP", []any{vip4}}},
			wantOut:   string(vipJSON) + "\n",
		},
		{name: "add invalid address", args: []string{"vip", "add", "10.0.0.256:80/tcp"}, wantErr: `invalid VIP argument: parse vip "10.0.0.256:80/tcp": invalid IP address "10.0.0.256"`},
		{name: "add unbracketed ipv6", args: []string{"vip", "add", "2001:db8::1:443/tcp"}, wantErr: "IPv6 address must be in brackets, like [2001:db8::1]:443"},
		{
			name:      "add --force",
			args:      []string{"vip", "add", "10.0.0.1:80/tcp", "--force"},
			wantCalls: []call{{"AddVIP+force", []any{api.VIPSpec{Key: vip4}}}},
			wantOut:   "vip 10.0.0.1:80/tcp added\n",
		},
		{name: "add bad mode", args: []string{"vip", "add", "10.0.0.1:80/tcp", "--mode", "gre"}, wantErr: `forwarding mode "gre": use ipip or l2dsr`},
		{name: "add bad backend", args: []string{"vip", "add", "10.0.0.1:80/tcp", "--backend", "l7-1"}, wantErr: `invalid --backend: parse backend: invalid IP address "l7-1"`},
		{name: "add without vip", args: []string{"vip", "add"}, wantErr: "accepts 1 arg(s), received 0"},
		// Port 0 took every port of the address; * says so on purpose.
		{name: "add port 0", args: []string{"vip", "add", "10.0.0.1:0/tcp"},
			wantErr: `invalid VIP argument "10.0.0.1:0/tcp": port 0 is no port; a VIP of every port is written with * (10.0.0.1:*/tcp)`},
		{name: "drain on port 0", args: []string{"backend", "drain", "[2001:db8::1]:0", "10.0.1.11"}, wantErr: "port 0 is no port"},
		{
			name:      "del",
			args:      []string{"vip", "del", "[2001:db8::1]:443/tcp"},
			wantCalls: []call{{"DeleteVIP", []any{vip6}}},
			wantOut:   "vip [2001:db8::1]:443/tcp deleted\n",
		},
		{
			name:      "del forced",
			args:      []string{"vip", "del", "[2001:db8::1]:443/tcp", "--force"},
			wantCalls: []call{{"DeleteVIP+force", []any{vip6}}},
			wantOut:   "vip [2001:db8::1]:443/tcp deleted\n",
		},
		{
			name:      "del json",
			args:      []string{"vip", "rm", "10.0.0.1:80", "-o", "json"},
			wantCalls: []call{{"DeleteVIP", []any{vip4}}},
			wantOut:   "{\n  \"deleted\": \"10.0.0.1:80/tcp\"\n}\n",
		},
		{
			name:      "list",
			args:      []string{"vip", "list"},
			wantCalls: []call{{Method: "ListVIPs"}},
			wantOut: "" +
				"VIP                    MODE   TABLE  BACKENDS  ACTIVE  DRAINING  DOWN\n" +
				"10.0.0.1:80/tcp        ipip   65537  3         2       1         0\n" +
				"[2001:db8::1]:443/tcp  l2dsr  251    0         0       0         0\n",
		},
		{
			name:      "list json",
			args:      []string{"vip", "ls", "-o", "json"},
			wantCalls: []call{{Method: "ListVIPs"}},
			wantOut:   string(listJSON) + "\n",
		},
		{
			name:      "show",
			args:      []string{"vip", "show", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"GetVIP", []any{vip4}}},
			wantOut: "" +
				"VIP:       10.0.0.1:80/tcp\n" +
				"Mode:      ipip\n" +
				"Table:     65537 entries\n" +
				"Backends:  3 (2 active, 1 draining, 0 down)\n" +
				"\n" +
				"BACKEND    WEIGHT  STATE     HEALTH  TABLE SHARE    LAST ERROR\n" +
				"10.0.1.11  1       active    up      50.0% (32769)  -\n" +
				"10.0.1.12  1       draining  up      0.0% (0)       -\n" +
				"10.0.1.13  1       active    up      50.0% (32768)  -\n",
		},
		{
			name:      "show json",
			args:      []string{"vip", "show", "10.0.0.1:80/tcp", "-o", "json"},
			wantCalls: []call{{"GetVIP", []any{vip4}}},
			wantOut:   string(vipJSON) + "\n",
		},
		{
			name:      "show unknown vip",
			args:      []string{"vip", "show", "10.9.9.9:80/tcp"},
			wantCalls: []call{{"GetVIP", []any{api.VIPKey{Addr: netip.MustParseAddr("10.9.9.9"), Port: 80, Proto: "tcp"}}}},
			wantErr:   "vip 10.9.9.9:80/tcp not found (list what exists with `xlb vip list` or `xlb backend list VIP`)",
		},
	})
}

// TestVIPFailingOpen: a VIP whose every backend fails its checks and that
// sends to all of them says so in every table the operator reads.
func TestVIPFailingOpen(t *testing.T) {
	vips := shopVIPs()[:1]
	for i := range vips[0].Backends {
		b := &vips[0].Backends[i]
		b.Healthy, b.LastError = false, "connect: connection refused"
		if !b.Drain {
			b.State = api.StateDown
		}
	}
	vips[0].FailingOpen = true
	vips[0].FailOpen = &api.FailOpen{Below: 50, Passing: 0, Checked: 2}
	runCLICases(t, func() *fakeDaemon {
		return &fakeDaemon{vips: vips, status: api.Status{Time: clock, StartTime: clock, VIPs: vips}}
	}, []cliCase{
		{
			name:      "show",
			args:      []string{"vip", "show", "10.0.0.1:80/tcp"},
			wantCalls: []call{{"GetVIP", []any{vip4}}},
			wantOut: "" +
				"VIP:       10.0.0.1:80/tcp\n" +
				"Mode:      ipip\n" +
				"Table:     65537 entries\n" +
				"Backends:  3 (0 active, 1 draining, 2 down)\n" +
				"\n" +
				"Fail open: while fewer than 50% of the checked backends pass (health.fail_open_below); 0 of 2 pass now\n" +
				"\n" +
				"FAIL-OPEN: too few backends pass their health checks; new flows go to every backend not drained (health.all_down)\n" +
				"\n" +
				"BACKEND    WEIGHT  STATE     HEALTH  TABLE SHARE    LAST ERROR\n" +
				"10.0.1.11  1       down      down    50.0% (32769)  connect: connection refused\n" +
				"10.0.1.12  1       draining  down    0.0% (0)       connect: connection refused\n" +
				"10.0.1.13  1       down      down    50.0% (32768)  connect: connection refused\n",
		},
		{
			name:      "list",
			args:      []string{"vip", "list"},
			wantCalls: []call{{"ListVIPs", nil}},
			wantOut: "" +
				"VIP                        MODE  TABLE  BACKENDS  ACTIVE  DRAINING  DOWN\n" +
				"10.0.0.1:80/tcp FAIL-OPEN  ipip  65537  3         0       1         2\n",
		},
	})
}

// TestDaemonErrorsReachTheOperator checks that the daemon's own message for
// a rejected change is what the operator reads, and that its kind survives.
func TestDaemonErrorsReachTheOperator(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantIs  error
		wantErr string
	}{
		{name: "invalid", err: api.Errorf(api.ErrInvalid, "vip 10.0.0.1:80/tcp: table size 100 must be a prime up to 67108859 (default 65537)"), wantIs: api.ErrInvalid,
			wantErr: "vip 10.0.0.1:80/tcp: table size 100 must be a prime up to 67108859 (default 65537)"},
		{name: "conflict", err: api.Errorf(api.ErrConflict, "vip 10.0.0.1:80/tcp already exists (delete it first, or add backends to it)"), wantIs: api.ErrConflict,
			wantErr: "vip 10.0.0.1:80/tcp already exists (delete it first, or add backends to it)"},
		{name: "not found", err: api.Errorf(api.ErrNotFound, "vip 10.0.0.1:80/tcp not found"), wantIs: api.ErrNotFound,
			wantErr: "vip 10.0.0.1:80/tcp not found (list what exists with `xlb vip list` or `xlb backend list VIP`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := startDaemon(t, &fakeDaemon{err: tt.err})
			stdout, _, err := runXLB(t, path, "vip", "add", "10.0.0.1:80/tcp", "--table-size", "100")
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
			assert.ErrorIs(t, err, tt.wantIs)
			assert.Empty(t, stdout)
		})
	}
}

// TestCompletion checks that VIP and backend arguments complete from the
// running daemon, and that a missing daemon completes to nothing.
func TestCompletion(t *testing.T) {
	path := startDaemon(t, &fakeDaemon{vips: shopVIPs()})
	tests := []struct {
		name   string
		socket string
		args   []string
		want   []string
	}{
		{name: "vip", socket: path, args: []string{"vip", "show", ""}, want: []string{"10.0.0.1:80/tcp", "[2001:db8::1]:443/tcp"}},
		{name: "backend", socket: path, args: []string{"backend", "drain", "10.0.0.1:80/tcp", ""}, want: []string{"10.0.1.11", "10.0.1.12", "10.0.1.13"}},
		{name: "output", socket: path, args: []string{"status", "-o", ""}, want: []string{"table", "json"}},
		// The modes the daemon, its config and the data path accept
		// (control/daemon TestModesAgree), nothing else.
		{name: "mode", socket: path, args: []string{"vip", "add", "10.0.0.9:80/tcp", "--mode", ""}, want: api.Modes()},
		{name: "no daemon", socket: path + ".missing", args: []string{"vip", "show", ""}, want: nil},
		// Every flag with a fixed set of values offers them.
		{name: "version output", socket: path, args: []string{"version", "-o", ""}, want: []string{"table", "json"}},
		{name: "log level", socket: path, args: []string{"daemon", "--log-level", ""}, want: []string{"debug", "info", "warn", "error"}},
		{name: "log format", socket: path, args: []string{"dns", "--log-format", ""}, want: []string{"text", "json"}},
		{name: "proxy log level", socket: path, args: []string{"proxy", "--log-level", ""}, want: []string{"debug", "info", "warn", "error"}},
		{name: "attach mode", socket: path, args: []string{"decap", "--mode", ""}, want: []string{"auto", "native", "generic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runXLB(t, tt.socket, append([]string{"__complete"}, tt.args...)...)
			require.NoError(t, err)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if !strings.HasPrefix(line, ":") { // the last line is the directive
					got = append(got, line)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestVIPAddTableSizeHelp: --table-size can only restate the daemon's
// dataplane.table_size; its help said "a prime (default 65537)" and an
// example gave 251, which every daemon of the default config refuses.
func TestVIPAddTableSizeHelp(t *testing.T) {
	cmd, _, err := newRootCmd().Find([]string{"vip", "add"})
	require.NoError(t, err)
	assert.Contains(t, cmd.Flag("table-size").Usage, "must equal the daemon's dataplane.table_size")
	for _, line := range strings.Split(cmd.Example, "\n") {
		fields := strings.Fields(line)
		for i, f := range fields {
			if f == "--table-size" && i+1 < len(fields) {
				assert.Equal(t, strconv.Itoa(api.DefaultTableSize), fields[i+1], "example %q: the default config's daemon refuses any other size", line)
			}
		}
	}
}
