package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/internal/logbuf"
)

// requireKernel skips unless the test can load BPF programs and pin them.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load the XDP program (CI runs the kernel tests as root)")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Skip("/sys/fs/bpf is not bpffs: run scripts/bpffs.sh (make test does)")
	}
}

func uniquePrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "xlbd" + hex.EncodeToString(b)
}

// l7host is a stand-in for `xlb proxy`'s admin listener: /ready answers
// 200 or 503 as told.
type l7host struct {
	addr  netip.Addr
	ready atomic.Bool
	// hang: the readiness check gets no answer until it gives up, so the
	// host stays unchecked for the check's whole timeout.
	hang atomic.Bool
	srv  *http.Server
}

// startHosts starts n readiness servers on 127.0.0.{1..n} sharing one port,
// as L7 hosts share the admin port in production.
func startHosts(t *testing.T, n int) ([]*l7host, uint16) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		hosts, port, err := tryStartHosts(n)
		if err == nil {
			for _, h := range hosts {
				t.Cleanup(func() { _ = h.srv.Close() })
			}
			return hosts, port
		}
		require.Less(t, attempt, 10, "find a port free on every loopback address: %v", err)
	}
}

func tryStartHosts(n int) ([]*l7host, uint16, error) {
	first, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	port := uint16(first.Addr().(*net.TCPAddr).Port)
	lns := []net.Listener{first}
	for i := 2; i <= n; i++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, 0, err
		}
		lns = append(lns, ln)
	}
	var hosts []*l7host
	for i, ln := range lns {
		h := &l7host{addr: netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})}
		h.ready.Store(true)
		h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h.hang.Load() {
				<-r.Context().Done()
				return
			}
			if r.URL.Path == "/ready" && h.ready.Load() {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}), ReadHeaderTimeout: time.Second}
		go func() { _ = h.srv.Serve(ln) }()
		hosts = append(hosts, h)
	}
	return hosts, port, nil
}

type env struct {
	dir, cfgPath, pin, socket string
	port                      uint16
	hosts                     []*l7host
	// logs, when set, receives the daemon's log instead of io.Discard.
	logs *logbuf.Buffer
}

const vipText = "10.200.0.10:80/tcp"

func (e *env) writeConfig(t *testing.T, backends string, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(`
interfaces:
  - name: lo
outer_source:
  ipv4: 10.200.0.1
dataplane:
  max_vips: 8
  max_backends: 64
  conntrack_entries: 4096
  table_size: 65537
health:
  port: %d
  # The shipped defaults. A 40 ms timeout let the first round of checks
  # time out under -race on a loaded 2-core machine (backend read down).
  interval: 200ms
  timeout: 150ms
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: 10.200.0.10
    port: 80
    protocol: tcp
    backends:
%s%s`, e.port, e.socket, filepath.Join(e.dir, "state", "state.json"), e.pin, backends, extra)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
}

func newEnv(t *testing.T, nhosts int) *env {
	t.Helper()
	requireKernel(t)
	hosts, port := startHosts(t, nhosts)
	dir := t.TempDir()
	e := &env{dir: dir, cfgPath: filepath.Join(dir, "xlb.yaml"), pin: "/sys/fs/bpf/" + uniquePrefix(t),
		socket: filepath.Join(dir, "run", "xlb.sock"), port: port, hosts: hosts}
	t.Cleanup(func() { _ = os.RemoveAll(e.pin) })
	var b strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&b, "      - address: %s\n", h.addr)
	}
	e.writeConfig(t, b.String(), "")
	return e
}

func (e *env) start(t *testing.T) (*Daemon, context.CancelFunc) {
	t.Helper()
	return e.startWith(t, prometheus.NewPedanticRegistry())
}

