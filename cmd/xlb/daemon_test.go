package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestDaemonFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad log format", []string{"daemon", "--log-format", "yaml"}, `invalid --log-format "yaml": one of text, json`},
		{"bad log level", []string{"daemon", "--log-level", "loud"}, `invalid --log-level "loud"`},
		// A missing config says where the example is, whatever the mode.
		{"missing config", []string{"daemon", "--config", "/nonexistent/xlb.yaml"}, "config file /nonexistent/xlb.yaml does not exist: write it from the example (/etc/xlb/xlb.yaml.example once xlb is installed, control/example.yaml in the source) or name another with --config"},
		{"check with missing config", []string{"daemon", "--check", "--config", "/nonexistent/xlb.yaml"}, "config file /nonexistent/xlb.yaml does not exist: write it from the example (/etc/xlb/xlb.yaml.example once xlb is installed, control/example.yaml in the source) or name another with --config"},
		{"cleanup with missing config", []string{"daemon", "--cleanup", "--config", "/nonexistent/xlb.yaml"}, "config file /nonexistent/xlb.yaml does not exist: write it from the example (/etc/xlb/xlb.yaml.example once xlb is installed, control/example.yaml in the source) or name another with --config"},
		{"arguments", []string{"daemon", "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestDaemonCleanup removes the pin directory the config names (here a
// plain directory standing in for one on bpffs) and nothing else.
func TestDaemonCleanup(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(dir, "pins")
	require.NoError(t, os.Mkdir(pins, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(pins, "xlb_ingress"), nil, 0o600))
	cfg := filepath.Join(dir, "xlb.yaml")
	socket := filepath.Join(dir, "xlb.sock")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("interfaces:\n  - name: eth0\nbpf:\n  pin_path: %s\napi:\n  socket: %s\n", pins, socket)), 0o600))

	// A daemon answers on the config's socket: refused, nothing removed,
	// unless --force.
	ln, err := net.Listen("unix", socket)
	require.NoError(t, err)
	_, err = runCLI(t, "daemon", "--force", "--config", cfg)
	require.ErrorContains(t, err, "--force goes with --cleanup")
	_, err = runCLI(t, "daemon", "--cleanup", "--config", cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a daemon is running on "+socket+": --cleanup would leave it without pins")
	assert.Contains(t, err.Error(), "stop it first (systemctl stop xlb-daemon), or use --force")
	assert.FileExists(t, filepath.Join(pins, "xlb_ingress"))
	out, err := runCLI(t, "daemon", "--cleanup", "--force", "--config", cfg, "--log-format", "json")
	require.NoError(t, err)
	assert.Contains(t, out, "removed "+pins)
	require.NoError(t, ln.Close())

	require.NoError(t, os.Mkdir(pins, 0o700))
	out, err = runCLI(t, "daemon", "--cleanup", "--config", cfg, "--log-format", "json")
	require.NoError(t, err)
	assert.Contains(t, out, "removed "+pins)
	_, err = os.Stat(pins)
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(cfg)
	assert.NoError(t, err)
	// Again: it says there was nothing, not that it removed something.
	out, err = runCLI(t, "daemon", "--cleanup", "--config", cfg)
	require.NoError(t, err)
	assert.Equal(t, "nothing pinned under "+pins+": nothing to remove\n", out)
}

// TestDaemonCheck validates configs without touching anything: a valid one
// exits 0 and leaves no state file and no pins behind; a bad value, an
// unknown key and a missing interface each fail with the file named.
func TestDaemonCheck(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Skip("bpffs is not mounted at /sys/fs/bpf (bash scripts/bpffs.sh): a valid config needs its pin path there")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	// On bpffs, as a start needs it; --check must not create it.
	pins := filepath.Join("/sys/fs/bpf", "xlbt-check-"+filepath.Base(dir))
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	base := fmt.Sprintf("state:\n  path: %s\nbpf:\n  pin_path: %s\n", state, pins)
	good := write("good.yaml", "interfaces:\n  - name: lo\n"+base+
		"outer_source:\n  ipv4: 192.0.2.10\ndataplane:\n  next_hop_mac: \"02:00:00:00:00:01\"\n  src_mac: \"02:00:00:00:00:02\"\n"+
		"vips:\n  - address: 203.0.113.10\n    port: 80\n    protocol: tcp\n    backends:\n      - address: 10.0.1.11\n      - address: 10.0.1.12\n")
	code, stdout, stderr := runExit("daemon", "--check", "--config", good)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, good+": configuration is valid (1 interface, 1 VIP, 2 backends)\n", stdout)
	assert.NoFileExists(t, state)
	assert.NoDirExists(t, pins)

	garbage := write("garbage-state.json", "not json")
	tests := []struct{ name, body, want string }{
		{"missing interface", "interfaces:\n  - name: xlbnosuch0\n" + base, `:2: interfaces[0].name: interface "xlbnosuch0" does not exist on this host`},
		// A start refuses these before it loads anything; so does --check.
		{"no next hop from the FIB", "interfaces:\n  - name: lo\n" + base + "outer_source:\n  ipv4: 192.0.2.10\n",
			"interface lo has no Ethernet address, so the kernel's FIB cannot give next hops on it"},
		{"no source MAC", "interfaces:\n  - name: lo\n" + base + "outer_source:\n  ipv4: 192.0.2.10\ndataplane:\n  next_hop_mac: \"02:00:00:00:00:01\"\n",
			"dataplane.next_hop_mac needs the source MAC of forwarded frames"},
		{"unreadable state file", "interfaces:\n  - name: lo\n" + fmt.Sprintf("state:\n  path: %s\nbpf:\n  pin_path: %s\n", garbage, pins) +
			"outer_source:\n  ipv4: 192.0.2.10\ndataplane:\n  next_hop_mac: \"02:00:00:00:00:01\"\n  src_mac: \"02:00:00:00:00:02\"\n",
			"load state: parse state " + garbage + ": invalid character"},
		{"pin path not on bpffs", "interfaces:\n  - name: lo\n" + fmt.Sprintf("state:\n  path: %s\nbpf:\n  pin_path: %s\n", state, filepath.Join(dir, "pins")),
			"bpf.pin_path: check pin path " + filepath.Join(dir, "pins") + ": pin path is not on bpffs"},
		{"unknown key", "interfaces:\n  - name: lo\n    mdoe: native\n" + base, `:3: unknown key "mdoe" in interfaces[0] (did you mean "mode"?)`},
		{"bad value", "interfaces:\n  - name: lo\n" + base + "vips:\n  - address: 203.0.113.10\n    port: 0\n", `vips[0].port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(tt.name+".yaml", tt.body)
			code, stdout, stderr := runExit("daemon", "--check", "--config", p)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.want)
			if !strings.Contains(tt.want, "load state") { // that one names the state file
				assert.Contains(t, stderr, p)
			}
			assert.NoFileExists(t, state)
		})
	}
	code, _, stderr = runExit("daemon", "--check", "--cleanup", "--config", good)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "xlb: --check and --cleanup cannot be used together")
}
