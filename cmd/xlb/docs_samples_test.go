package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/state"
)

// docSample is one command of a console block in the docs whose output
// the block shows, with the daemon state that output comes from.
type docSample struct {
	line   string      // the command line as the page shows it, after "$ "
	daemon api.Service // the state the page's output shows
}

// desiredDaemon changes its desired state with the daemon's own rules
// (control/state), so that the pages' refusals are the daemon's words.
type desiredDaemon struct {
	fakeDaemon
	d state.Desired
}

func (s *desiredDaemon) AddBackend(_ context.Context, k api.VIPKey, b api.BackendSpec) error {
	return s.d.AddBackend(k, b)
}

// cliErrorState is the desired state of docs/cli.md's error examples: the
// worked example's VIP, and one that forwards with l2dsr.
func cliErrorState(t *testing.T) *desiredDaemon {
	var d state.Desired
	require.NoError(t, d.AddVIP(api.VIPSpec{Key: api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP},
		Backends: []api.BackendSpec{{Addr: netip.MustParseAddr("10.0.1.11")}}}))
	require.NoError(t, d.AddVIP(api.VIPSpec{Key: api.VIPKey{Addr: netip.MustParseAddr("203.0.113.20"), Port: 80, Proto: api.ProtoTCP},
		Mode: api.ModeL2DSR}))
	return &desiredDaemon{d: d}
}

// cliExampleState is the state of docs/cli.md's worked example: one VIP,
// three L7 hosts reached through the kernel's FIB, one of them drained
// (drained true) or not.
func cliExampleState(drained bool) api.Status {
	now := time.Date(2026, 12, 2, 9, 56, 6, 0, time.UTC)
	key := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	hosts := []netip.Addr{netip.MustParseAddr("10.0.1.11"), netip.MustParseAddr("10.0.1.12"), netip.MustParseAddr("10.0.1.13")}
	checked := []time.Duration{9 * time.Millisecond, 178 * time.Millisecond, 24 * time.Millisecond}
	slots := []int{21846, 21846, 21845}
	if drained {
		slots = []int{32769, 0, 32768}
	}
	v := api.VIP{Key: key, Mode: api.ModeIPIP, TableSize: 65537}
	var nh []api.NextHop
	for i, h := range hosts {
		b := api.Backend{Addr: h, Weight: 1, State: api.StateActive, Healthy: true, TableSlots: slots[i], LastCheck: now.Add(-checked[i])}
		if drained && i == 1 {
			b.Drain, b.State = true, api.StateDraining
		}
		v.Backends = append(v.Backends, b)
		nh = append(nh, api.NextHop{Backend: h, Iface: "xlbcli0", MAC: fmt.Sprintf("02:00:0a:00:01:%02x", 0x0b+i), State: "reachable", Resolved: true})
	}
	return api.Status{
		Time: now, Version: "dev", StartTime: now.Add(-6 * time.Second),
		ConfigPath: "/tmp/xlbcli-e2e/xlb.yaml", StatePath: "/tmp/xlbcli-e2e/state.json",
		Interfaces:    []api.Interface{{Name: "xlbcli0", Mode: api.AttachNative, ConfiguredMode: "auto", Attached: true, MTU: 1500}},
		NextHops:      api.NextHops{Mode: api.NextHopFIB, Hosts: nh},
		OuterSourceV4: netip.MustParseAddr("10.0.1.1"),
		LastReconcile: now.Add(-961 * time.Millisecond),
		Conntrack:     api.ConntrackUsage{Entries: 0, Capacity: 524288},
		VIPs:          []api.VIP{v},
	}
}