func (e *env) startWith(t *testing.T, reg *prometheus.Registry) (*Daemon, context.CancelFunc) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.logs != nil {
		log = slog.New(slog.NewTextHandler(e.logs, nil))
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := New(context.Background(), Options{ConfigPath: e.cfgPath, Log: log, Version: "test", NoAttach: true, Registry: reg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		assert.NoError(t, d.Run(ctx))
	}()
	stop := func() {
		cancel()
		<-done
		require.NoError(t, d.Close())
	}
	return d, stop
}

// chosen asks the real program which backend each of n client flows gets.
func chosen(t *testing.T, d *Daemon, n int) map[netip.Addr]int {
	t.Helper()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	got := map[netip.Addr]int{}
	for i := range n {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i / 200), byte(i%200 + 1)}), uint16(10000+i))
		ans, err := d.Flow(context.Background(), api.FlowQuery{Src: src, VIP: vip})
		require.NoError(t, err)
		got[ans.Backend]++
	}
	return got
}

// eventually polls cond; the bound only keeps a broken test from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for: %s", what)
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDaemonLifecycle(t *testing.T) {
	e := newEnv(t, 3)
	h1, h2, h3 := e.hosts[0].addr, e.hosts[1].addr, e.hosts[2].addr
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	ctx := context.Background()

	d, stop := e.start(t)
	st, err := d.Status(ctx)
	require.NoError(t, err)
	assert.False(t, st.Adopted)
	assert.Empty(t, st.LastReconcileError)
	require.Len(t, st.VIPs, 1)
	for _, b := range st.VIPs[0].Backends {
		assert.Equal(t, api.StateActive, b.State, "health known before the first reconcile")
		assert.InDelta(t, 65537/3, b.TableSlots, 1)
	}
	got := chosen(t, d, 300)
	assert.Len(t, got, 3, "every host gets flows: %v", got)

	t.Run("drain is persisted and live when acknowledged", func(t *testing.T) {
		require.NoError(t, d.SetBackendState(ctx, vip, h2, true))
		f, err := state.NewStore(filepath.Join(e.dir, "state", "state.json")).Load()
		require.NoError(t, err)
		v, _ := f.Desired.VIP(vip)
		assert.True(t, v.Backends[1].Drain)
		assert.Zero(t, chosen(t, d, 300)[h2], "no new flow goes to the drained host")
		got, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		assert.Equal(t, api.StateDraining, got.Backends[1].State)
		assert.Zero(t, got.Backends[1].TableSlots)
	})

	t.Run("errors map to api sentinels", func(t *testing.T) {
		assert.ErrorIs(t, d.SetBackendState(ctx, vip, netip.MustParseAddr("127.0.0.99"), true), api.ErrNotFound)
		assert.ErrorIs(t, d.AddVIP(ctx, api.VIPSpec{Key: vip}), api.ErrConflict)
		assert.ErrorIs(t, d.AddVIP(ctx, api.VIPSpec{Key: api.VIPKey{Addr: netip.MustParseAddr("10.200.0.11"), Port: 80, Proto: "tcp"}, TableSize: 251}), api.ErrInvalid)
		_, err := d.GetVIP(ctx, api.VIPKey{Addr: netip.MustParseAddr("10.200.0.99"), Port: 1, Proto: "tcp"})
		assert.ErrorIs(t, err, api.ErrNotFound)
	})

	t.Run("health down leaves the table, up comes back", func(t *testing.T) {
		e.hosts[2].ready.Store(false)
		eventually(t, "h3 down", func() bool { return chosen(t, d, 100)[h3] == 0 })
		got, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		assert.Equal(t, api.StateDown, got.Backends[2].State)
		assert.Contains(t, got.Backends[2].LastError, "status 503")
		assert.Equal(t, 100, chosen(t, d, 100)[h1], "only h1 is left")
		e.hosts[2].ready.Store(true)
		eventually(t, "h3 up", func() bool { return chosen(t, d, 100)[h3] > 0 })
	})

	t.Run("all down installs an empty table", func(t *testing.T) {
		require.NoError(t, d.SetBackendState(ctx, vip, h1, true))
		err := d.SetBackendState(ctx, vip, h3, true)
		require.ErrorIs(t, err, api.ErrConflict, "draining the last active backend needs --force")
		assert.Contains(t, err.Error(), "every new flow to it would be dropped")
		got, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		assert.False(t, got.Backends[2].Drain, "a refused change changes nothing")
		require.NoError(t, d.SetBackendState(api.WithForce(ctx), vip, h3, true))
		assert.Equal(t, map[netip.Addr]int{{}: 50}, chosen(t, d, 50), "every new flow is dropped")
		require.NoError(t, d.SetBackendState(ctx, vip, h1, false))
		require.NoError(t, d.SetBackendState(ctx, vip, h3, false))
	})

	t.Run("bad reload changes nothing", func(t *testing.T) {
		good, err := os.ReadFile(e.cfgPath)
		require.NoError(t, err)
		before, err := d.ListVIPs(ctx)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(e.cfgPath, append(good, []byte("bogus: 1\n")...), 0o600))
		err = d.Reload(ctx)
		require.ErrorIs(t, err, api.ErrInvalid)
		assert.Contains(t, err.Error(), `unknown key "bogus"`)
		changed := strings.Replace(string(good), "max_vips: 8", "max_vips: 9", 1)
		require.NoError(t, os.WriteFile(e.cfgPath, []byte(changed), 0o600))
		err = d.Reload(ctx)
		require.ErrorIs(t, err, api.ErrInvalid)
		assert.Contains(t, err.Error(), "dataplane.max_vips changed, which only a start of the daemon applies")
		assert.Contains(t, err.Error(), "xlb daemon --cleanup", "a map size needs the pins gone")
		after, err := d.ListVIPs(ctx)
		require.NoError(t, err)
		assert.Equal(t, keysAndDrains(before), keysAndDrains(after))
		require.NoError(t, os.WriteFile(e.cfgPath, good, 0o600))
		assert.Equal(t, 2.0, gatheredValue(t, d.Registry(), "xlb_config_reloads_total", "result", "error"))
		assert.Equal(t, 0.0, gatheredValue(t, d.Registry(), "xlb_config_reloads_total", "result", "ok"))
		assert.Equal(t, 0.0, gatheredValue(t, d.Registry(), "xlb_config_last_reload_successful", "", ""))
	})

	t.Run("reload applies the file's difference and keeps api changes", func(t *testing.T) {
		// The file drops h1 and sets h3's weight to 2; the API drain of
		// h2 must survive.
		require.NotEmpty(t, seriesOf(t, d.Registry(), "backend", h1.String()), "h1 has series before the reload")
		loadedBefore := gatheredValue(t, d.Registry(), "xlb_config_last_reload_success_timestamp_seconds", "", "")
		e.writeConfig(t, fmt.Sprintf("      - address: %s\n      - address: %s\n        weight: 2\n      - address: %s\n", h2, h3, "127.0.0.4"), "")
		require.NoError(t, d.Reload(ctx))
		assert.Empty(t, seriesOf(t, d.Registry(), "backend", h1.String()), "the deleted backend's series are gone")
		assert.NotEmpty(t, seriesOf(t, d.Registry(), "backend", h2.String()))
		assert.Equal(t, 1.0, gatheredValue(t, d.Registry(), "xlb_config_reloads_total", "result", "ok"))
		assert.Equal(t, 1.0, gatheredValue(t, d.Registry(), "xlb_config_last_reload_successful", "", ""))
		assert.GreaterOrEqual(t, gatheredValue(t, d.Registry(), "xlb_config_last_reload_success_timestamp_seconds", "", ""), loadedBefore)
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		require.Len(t, v.Backends, 3)
		assert.Equal(t, h2, v.Backends[0].Addr)
		assert.True(t, v.Backends[0].Drain, "api drain survives the reload")
		assert.Equal(t, uint32(2), v.Backends[1].Weight)
		assert.Equal(t, api.StateDown, v.Backends[2].State, "127.0.0.4 has no server")
		got := chosen(t, d, 200)
		assert.Equal(t, 200, got[h3], "only h3 is usable: %v", got)
	})

	t.Run("metrics", func(t *testing.T) {
		reg := d.Registry()
		n, err := testutil.GatherAndCount(reg, "xlb_backend_up", "xlb_reconcile_total", "xlb_table_rebuilds_total")
		require.NoError(t, err)
		assert.Positive(t, n)
		problems, err := testutil.GatherAndLint(reg)
		require.NoError(t, err)
		assert.Empty(t, problems)
	})

	t.Run("api over the unix socket", func(t *testing.T) {
		c := api.NewClient(e.socket, 5*time.Second)
		vips, err := c.ListVIPs(ctx)
		require.NoError(t, err)
		require.Len(t, vips, 1)
		require.NoError(t, c.SetBackendState(ctx, vip, h2, false))
		st, err := c.Status(ctx)
		require.NoError(t, err)
		assert.Equal(t, "test", st.Version)
	})

	before := chosen(t, d, 300)
	stop()

	t.Run("restart adopts the pinned data path with the same state", func(t *testing.T) {
		d2, stop2 := e.start(t)
		defer stop2()
		st, err := d2.Status(ctx)
		require.NoError(t, err)
		assert.True(t, st.Adopted)
		v, err := d2.GetVIP(ctx, vip)
		require.NoError(t, err)
		assert.False(t, v.Backends[0].Drain, "the undrain acknowledged before the restart is kept")
		assert.Equal(t, uint32(2), v.Backends[1].Weight)
		assert.Equal(t, before, chosen(t, d2, 300), "the same flows go to the same hosts")
	})
}

