package main

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4/decap"
)

func TestDecapValidation(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no iface", []string{"decap"}, "--iface is required"},
		{"cleanup without pin path", []string{"decap", "--cleanup"}, "--cleanup needs --pin-path"},
		{"bad mode", []string{"decap", "--iface", "lo", "--mode", "turbo"}, "invalid --mode"},
		{"bad addr", []string{"decap", "--iface", "lo", "--addr", "10.0.0.300"}, `invalid --addr "10.0.0.300"`},
		{"loopback addr", []string{"decap", "--iface", "lo", "--addr", "127.0.0.1"}, `invalid --addr "127.0.0.1": a loopback or link-local address is never the outer destination`},
		{"loopback v6 addr", []string{"decap", "--iface", "eth0", "--addr", "10.0.1.1", "--addr", "::1"}, `invalid --addr "::1"`},
		{"no such interface", []string{"decap", "--iface", "xlb-nosuch0"}, "no such interface \"xlb-nosuch0\" in this network namespace (see `ip link`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	// Said once, in words: not the interface twice nor Go's "route ip+net".
	code, _, stderr := runExit("decap", "--iface", "xlb-nosuch0")
	assert.Equal(t, 1, code)
	assert.Equal(t, "xlb: no such interface \"xlb-nosuch0\" in this network namespace (see `ip link`)\n", stderr)
}

// TestDecapLoopbackInterface: lo's 127.0.0.1 and ::1 were taken as tunnel
// endpoints, which no edge host can send to; the command now stops and
// says what it needs.
func TestDecapLoopbackInterface(t *testing.T) {
	use, skipped, err := decap.InterfaceAddrs("lo")
	require.NoError(t, err)
	if len(use) > 0 {
		t.Skipf("lo has routable addresses here (%v): nothing to refuse", use)
	}
	require.Contains(t, skipped, netip.MustParseAddr("127.0.0.1"))
	// Already cancelled: had the command attached to lo, it would stop at
	// once, print its counters and succeed, not hang the test.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"decap", "--iface", "lo", "--stats-interval", "0"})
	err = cmd.ExecuteContext(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `interface "lo" has no address an edge host can tunnel to (it has only `+joinAddrs(skipped)+`; a loopback or link-local address is never the outer destination of the edge hosts' IP-in-IP or GUE packets)`)
	assert.Contains(t, err.Error(), "(e.g. --iface eth0), or --addr with this host's IPv4 and IPv6 addresses")
	assert.Empty(t, stdout.String())
	assert.NotContains(t, stderr.String(), "attached")
}