// TestDocSamplesMatchOutput runs the commands of docs/cli.md's worked
// example against a daemon in the state the page shows and compares what
// they print with the page: a change to a command's output fails here
// until the page shows the new output.
func TestDocSamplesMatchOutput(t *testing.T) {
	before, after := cliExampleState(false), cliExampleState(true)
	samples := []docSample{
		{"xlb vip add 203.0.113.10:80/tcp", &fakeDaemon{}},
		{"xlb status", &fakeDaemon{status: before}},
		{"xlb backend drain 203.0.113.10:80/tcp 10.0.1.12", &fakeDaemon{vips: after.VIPs}},
		{"xlb vip show 203.0.113.10:80/tcp", &fakeDaemon{vips: after.VIPs}},
		{"xlb flow 198.51.100.7:40000 203.0.113.10:80/tcp", &fakeDaemon{flow: api.FlowAnswer{
			Backend: netip.MustParseAddr("10.0.1.11"), Via: api.ViaMaglev, Slot: 11363, Hash: 0xca67f6ca}}},
		// "Errors say what to do": the page shows stderr.
		{"xlb vip show 203.0.113.99:80/tcp", &fakeDaemon{}},
		{"xlb vip add 2001:db8::1:443/tcp", &fakeDaemon{}},
		{"xlb backend add 203.0.113.20:80/tcp 2001:db8::1", cliErrorState(t)},
		{"xlb backend add 203.0.113.10:80/tcp 10.0.1.11", cliErrorState(t)},
		{"xlb vip list -o yaml", &fakeDaemon{}},
	}
	b, err := os.ReadFile("../../docs/cli.md")
	require.NoError(t, err)
	shown := consoleOutputs(string(b))
	for _, s := range samples {
		t.Run(s.line, func(t *testing.T) {
			want, ok := shown[s.line]
			require.True(t, ok, "docs/cli.md shows no output of `$ %s` in a console block", s.line)
			args := strings.Fields(strings.TrimPrefix(s.line, "xlb "))
			code, stdout, stderr := runExit(withSocket(startDaemon(t, s.daemon), args)...)
			if strings.HasPrefix(want, "xlb: ") {
				assert.Equal(t, 1, code)
				assert.Equal(t, want, stderr, "docs/cli.md's error of `%s` is not what the command says: update the page", s.line)
				return
			}
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, want, stdout, "docs/cli.md's output of `%s` is not what the command prints: update the page", s.line)
		})
	}
}

// consoleOutputs maps each `$ ` command line of the page's console blocks
// to the lines shown after it, up to the next command or the block's end.
// A command shown more than once keeps its first output (a page shows a
// worked example before the errors); a command whose output the page cuts
// short ("...") is left out.
func consoleOutputs(text string) map[string]string {
	out := map[string]string{}
	var cmd string
	var lines []string
	inBlock := false
	flush := func() {
		_, seen := out[cmd]
		if cmd != "" && !seen && (len(lines) == 0 || lines[len(lines)-1] != "...\n") {
			out[cmd] = strings.Join(lines, "")
		}
		cmd, lines = "", nil
	}
	for _, l := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimRight(l, "\n")
		switch {
		case strings.HasPrefix(trimmed, "```console"):
			inBlock = true
		case inBlock && strings.HasPrefix(trimmed, "```"):
			flush()
			inBlock = false
		case inBlock && strings.HasPrefix(trimmed, "$ "):
			flush()
			cmd, _, _ = strings.Cut(strings.TrimPrefix(trimmed, "$ "), "  #")
			cmd = strings.TrimSpace(cmd)
		case inBlock && cmd != "":
			lines = append(lines, l)
		}
	}
	return out
}

// TestConsoleOutputs: the extraction the sample test relies on.
func TestConsoleOutputs(t *testing.T) {
	page := "text\n```console\n$ xlb a   # comment\none\ntwo\n$ xlb b\n$ xlb c\nthree\n...\n```\n$ xlb d\nnot in a block\n" +
		"```console\n$ xlb a\nlater\n```\n"
	assert.Equal(t, map[string]string{"xlb a": "one\ntwo\n", "xlb b": ""}, consoleOutputs(page))
}