// TestFailOpen: with health.all_down: fail_open, a VIP whose every backend
// that is not drained fails its checks keeps sending new flows to those;
// reloaded with the default (drop), it drops them.
func TestFailOpen(t *testing.T) {
	e := newEnv(t, 3)
	plain, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	failOpen := strings.Replace(string(plain), "health:\n", "health:\n  all_down: fail_open\n", 1)
	require.NotEqual(t, string(plain), failOpen)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(failOpen), 0o600))
	d, stop := e.start(t)
	defer stop()
	ctx := context.Background()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	h1, h2, h3 := e.hosts[0].addr, e.hosts[1].addr, e.hosts[2].addr
	require.NoError(t, d.SetBackendState(ctx, vip, h2, true))
	states := func() []string { return backendStates(t, d, vip) }

	for _, h := range e.hosts {
		h.ready.Store(false)
	}
	// The states change with the health checks, the table with the
	// reconcile that follows them: wait for both.
	failingOpen := func() bool {
		got, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		return got.FailingOpen
	}
	eventually(t, "every backend down and the VIP failing open", func() bool {
		return slices.Equal(states(), []string{api.StateDown, api.StateDraining, api.StateDown}) && failingOpen()
	})
	spread := chosen(t, d, 300)
	assert.Zero(t, spread[netip.Addr{}], "no new flow is dropped: %v", spread)
	assert.Zero(t, spread[h2], "the drained host stays out: %v", spread)
	assert.Positive(t, spread[h1], "%v", spread)
	assert.Positive(t, spread[h3], "%v", spread)
	assert.Equal(t, 1.0, gatheredValue(t, d.Registry(), "xlb_vip_failing_open", "vip", vipText))

	require.NoError(t, os.WriteFile(e.cfgPath, plain, 0o600))
	require.NoError(t, d.Reload(ctx))
	got, err := d.GetVIP(ctx, vip)
	require.NoError(t, err)
	assert.False(t, got.FailingOpen)
	assert.Equal(t, map[netip.Addr]int{{}: 50}, chosen(t, d, 50), "every new flow is dropped")
	assert.Equal(t, 0.0, gatheredValue(t, d.Registry(), "xlb_vip_failing_open", "vip", vipText))

	// Healthy again: an ordinary table, not failing open.
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(failOpen), 0o600))
	require.NoError(t, d.Reload(ctx))
	e.hosts[0].ready.Store(true)
	eventually(t, "h1 active, and the table following it", func() bool {
		return states()[0] == api.StateActive && !failingOpen() && maps.Equal(chosen(t, d, 50), map[netip.Addr]int{h1: 50})
	})
}

