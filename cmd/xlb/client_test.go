package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// call is one Service method invocation seen by fakeDaemon.
type call struct {
	Method string
	Args   []any
}

// fakeDaemon is an api.Service that records what the CLI asked for and
// answers with canned data. It is served over a real unix socket by the real
// api.Server, so the CLI tests cover flags → client → socket → handler.
type fakeDaemon struct {
	mu    sync.Mutex
	calls []call
	err   error

	vips   []api.VIP
	status api.Status
	stats  []api.Stats // successive answers to Stats; the last one repeats
	flow   api.FlowAnswer
}

var _ api.Service = (*fakeDaemon)(nil)

func (f *fakeDaemon) record(method string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method, args})
	return f.err
}

// forced names a call made with --force "Method+force".
func forced(ctx context.Context, method string) string {
	if api.Forced(ctx) {
		return method + "+force"
	}
	return method
}

func (f *fakeDaemon) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeDaemon) ListVIPs(context.Context) ([]api.VIP, error) {
	return f.vips, f.record("ListVIPs")
}

func (f *fakeDaemon) GetVIP(_ context.Context, k api.VIPKey) (api.VIP, error) {
	if err := f.record("GetVIP", k); err != nil {
		return api.VIP{}, err
	}
	for _, v := range f.vips {
		if v.Key == k {
			return v, nil
		}
	}
	return api.VIP{}, api.Errorf(api.ErrNotFound, "vip %s not found", k)
}

func (f *fakeDaemon) AddVIP(ctx context.Context, s api.VIPSpec) error {
	return f.record(forced(ctx, "AddVIP"), s)
}
func (f *fakeDaemon) DeleteVIP(ctx context.Context, k api.VIPKey) error {
	return f.record(forced(ctx, "DeleteVIP"), k)
}

func (f *fakeDaemon) AddBackend(ctx context.Context, k api.VIPKey, s api.BackendSpec) error {
	return f.record(forced(ctx, "AddBackend"), k, s)
}

func (f *fakeDaemon) DeleteBackend(ctx context.Context, k api.VIPKey, b netip.Addr) error {
	return f.record(forced(ctx, "DeleteBackend"), k, b)
}

func (f *fakeDaemon) SetBackendState(ctx context.Context, k api.VIPKey, b netip.Addr, drain bool) error {
	return f.record(forced(ctx, "SetBackendState"), k, b, drain)
}

func (f *fakeDaemon) SetBackendWeight(ctx context.Context, k api.VIPKey, b netip.Addr, w uint32) error {
	return f.record(forced(ctx, "SetBackendWeight"), k, b, w)
}

func (f *fakeDaemon) Status(context.Context) (api.Status, error) {
	return f.status, f.record("Status")
}

func (f *fakeDaemon) Stats(context.Context) (api.Stats, error) {
	f.mu.Lock()
	n := 0
	for _, c := range f.calls {
		if c.Method == "Stats" {
			n++
		}
	}
	f.mu.Unlock()
	if err := f.record("Stats"); err != nil {
		return api.Stats{}, err
	}
	if len(f.stats) == 0 {
		return api.Stats{}, nil
	}
	return f.stats[min(n, len(f.stats)-1)], nil
}

func (f *fakeDaemon) Flow(_ context.Context, q api.FlowQuery) (api.FlowAnswer, error) {
	return f.flow, f.record("Flow", q)
}

func (f *fakeDaemon) Reload(context.Context) error { return f.record("Reload") }

// startDaemon serves svc on a socket in a temp dir and returns its path.
func startDaemon(t *testing.T, svc api.Service) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xlb.sock")
	srv, err := api.NewServer(svc, api.ServerOptions{Path: path, Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, srv.Close())
	})
	return path
}

// runXLB runs the CLI against the socket and returns stdout and stderr
// separately (data and diagnostics must not mix).
func runXLB(t *testing.T, socket string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = execute(withSocket(socket, args), &out, &errb)
	return out.String(), errb.String(), err
}

// withSocket adds --socket to a command line whose command takes it (the
// daemon's commands; the flag is unknown to the others), also when the
// line asks for completions (__complete).
func withSocket(socket string, args []string) []string {
	line := args
	if len(args) > 0 && args[0] == "__complete" {
		line = args[1:]
	}
	cmd, _, err := newRootCmd().Find(line)
	if err != nil || cmd.Flag(socketFlag) == nil {
		return args
	}
	flag := []string{"--" + socketFlag, socket}
	if len(line) < len(args) {
		return append(append([]string{"__complete"}, flag...), line...)
	}
	return append(flag, args...)
}

