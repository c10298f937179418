package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// targetFlags are the flags that say where a command sends its request
// or how it prints the answer. A command that shows one in its --help must
// act on it: `xlb version --socket X` accepting X and ignoring it tells
// the operator a lie.
var targetFlags = []string{socketFlag, proxyFlag, "output"}

// flagProbe is a command line that runs one command to completion against
// a daemon (--socket) or a proxy (--proxy) in the state flagsUsedDaemon
// and proxyForProbes set up; {n} is replaced by the run's number, so
// that an addition can be made more than once.
type flagProbe struct {
	path string   // the command path, "xlb pool server add"
	args []string // after the path
}

// flagProbes has one entry for every command that accepts a target flag,
// in the order they run (a server is added before it is deleted).
var flagProbes = []flagProbe{
	{"xlb version", nil},
	{"xlb status", nil},
	{"xlb stats", []string{"--interval", "1ms"}},
	{"xlb flow", []string{"192.0.2.7:40000", "10.0.0.1:80/tcp"}},
	{"xlb reload", nil},
	{"xlb bgp peers", nil},
	{"xlb vip list", nil},
	{"xlb vip show", []string{"10.0.0.1:80/tcp"}},
	{"xlb vip add", []string{"10.0.0.1:80/tcp"}},
	{"xlb vip del", []string{"10.0.0.1:80/tcp"}},
	{"xlb backend list", []string{"10.0.0.1:80/tcp"}},
	{"xlb backend add", []string{"10.0.0.1:80/tcp", "10.0.1.14"}},
	{"xlb backend del", []string{"10.0.0.1:80/tcp", "10.0.1.14"}},
	{"xlb backend drain", []string{"10.0.0.1:80/tcp", "10.0.1.11"}},
	{"xlb backend undrain", []string{"10.0.0.1:80/tcp", "10.0.1.11"}},
	{"xlb backend weight", []string{"10.0.0.1:80/tcp", "10.0.1.11", "2"}},
	{"xlb proxy reload", nil},
	{"xlb pool list", nil},
	{"xlb pool show", []string{"checkout"}},
	{"xlb pool server add", []string{"checkout", "p{n}", "127.0.0.1:1{n}"}},
	{"xlb pool server del", []string{"checkout", "p{n}"}},
	{"xlb pool server drain", []string{"checkout", "c1"}},
	{"xlb pool server undrain", []string{"checkout", "c1"}},
	{"xlb pool server weight", []string{"checkout", "c1", "3"}},
}

func (p flagProbe) line(n int, extra ...string) []string {
	args := strings.Fields(strings.TrimPrefix(p.path, "xlb "))
	for _, a := range p.args {
		args = append(args, strings.ReplaceAll(a, "{n}", fmt.Sprint(n)))
	}
	return append(args, extra...)
}

// runsItself are the commands with subcommands that do something of
// their own; every other command with subcommands is a group.
var runsItself = map[string]bool{"xlb proxy": true}

// acceptedTargetFlags lists, per runnable command of the tree, the target
// flags it accepts (its own or inherited).
func acceptedTargetFlags(root *cobra.Command) map[string][]string {
	got := map[string][]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.HasSubCommands() && !runsItself[c.CommandPath()] {
			return // a group: it prints its help or rejects a word, whatever its flags
		}
		for _, name := range targetFlags {
			if c.Flag(name) != nil {
				got[c.CommandPath()] = append(got[c.CommandPath()], name)
			}
		}
	}
	walk(root)
	return got
}