// backendStates is the state of each backend of vip, in d's order.
func backendStates(t *testing.T, d *Daemon, vip api.VIPKey) []string {
	t.Helper()
	got, err := d.GetVIP(context.Background(), vip)
	require.NoError(t, err)
	var out []string
	for _, b := range got.Backends {
		out = append(out, b.State)
	}
	return out
}

// withFailOpen rewrites e's config with health.all_down: fail_open and
// extra health settings (each "  key: value\n").
func withFailOpen(t *testing.T, e *env, extra string) string {
	t.Helper()
	plain, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	cfg := strings.Replace(string(plain), "health:\n", "health:\n  all_down: fail_open\n"+extra, 1)
	require.NotEqual(t, string(plain), cfg)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	return cfg
}

// TestFailOpenBelow: with health.fail_open_below, a VIP fails open while
// fewer than that share of its backends pass, so the one host still
// passing does not take every new flow; failing open starts and ends with
// one log line each, and a reload that changes the policy says so.
func TestFailOpenBelow(t *testing.T) {
	e := newEnv(t, 3)
	e.logs = &logbuf.Buffer{}
	withFailOpen(t, e, "  fail_open_below: 50%\n")
	d, stop := e.start(t)
	defer stop()
	ctx := context.Background()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	h1, h2, h3 := e.hosts[0].addr, e.hosts[1].addr, e.hosts[2].addr
	states := func() []string { return backendStates(t, d, vip) }
	vipOf := func() api.VIP {
		got, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		require.NotNil(t, got.FailOpen)
		return got
	}
	const (
		enter = "too few backends pass their health checks: failing open, new flows go to every backend not drained"
		leave = "vip no longer failing open"
	)

	// 1 of 3 passes: below 50 %.
	e.hosts[1].ready.Store(false)
	e.hosts[2].ready.Store(false)
	eventually(t, "h2 and h3 down", func() bool {
		return slices.Equal(states(), []string{api.StateActive, api.StateDown, api.StateDown})
	})
	// The table follows the checks on the next reconcile.
	eventually(t, "1 of 3 passing in the table's view", func() bool { return *vipOf().FailOpen == api.FailOpen{Below: 50, Passing: 1, Checked: 3} })
	got := vipOf()
	assert.True(t, got.FailingOpen, "one host of three must not take every new flow")
	spread := chosen(t, d, 300)
	assert.Zero(t, spread[netip.Addr{}], "no new flow is dropped: %v", spread)
	for _, h := range []netip.Addr{h1, h2, h3} {
		assert.Positive(t, spread[h], "every host gets new flows: %v", spread)
	}
	assert.Equal(t, 1.0, gatheredValue(t, d.Registry(), "xlb_vip_failing_open", "vip", vipText))
	assert.Equal(t, 1, e.logs.Count(enter), "%s", e.logs)

	// 2 of 3 pass: an ordinary table of those two.
	e.hosts[1].ready.Store(true)
	eventually(t, "2 of 3 passing in the table's view", func() bool { return vipOf().FailOpen.Passing == 2 })
	assert.False(t, vipOf().FailingOpen)
	spread = chosen(t, d, 300)
	assert.Zero(t, spread[h3], "the failing host is out again: %v", spread)
	assert.Equal(t, 300, spread[h1]+spread[h2], "%v", spread)
	assert.Equal(t, 0.0, gatheredValue(t, d.Registry(), "xlb_vip_failing_open", "vip", vipText))
	assert.Equal(t, 1, e.logs.Count(enter), "one warning for one episode:\n%s", e.logs)
	assert.Equal(t, 1, e.logs.Count(leave), "%s", e.logs)

	// Reloaded without the threshold: the change of policy is logged.
	plain, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(plain), "  fail_open_below: 50%\n", "", 1)), 0o600))
	require.NoError(t, d.Reload(ctx))
	assert.Equal(t, 1, e.logs.Count("fail-open policy changed"), "%s", e.logs)
	assert.Equal(t, &api.FailOpen{Passing: 2, Checked: 3}, vipOf().FailOpen)
}