// execute runs a fresh command tree with args, writing to stdout and stderr.
func execute(args []string, stdout, stderr io.Writer) error {
	cmd := newRootCmd()
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	return cmd.Execute()
}

var (
	vip4  = api.VIPKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: api.ProtoTCP}
	vip6  = api.VIPKey{Addr: netip.MustParseAddr("2001:db8::1"), Port: 443, Proto: api.ProtoTCP}
	l7a   = netip.MustParseAddr("10.0.1.11")
	l7b   = netip.MustParseAddr("10.0.1.12")
	l7c   = netip.MustParseAddr("10.0.1.13")
	clock = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

// shopVIPs is docs/cli.md's example: one VIP, three L7 hosts, one drained,
// one down.
func shopVIPs() []api.VIP {
	return []api.VIP{
		{Key: vip4, Mode: api.ModeIPIP, TableSize: 65537, Backends: []api.Backend{
			{Addr: l7a, Weight: 1, State: api.StateActive, Healthy: true, TableSlots: 32769, LastCheck: clock.Add(-300 * time.Millisecond)},
			{Addr: l7b, Weight: 1, Drain: true, State: api.StateDraining, Healthy: true, LastCheck: clock.Add(-200 * time.Millisecond)},
			{Addr: l7c, Weight: 1, State: api.StateActive, Healthy: true, TableSlots: 32768, LastCheck: clock.Add(-100 * time.Millisecond)},
		}},
		{Key: vip6, Mode: api.ModeL2DSR, TableSize: 251},
	}
}

func TestDaemonNotRunningCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.sock")
	commands := [][]string{
		{"vip", "list"}, {"vip", "show", "10.0.0.1:80/tcp"}, {"vip", "add", "10.0.0.1:80/tcp"},
		{"backend", "drain", "10.0.0.1:80/tcp", "10.0.1.11"}, {"status"}, {"stats"}, {"reload"},
		{"flow", "192.0.2.7:40000", "10.0.0.1:80/tcp"},
	}
	for _, args := range commands {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			stdout, _, err := runXLB(t, path, args...)
			require.Error(t, err)
			assert.ErrorIs(t, err, api.ErrDaemonUnreachable)
			assert.Contains(t, err.Error(), "cannot reach xlb daemon at "+path+": is `xlb daemon` running?")
			assert.Contains(t, err.Error(), "start it with `systemctl start xlb-daemon`", "how to start it")
			assert.Contains(t, err.Error(), "--socket", "how to point at another socket")
			assert.Empty(t, stdout)
		})
	}
}

func TestPermissionDeniedCLI(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root connects through any mode; control/api's TestPermissionDenied runs a client as another user")
	}
	path := startDaemon(t, &fakeDaemon{})
	require.NoError(t, os.Chmod(path, 0))
	_, _, err := runXLB(t, path, "status")
	assert.ErrorIs(t, err, api.ErrPermission)
	assert.ErrorContains(t, err, "run the command with sudo or join the socket's group")
}

func TestOutputFlagValidated(t *testing.T) {
	d := &fakeDaemon{}
	path := startDaemon(t, d)
	for _, args := range [][]string{
		{"vip", "list", "-o", "yaml"}, {"vip", "add", "10.0.0.1:80/tcp", "-o", "wide"}, {"status", "-o", "yaml"},
		{"stats", "-o", "csv"}, {"backend", "list", "10.0.0.1:80/tcp", "-o", "x"}, {"flow", "1.2.3.4:5", "10.0.0.1:80", "-o", "x"},
		{"reload", "-o", "x"}, {"vip", "del", "10.0.0.1:80", "-o", "x"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			_, _, err := runXLB(t, path, args...)
			assert.ErrorContains(t, err, "unknown output format")
		})
	}
	assert.Empty(t, d.Calls(), "nothing reaches the daemon when a flag is wrong")
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestCount: counts in messages are English, whatever the number.
func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 runtime changes"}, {1, "1 runtime change"}, {25, "25 runtime changes"}} {
		assert.Equal(t, tt.want, count(tt.n, "runtime change"))
	}
}