// TestTargetFlagsAreUsed walks the command tree: every command that
// accepts --socket, --proxy or -o has a probe, and each such flag changes
// what the command does — --socket and --proxy are the sockets it dials
// (a missing one is named in the error), -o json prints JSON where
// -o table does not.
func TestTargetFlagsAreUsed(t *testing.T) {
	accepted := acceptedTargetFlags(newRootCmd())
	var probed []string
	for _, p := range flagProbes {
		probed = append(probed, p.path)
		assert.Contains(t, accepted, p.path, "%s has a probe but accepts none of %v (or no longer exists)", p.path, targetFlags)
	}
	for path, flags := range accepted {
		assert.Contains(t, probed, path, "%s accepts %v: add a probe to flagProbes that shows it uses them", path, flags)
	}

	socket := startDaemon(t, flagsUsedDaemon())
	proxySock := proxyForProbes(t)
	missing := filepath.Join(t.TempDir(), "nothing-listens-here.sock")
	for _, p := range flagProbes {
		flags := accepted[p.path]
		t.Run(p.path, func(t *testing.T) {
			// Each probe's runs are numbered alike (1 the missing socket,
			// then -o json, -o table), so the servers that
			// `pool server add` adds are those `pool server del` deletes.
			n := 0
			to := func(flag string) []string {
				switch {
				case slices.Contains(flags, socketFlag) && flag != socketFlag:
					return []string{"--" + socketFlag, socket}
				case slices.Contains(flags, proxyFlag) && flag != proxyFlag:
					return []string{"--" + proxyFlag, proxySock}
				}
				return nil
			}
			for _, flag := range []string{socketFlag, proxyFlag} {
				if !slices.Contains(flags, flag) {
					continue
				}
				n++
				code, stdout, stderr := runExit(p.line(n, append(to(flag), "--"+flag, missing)...)...)
				assert.Equal(t, 1, code, "--%s naming no socket must fail: %s", flag, stdout)
				assert.Contains(t, stderr, missing, "the error names the socket --%s gave", flag)
			}
			if slices.Contains(flags, "output") {
				n++
				args := p.line(n, append(to("output"), "-o", "json")...)
				code, jsonOut, stderr := runExit(args...)
				require.Equal(t, 0, code, "xlb %s: %s", strings.Join(args, " "), stderr)
				assert.True(t, isJSON(jsonOut), "-o json printed no JSON: %s", jsonOut)
				n++
				args = p.line(n, append(to("output"), "-o", "table")...)
				code, tableOut, stderr := runExit(args...)
				require.Equal(t, 0, code, "xlb %s: %s", strings.Join(args, " "), stderr)
				assert.False(t, isJSON(tableOut), "-o table printed JSON: %s", tableOut)
				assert.NotEqual(t, jsonOut, tableOut)
			}
		})
	}
}

// flagsUsedDaemon answers every daemon command of flagProbes.
func flagsUsedDaemon() *fakeDaemon {
	seq := statsSeq()
	return &fakeDaemon{
		vips: shopVIPs(),
		status: api.Status{Time: clock, Version: "v0.1.0", StartTime: clock, LastReconcile: clock, VIPs: shopVIPs(),
			BGP: &api.BGPStatus{ASN: 65001, Peers: []api.BGPPeer{{Addr: mustAddr("192.0.2.1"), ASN: 65000, State: "established", Up: true}}}},
		stats: seq,
		flow:  api.FlowAnswer{Backend: l7a, Via: api.ViaMaglev, Slot: 7, Hash: 0x1234},
	}
}

// proxyForProbes runs a proxy with a checkout pool of two servers and
// returns its admin socket.
func proxyForProbes(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	listen, adminAddr, sock := freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	a, b := newShopApp(t, "c1"), newShopApp(t, "c2")
	cfgPath := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 10ms}
routes: [{name: checkout, match: {path_prefix: /checkout}, pool: checkout}]
pools:
  - name: checkout
    servers:
      - {name: c1, addr: %q}
      - {name: c2, addr: %q}
`, listen, adminAddr, sock, a.addr, b.addr)), 0o600))
	runProxyCmd(t, cfgPath, adminAddr)
	return sock
}

// isJSON tells whether out is one JSON document or one per line (NDJSON).
func isJSON(out string) bool {
	if json.Valid([]byte(out)) {
		return true
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(l)) {
			return false
		}
	}
	return true
}

// TestSocketsMixedUp: a daemon command pointed at a proxy's admin socket,
// or a proxy command at the daemon's, says which socket it reached and
// which flag names the other.
func TestSocketsMixedUp(t *testing.T) {
	daemonSock := startDaemon(t, &fakeDaemon{})
	proxySock := proxyForProbes(t)
	code, _, stderr := runExit("status", "--socket", proxySock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no such API path GET /v1/status: this socket is an xlb proxy's admin API (/v1/pools, /v1/reload); "+
		"the xlb daemon's API socket (its api.socket) is named with --socket")
	code, _, stderr = runExit("pool", "list", "--proxy", daemonSock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no such API path GET /v1/pools: this socket is the xlb daemon's API")
	assert.Contains(t, stderr, "an xlb proxy's admin socket (its admin.socket) is named with --proxy")
}