// TestFailOpenUnchecked: hosts added to a running VIP are not counted
// until their first check answers, so adding many at once does not fail
// the VIP open, and they get no new flows before they pass.
func TestFailOpenUnchecked(t *testing.T) {
	e := newEnv(t, 5)
	h1, h2 := e.hosts[0].addr, e.hosts[1].addr
	// The new hosts' first check hangs until its 9 s timeout: they stay
	// unchecked far longer than the test takes to look.
	slow := func(five string) string {
		return strings.Replace(five, "interval: 200ms\n  timeout: 150ms\n", "interval: 10s\n  timeout: 9s\n", 1)
	}
	five := slow(withFailOpen(t, e, "  fail_open_below: 50%\n"))
	var rest strings.Builder
	for _, h := range e.hosts[2:] {
		fmt.Fprintf(&rest, "      - address: %s\n", h.addr)
	}
	two := strings.Replace(five, rest.String(), "", 1)
	require.NotEqual(t, five, two)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(two), 0o600))
	for _, h := range e.hosts[2:] {
		h.hang.Store(true)
	}
	d, stop := e.start(t)
	defer stop()
	ctx := context.Background()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	before := chosen(t, d, 300)
	require.Equal(t, 300, before[h1]+before[h2], "%v", before)

	require.NoError(t, os.WriteFile(e.cfgPath, []byte(five), 0o600))
	require.NoError(t, d.Reload(ctx))
	got, err := d.GetVIP(ctx, vip)
	require.NoError(t, err)
	require.Len(t, got.Backends, 5)
	for _, b := range got.Backends[2:] {
		require.True(t, b.LastCheck.IsZero(), "%s still unchecked when looked at", b.Addr)
	}
	assert.False(t, got.FailingOpen, "2 of 5 would be below 50%, but 3 are not checked yet")
	assert.Equal(t, &api.FailOpen{Below: 50, Passing: 2, Checked: 2}, got.FailOpen)
	assert.Equal(t, before, chosen(t, d, 300), "unchecked hosts get no new flows, the others keep theirs")
}

func keysAndDrains(vs []api.VIP) []string {
	var out []string
	for _, v := range vs {
		for _, b := range v.Backends {
			out = append(out, fmt.Sprintf("%s %s %d %v", v.Key, b.Addr, b.Weight, b.Drain))
		}
	}
	return out
}

func TestCleanupRemovesPins(t *testing.T) {
	e := newEnv(t, 1)
	d, stop := e.start(t)
	_ = d
	stop()
	entries, err := os.ReadDir(e.pin)
	require.NoError(t, err)
	require.NotEmpty(t, entries, "a stopped daemon leaves its data path pinned")
	cfg := d.cfg
	require.NoError(t, Cleanup(cfg))
	_, err = os.Stat(e.pin)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestTwoDaemonsAgree: two LB hosts (two daemons, two data paths) with the
// same configuration and the same health view send every flow to the same
// L7 host, as the real program answers it.
func TestTwoDaemonsAgree(t *testing.T) {
	e1 := newEnv(t, 3)
	// The second host's view of the same L7 hosts, listed in another order.
	e2 := &env{dir: t.TempDir(), pin: "/sys/fs/bpf/" + uniquePrefix(t), port: e1.port, hosts: e1.hosts}
	e2.cfgPath, e2.socket = filepath.Join(e2.dir, "xlb.yaml"), filepath.Join(e2.dir, "run", "xlb.sock")
	t.Cleanup(func() { _ = os.RemoveAll(e2.pin) })
	var b strings.Builder
	for i := len(e1.hosts) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "      - address: %s\n", e1.hosts[i].addr)
	}
	e2.writeConfig(t, b.String(), "")

	d1, stop1 := e1.start(t)
	defer stop1()
	d2, stop2 := e2.start(t)
	defer stop2()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	ctx := context.Background()
	// The same change on both, then compare flow by flow.
	for _, d := range []*Daemon{d1, d2} {
		require.NoError(t, d.SetBackendWeight(ctx, vip, e1.hosts[0].addr, 3))
	}
	for i := range 500 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i / 200), byte(i%200 + 1)}), uint16(20000+i))
		a1, err := d1.Flow(ctx, api.FlowQuery{Src: src, VIP: vip})
		require.NoError(t, err)
		a2, err := d2.Flow(ctx, api.FlowQuery{Src: src, VIP: vip})
		require.NoError(t, err)
		require.Equal(t, a1, a2, "flow %s", src)
	}
}

func TestIncompatiblePinsSayWhatToDo(t *testing.T) {
	e := newEnv(t, 1)
	_, stop := e.start(t)
	stop()
	cfg, err := os.ReadFile(e.cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(cfg), "max_backends: 64", "max_backends: 128", 1)), 0o600))
	_, err = New(context.Background(), Options{ConfigPath: e.cfgPath, NoAttach: true, Registry: prometheus.NewPedanticRegistry()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "xlb daemon --cleanup --config "+e.cfgPath)
}

func TestUDPWildcardAndIPv6VIPs(t *testing.T) {
	e := newEnv(t, 2)
	d, stop := e.start(t)
	defer stop()
	// The L7 hosts of these tests listen on loopback addresses, which
	// the API takes only when forced.
	ctx := api.WithForce(context.Background())
	h1, h2 := e.hosts[0].addr, e.hosts[1].addr

	udp, err := api.ParseVIPKey("10.200.0.11:*/udp")
	require.NoError(t, err)
	require.NoError(t, d.AddVIP(ctx, api.VIPSpec{Key: udp, Backends: []api.BackendSpec{{Addr: h1}, {Addr: h2}}}))
	eventually(t, "udp vip backends active", func() bool {
		v, err := d.GetVIP(ctx, udp)
		require.NoError(t, err)
		return v.Backends[0].State == api.StateActive && v.Backends[1].State == api.StateActive
	})
	src := netip.MustParseAddrPort("198.51.100.7:5353")
	ans, err := d.Flow(ctx, api.FlowQuery{Src: src, VIP: udp, DstPort: 53})
	require.NoError(t, err)
	assert.Contains(t, []netip.Addr{h1, h2}, ans.Backend)
	assert.Equal(t, api.ViaMaglev, ans.Via)
	_, err = d.Flow(ctx, api.FlowQuery{Src: src, VIP: udp})
	assert.ErrorIs(t, err, api.ErrInvalid, "an any-port VIP needs the destination port")

	// This config has no outer IPv6 source: an IPv6 VIP cannot be forwarded.
	v6, err := api.ParseVIPKey("[2001:db8::10]:443/tcp")
	require.NoError(t, err)
	err = d.AddVIP(ctx, api.VIPSpec{Key: v6})
	require.ErrorIs(t, err, api.ErrInvalid)
	assert.Contains(t, err.Error(), "outer_source.ipv6")
	_, err = d.Flow(ctx, api.FlowQuery{Src: netip.MustParseAddrPort("[2001:db8::7]:1000"), VIP: v6})
	assert.ErrorIs(t, err, api.ErrNotFound)

	// A deleted VIP's series go with it.
	require.NotEmpty(t, seriesOf(t, d.Registry(), "vip", udp.String()))
	require.NoError(t, d.DeleteVIP(ctx, udp))
	assert.Empty(t, seriesOf(t, d.Registry(), "vip", udp.String()))
}

// seriesOf lists the series (name and labels) that carry label=value.
func seriesOf(t *testing.T, g prometheus.Gatherer, label, value string) []string {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					out = append(out, mf.GetName()+fmt.Sprint(m.GetLabel()))
				}
			}
		}
	}
	return out
}

// gatheredValue is the value of the series of name whose label has value
// (label "" for an unlabelled series).
func gatheredValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
