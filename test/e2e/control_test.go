package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// ctlAdminPort is where each L7 host answers /ready, like xlb proxy's
// admin listener.
const ctlAdminPort = 9901

// ctlL7 is an L7 host: decapsulator, an app server on VIP:80 that answers
// with the host's name, and an admin server on its own address with /ready.
type ctlL7 struct {
	host *topo.Host
	vip  netip.Addr
	// proxied hosts run the real `xlb proxy` on VIP:80 and admin :9901;
	// the test's server is then its one app server on 127.0.0.1:9101.
	proxied bool
	// stopProxy ends the host's `xlb proxy` process (SIGKILL); termProxy
	// stops it gracefully (SIGTERM) and returns its exit error.
	stopProxy func()
	termProxy func() error
	mu        sync.Mutex
	srvs      []*http.Server
	ready     atomic.Bool
}

// addCtlL7 makes the L7 host name in tp with vips on its loopback (its
// servers answer on the first), XDP decapsulating what is sent to its own
// addresses (its IPv6 one too when a VIP is IPv6), and its servers
// running, ready, until the test ends.
func addCtlL7(t *testing.T, tp *topo.Topology, name string, proxied bool, vips ...netip.Addr) *ctlL7 {
	t.Helper()
	h, err := tp.AddHost(topo.HostConfig{Name: name, MTU: topo.BridgeMTU, VIPs: vips, RPFilterOff: true})
	require.NoError(t, err)
	d, err := decap.Open(decap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	addrs := []netip.Addr{h.Addr4}
	if slices.ContainsFunc(vips, netip.Addr.Is6) {
		addrs = append(addrs, h.Addr6)
	}
	require.NoError(t, d.SetAddrs(addrs))
	require.NoError(t, h.Do(func() error { return d.Attach(topo.HostIfname, xdplink.ModeNative) }))
	l := &ctlL7{host: h, vip: vips[0], proxied: proxied}
	l.ready.Store(true)
	l.start(t)
	t.Cleanup(l.stop)
	return l
}

// ctlBed is the control-plane test bed: the veth topology of the L4 test
// with the real `xlb daemon` (a separate process, so it can be killed with
// SIGKILL) running in the LB namespace.
//
//	client ─┐                         ┌─ l7-1 ┐
//	lb ─────┼── br0 (own namespace) ──┼─ l7-2 ├ VIP on lo, decap on eth0, /ready on :9901
//	gw ─────┘                         └─ l7-3 ┘
type ctlBed struct {
	tp                 *topo.Topology
	client, lb, gw     *topo.Host
	l7                 []*ctlL7
	vip                netip.Addr
	key                api.VIPKey
	dir, bin, cfg, pin string
	socket, daemonLog  string
	api                *api.Client
	daemon             *exec.Cmd
	daemonDone         chan error
	httpc              *http.Client
}

// newCtlBed builds the bed; the L7 hosts whose indices are in proxied run
// the real `xlb proxy`.
func newCtlBed(t *testing.T, proxied ...int) *ctlBed {
	t.Helper()
	b := &ctlBed{
		tp:  topo.NewT(t, topo.Options{}),
		vip: netip.MustParseAddr("198.51.100.20"),
		dir: t.TempDir(),
	}
	b.key = api.VIPKey{Addr: b.vip, Port: 80, Proto: api.ProtoTCP}
	b.bin = ctlBuild(t, b.dir)
	var err error
	b.client, err = b.tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	// The balancer's link carries the wrapped frames: its MTU (the daemon's
	// default limit) is the bridge's, like the L7 side's.
	b.lb, err = b.tp.AddHost(topo.HostConfig{Name: "lb", MTU: topo.BridgeMTU, PeerXDPPass: true})
	require.NoError(t, err)
	b.gw, err = b.tp.AddHost(topo.HostConfig{Name: "gw", MTU: topo.BridgeMTU, RPFilterOff: true, Router: true})
	require.NoError(t, err)
	require.NoError(t, b.client.AddRoute(netip.PrefixFrom(b.vip, 32), b.lb.Addr4))

	for i := 1; i <= 3; i++ {
		l := addCtlL7(t, b.tp, fmt.Sprintf("l7-%d", i), slices.Contains(proxied, i-1), b.vip)
		b.l7 = append(b.l7, l)
		if l.proxied {
			l.stopProxy = b.startProxy(t, l, "")
		}
	}

	// Static neighbours: the test measures the control plane, not ARP.
	require.NoError(t, b.client.AddNeigh(b.lb.Addr4, b.lb.MAC))
	for _, l := range b.l7 {
		require.NoError(t, b.gw.AddNeigh(l.host.Addr4, l.host.MAC))
		require.NoError(t, b.lb.AddNeigh(l.host.Addr4, l.host.MAC))
		require.NoError(t, l.host.AddNeigh(b.client.Addr4, b.client.MAC))
		require.NoError(t, l.host.AddNeigh(b.lb.Addr4, b.lb.MAC))
	}

	b.pin = "/sys/fs/bpf/" + b.tp.Prefix()
	b.socket = filepath.Join(b.dir, "run", "xlb.sock")
	b.cfg = filepath.Join(b.dir, "xlb.yaml")
	b.daemonLog = filepath.Join(b.dir, "daemon.log")
	b.writeConfig(t, "")
	b.api = api.NewClient(b.socket, 10*time.Second)
	b.httpc = &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{DialContext: b.client.Dialer(), DisableKeepAlives: true},
	}
	t.Cleanup(func() {
		b.killDaemon(t)
		assert.NoError(t, l4.RemovePins(b.pin))
		if t.Failed() {
			if out, err := os.ReadFile(b.daemonLog); err == nil {
				t.Logf("daemon log:\n%s", out)
			}
		}
	})
	return b
}

// ctlBuild builds the xlb binary the test runs as the daemon.
func ctlBuild(t *testing.T, dir string) string {
	t.Helper()
	// go test puts its own toolchain first on PATH.
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "find the go command")
	bin := filepath.Join(dir, "xlb")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/xlbproject/xlb/cmd/xlb").CombinedOutput()
	require.NoError(t, err, "build xlb: %s", out)
	return bin
}

func (b *ctlBed) writeConfig(t *testing.T, extra string) {
	t.Helper()
	var backends strings.Builder
	for _, l := range b.l7 {
		fmt.Fprintf(&backends, "      - address: %s\n", l.host.Addr4)
	}
	// Health settings are the defaults: the failover target is measured
	// with them.
	cfg := fmt.Sprintf(`interfaces:
  - name: eth0
    mode: native
outer_source:
  ipv4: %s
dataplane:
  max_vips: 8
  max_backends: 64
  conntrack_entries: 65536
  next_hop_mac: "%s"
  src_mac: "%s"
health:
  port: %d
api:
  socket: %s
metrics:
  listen: 127.0.0.1:9724
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: %s
    port: 80
    protocol: tcp
    backends:
%s%s`, b.lb.Addr4, b.gw.MAC, b.lb.MAC, ctlAdminPort, b.socket, filepath.Join(b.dir, "state.json"), b.pin, b.vip, backends.String(), extra)
	require.NoError(t, os.WriteFile(b.cfg, []byte(cfg), 0o600))
}

// startDaemon runs `xlb daemon` in the LB namespace and waits for its API.
func (b *ctlBed) startDaemon(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(b.daemonLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	defer logf.Close()
	cmd := b.lb.Command(context.Background(), b.bin, "daemon", "--config", b.cfg, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	b.daemon, b.daemonDone = cmd, make(chan error, 1)
	go func() { b.daemonDone <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := b.api.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case werr := <-b.daemonDone:
			out, _ := os.ReadFile(b.daemonLog)
			t.Fatalf("daemon exited (%v):\n%s", werr, out)
		default:
		}
		require.True(t, time.Now().Before(deadline), "daemon API not up: %v", err)
		time.Sleep(20 * time.Millisecond)
	}
}

// killDaemon sends SIGKILL: no cleanup of any kind runs in the daemon.
func (b *ctlBed) killDaemon(t *testing.T) {
	t.Helper()
	if b.daemon == nil {
		return
	}
	_ = b.daemon.Process.Signal(syscall.SIGKILL)
	<-b.daemonDone
	b.daemon = nil
}

func (l *ctlL7) start(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	name := l.host.Name
	app := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	})}
	admin := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && l.ready.Load() {
			fmt.Fprintln(w, "ready")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	for _, s := range []struct {
		srv  *http.Server
		addr netip.AddrPort
	}{{app, netip.AddrPortFrom(l.vip, 80)}, {admin, netip.AddrPortFrom(l.host.Addr4, ctlAdminPort)}} {
		if l.proxied {
			if s.srv == admin {
				continue // the proxy serves /ready
			}
			s.addr = netip.MustParseAddrPort("127.0.0.1:9101")
		}
		ln, err := l.host.Listen("tcp", s.addr.String())
		require.NoError(t, err)
		go func() { _ = s.srv.Serve(ln) }()
		l.srvs = append(l.srvs, s.srv)
	}
}

// stop kills the host's servers: connections are refused from now on, as
// when the proxy process dies.
func (l *ctlL7) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.srvs {
		_ = s.Close()
	}
	l.srvs = nil
}

// get makes one request on a new connection and returns the answering host.
func (b *ctlBed) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.vip.String()+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := b.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), nil
}

// spread makes n requests on new connections and counts answers per host.
func (b *ctlBed) spread(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		host, err := b.get(ctx)
		cancel()
		require.NoError(t, err)
		got[host]++
	}
	return got
}

// sourcesOf returns client source ports whose new flows the real program
// (asked through the daemon's API) sends to backend.
func (b *ctlBed) sourcesOf(t *testing.T, backend netip.Addr, n int) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for p := uint16(20000); len(out) < n && p < 30000; p++ {
		src := netip.AddrPortFrom(b.client.Addr4, p)
		ans, err := b.api.Flow(context.Background(), api.FlowQuery{Src: src, VIP: b.key})
		require.NoError(t, err)
		if ans.Backend == backend {
			out = append(out, src)
		}
	}
	require.Len(t, out, n)
	return out
}

// chooses reports whether the data path would send any of srcs to backend.
func (b *ctlBed) chooses(t *testing.T, srcs []netip.AddrPort, backend netip.Addr) bool {
	t.Helper()
	for _, src := range srcs {
		ans, err := b.api.Flow(context.Background(), api.FlowQuery{Src: src, VIP: b.key})
		require.NoError(t, err)
		if ans.Backend == backend {
			return true
		}
	}
	return false
}

func (b *ctlBed) waitState(t *testing.T, backend netip.Addr, want string) {
	t.Helper()
	var last []api.Backend
	require.Eventually(t, func() bool {
		v, err := b.api.GetVIP(context.Background(), b.key)
		if err != nil {
			return false
		}
		last = v.Backends
		for _, be := range v.Backends {
			if be.Addr == backend && be.State == want {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "backend %s never became %s: %+v", backend, want, &last)
}

// backend returns the daemon's view of one backend of the bed's VIP.
func (b *ctlBed) backend(t *testing.T, addr netip.Addr) api.Backend {
	t.Helper()
	v, err := b.api.GetVIP(context.Background(), b.key)
	require.NoError(t, err)
	for _, be := range v.Backends {
		if be.Addr == addr {
			return be
		}
	}
	require.Failf(t, "no such backend", "%s in %+v", addr, v.Backends)
	return api.Backend{}
}

// TestControlPlane runs the real daemon against the real data path in
// namespaces: failover on a dead L7 host, drain, a bad reload, and a
// kill -9 restart during traffic.
func TestControlPlane(t *testing.T) {
	b := newCtlBed(t)
	b.startDaemon(t)
	for _, l := range b.l7 {
		b.waitState(t, l.host.Addr4, api.StateActive)
	}
	got := b.spread(t, 60)
	require.Len(t, got, 3, "every L7 host gets new connections: %v", got)

	t.Run("dead L7 host leaves the table", func(t *testing.T) {
		victim := b.l7[2]
		srcs := b.sourcesOf(t, victim.host.Addr4, 8)
		start := time.Now()
		victim.stop()
		require.Eventually(t, func() bool { return !b.chooses(t, srcs, victim.host.Addr4) },
			60*time.Second, 5*time.Millisecond, "dead host never left the table")
		elapsed := time.Since(start)
		// The ≤ 1 s target is measured over 20 trials by test/bench/control
		// (p50/p99); a functional test reports the time and only waits for
		// the state, so a loaded CI machine cannot make it flake.
		t.Logf("failover: dead host out of the data path after %v (defaults: interval 200ms, timeout 150ms, fall 2)", elapsed)
		got := b.spread(t, 60)
		assert.Zero(t, got[victim.host.Name], "new connections avoid the dead host: %v", got)
		assert.Len(t, got, 2)

		victim.start(t)
		b.waitState(t, victim.host.Addr4, api.StateActive)
	})

	t.Run("drain keeps existing connections and avoids new ones", func(t *testing.T) {
		target := b.l7[0]
		var c net.Conn
		for p := uint16(31000); c == nil; p++ {
			ans, err := b.api.Flow(context.Background(), api.FlowQuery{Src: netip.AddrPortFrom(b.client.Addr4, p), VIP: b.key})
			require.NoError(t, err)
			if ans.Backend != target.host.Addr4 {
				continue
			}
			require.NoError(t, b.client.Do(func() (err error) {
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(b.client.Addr4, p)), Timeout: 3 * time.Second}
				c, err = d.Dial("tcp", netip.AddrPortFrom(b.vip, 80).String())
				return err
			}))
		}
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
		r := bufio.NewReader(c)
		ask := func() string {
			_, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(r, nil)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			resp.Body.Close()
			return string(body)
		}
		require.Equal(t, target.host.Name, ask())

		require.NoError(t, b.api.SetBackendState(context.Background(), b.key, target.host.Addr4, true))
		for range 5 {
			assert.Equal(t, target.host.Name, ask(), "the established connection keeps its host")
		}
		got := b.spread(t, 60)
		assert.Zero(t, got[target.host.Name], "no new connection goes to the drained host: %v", got)
		require.NoError(t, b.api.SetBackendState(context.Background(), b.key, target.host.Addr4, false))
	})

	t.Run("bad reload changes nothing", func(t *testing.T) {
		before, err := b.api.ListVIPs(context.Background())
		require.NoError(t, err)
		good, err := os.ReadFile(b.cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(b.cfg, bytes.Replace(good, []byte("port: 80"), []byte("port: 80000"), 1), 0o600))
		err = b.api.Reload(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "vips[0].port")
		// The same through the CLI an SRE types.
		out, err := exec.Command(b.bin, "reload", "--socket", b.socket).CombinedOutput()
		require.Error(t, err, "xlb reload must fail: %s", out)
		assert.Contains(t, string(out), `vips[0].port: "80000" is not a port`)
		// SIGHUP with the same bad file: logged, nothing changes, the
		// daemon keeps running.
		require.NoError(t, b.daemon.Process.Signal(syscall.SIGHUP))
		time.Sleep(200 * time.Millisecond)
		select {
		case err := <-b.daemonDone:
			t.Fatalf("daemon exited on a bad SIGHUP reload: %v", err)
		default:
		}
		after, err := b.api.ListVIPs(context.Background())
		require.NoError(t, err)
		assert.Equal(t, ctlSummary(before), ctlSummary(after))
		got := b.spread(t, 30)
		assert.Len(t, got, 3, "traffic unaffected: %v", got)
		require.NoError(t, os.WriteFile(b.cfg, good, 0o600))
		require.NoError(t, b.api.Reload(context.Background()))
	})

	t.Run("kill -9 and restart during traffic drops nothing", func(t *testing.T) {
		// An acknowledged change just before the crash must survive it.
		require.NoError(t, b.api.SetBackendWeight(context.Background(), b.key, b.l7[1].host.Addr4, 2))
		before, err := b.api.ListVIPs(context.Background())
		require.NoError(t, err)

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 50000; i++ { // bounded in count and by ctx in time
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
				_, err := b.get(rctx)
				rcancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		b.killDaemon(t)
		downAt := ok.Load()
		time.Sleep(200 * time.Millisecond) // forwarding without any daemon
		b.startDaemon(t)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		<-done
		t.Logf("restart during traffic: %d requests ok, %d failed (%d before the kill)", ok.Load(), failed.Load(), downAt)
		assert.Zero(t, failed.Load(), "first error: %v", firstErr.Load())
		assert.Greater(t, ok.Load(), downAt, "requests were served across the restart")

		st, err := b.api.Status(context.Background())
		require.NoError(t, err)
		assert.True(t, st.Adopted, "the new daemon adopted the pinned data path")
		require.Len(t, st.Interfaces, 1)
		assert.True(t, st.Interfaces[0].Attached, "still attached to eth0: %+v", st.Interfaces[0])
		assert.Equal(t, api.AttachNative, st.Interfaces[0].Mode, "the adopted link's mode is read from the kernel")
		assert.Empty(t, st.LastReconcileError)
		after, err := b.api.ListVIPs(context.Background())
		require.NoError(t, err)
		assert.Equal(t, ctlSummary(before), ctlSummary(after), "same state after the crash")
	})

	t.Run("stats come from the real counters", func(t *testing.T) {
		st, err := b.api.Stats(context.Background())
		require.NoError(t, err)
		require.Len(t, st.VIPs, 1)
		v := st.VIPs[0]
		assert.Positive(t, v.Packets)
		assert.Positive(t, v.NewFlows)
		var toBackends uint64
		for _, be := range v.Backends {
			assert.Positive(t, be.Packets, "every L7 host got traffic: %s", be.Addr)
			toBackends += be.Packets
		}
		// The counters are read one map after the other while the last
		// connections close: allow a few packets between the reads.
		assert.InDelta(t, st.Reasons["xdp_tx"], toBackends, 20, "every forwarded packet is counted for its L7 host")
		assert.Positive(t, st.ConntrackHits)
	})

	t.Run("metrics endpoint", func(t *testing.T) {
		hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: b.lb.Dialer()}}
		resp, err := hc.Get("http://127.0.0.1:9724/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		for _, want := range []string{
			`xlb_l4_vip_packets_total{vip="198.51.100.20:80/tcp"}`,
			`xlb_backend_up{backend="` + b.l7[0].host.Addr4.String() + `",vip="198.51.100.20:80/tcp"} 1`,
			`xlb_l4_conntrack_total{result="hit"}`,
			"xlb_health_check_duration_seconds_bucket",
			"xlb_last_reconcile_timestamp_seconds",
			`xlb_l4_attached{iface="` + topo.HostIfname + `",mode="native"} 1`,
		} {
			assert.Contains(t, string(body), want)
		}
	})
}

// ctlSummary is the operator-visible desired state of a VIP list.
func ctlSummary(vs []api.VIP) []string {
	var out []string
	for _, v := range vs {
		for _, b := range v.Backends {
			out = append(out, fmt.Sprintf("%s %s w=%d drain=%v", v.Key, b.Addr, b.Weight, b.Drain))
		}
	}
	return out
}

// startProxy runs the real `xlb proxy` on an L7 host: client traffic on
// VIP:80, /ready on the host's address, one pool with the test's app server,
// and the given readiness mode ("" for the default). Its pool check is fast
// so that the test does not wait on it. It returns once /ready answers 200,
// with a function that stops the process (also run at cleanup).
func (b *ctlBed) startProxy(t *testing.T, l *ctlL7, readiness string) (stop func()) {
	t.Helper()
	extra := ""
	if readiness != "" {
		extra = "readiness: " + readiness + "\n"
	}
	return runProxy(t, b.bin, b.dir, l, fmt.Sprintf(`listeners:
  - name: http
    addr: "%s:80"
admin:
  addr: "%s:%d"
  socket: %q
routes:
  - name: all
    match:
      path_prefix: /
    pool: app
pools:
  - name: app
    servers:
      - {name: app-1, addr: "127.0.0.1:9101"}
    health:
      active:
        path: /
        interval: 100ms
        timeout: 50ms
        rise: 1
        fall: 1
%s`, b.vip, l.host.Addr4, ctlAdminPort, proxySocket(b.dir, l), extra))
}

// proxySocket is the admin socket of l's `xlb proxy` (what `xlb pool` and
// `xlb proxy reload` talk to with --proxy).
func proxySocket(dir string, l *ctlL7) string { return filepath.Join(dir, l.host.Name+"-proxy.sock") }

// proxyConfig is the config file of l's `xlb proxy`.
func proxyConfig(dir string, l *ctlL7) string { return filepath.Join(dir, l.host.Name+"-proxy.yaml") }

// runProxy writes cfg as l's proxy config and runs `xlb proxy` on l's host
// (its log in dir, shown when the test fails). It returns once the proxy's
// /ready on the host's admin port answers 200, with a function that kills
// the process (SIGKILL; also run at cleanup); l.termProxy stops it with
// SIGTERM instead.
func runProxy(t *testing.T, bin, dir string, l *ctlL7, cfg string) (stop func()) {
	t.Helper()
	require.NoError(t, os.WriteFile(proxyConfig(dir, l), []byte(cfg), 0o600))
	logf, err := os.OpenFile(filepath.Join(dir, l.host.Name+"-proxy.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	cmd := l.host.Command(context.Background(), bin, "proxy", "--config", proxyConfig(dir, l))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); logf.Close(); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { _ = cmd.Process.Kill(); <-done }) }
	l.termProxy = func() error {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		<-done
		return exitErr
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("%s proxy log (tail):\n%s", l.host.Name, tail(out, 60))
		}
	})
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: l.host.Dialer()}}
	url := fmt.Sprintf("http://%s/ready", netip.AddrPortFrom(l.host.Addr4, ctlAdminPort))
	require.Eventually(t, func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "xlb proxy on %s never became ready", l.host.Name)
	return stop
}

// TestControlWithL7Proxy: an L7 host running the real `xlb proxy` stays in
// the table while it can serve, even when one of its pools has no usable
// server: that pool's routes answer 503 with Retry-After on the proxy and
// every other route keeps working, instead of the edge taking the whole host
// (and with it every healthy route) out. With `readiness: all_pools` the old
// strict meaning holds: an empty pool takes the host out, and it comes back
// with its pool.
func TestControlWithL7Proxy(t *testing.T) {
	b := newCtlBed(t, 0)
	b.startDaemon(t)
	proxied := b.l7[0]
	for _, l := range b.l7 {
		b.waitState(t, l.host.Addr4, api.StateActive)
	}
	got := b.spread(t, 60)
	require.Positive(t, got[proxied.host.Name], "requests reach the app through xlb proxy: %v", got)

	// The app server dies; the proxy lives on and says so for that route.
	proxied.stop()
	local := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: proxied.host.Dialer(), DisableKeepAlives: true}}
	var retryAfter string
	require.Eventually(t, func() bool {
		resp, err := local.Get("http://" + b.vip.String() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		retryAfter = resp.Header.Get("Retry-After")
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 30*time.Second, 20*time.Millisecond, "the proxy never answered 503 for its empty pool")
	assert.NotEmpty(t, retryAfter, "503 for an empty pool carries Retry-After")
	emptySince := time.Now()
	// Let the daemon run several checks after that, then look.
	require.Eventually(t, func() bool {
		return b.backend(t, proxied.host.Addr4).LastCheck.After(emptySince.Add(500 * time.Millisecond))
	}, 30*time.Second, 20*time.Millisecond)
	be := b.backend(t, proxied.host.Addr4)
	assert.Equal(t, api.StateActive, be.State, "an empty pool must not take the L7 host out: %+v", be)
	assert.Positive(t, be.TableSlots)

	// The strict mode, on the same host.
	proxied.start(t)
	proxied.stopProxy()
	proxied.stopProxy = b.startProxy(t, proxied, "all_pools")
	b.waitState(t, proxied.host.Addr4, api.StateActive)
	proxied.stop()
	b.waitState(t, proxied.host.Addr4, api.StateDown)
	assert.Contains(t, b.backend(t, proxied.host.Addr4).LastError, "status 503")
	got = b.spread(t, 60)
	assert.Zero(t, got[proxied.host.Name], "readiness all_pools: no new connection goes to an L7 host with an empty pool: %v", got)

	proxied.start(t)
	b.waitState(t, proxied.host.Addr4, api.StateActive)
	got = b.spread(t, 60)
	assert.Positive(t, got[proxied.host.Name], "back in the table: %v", got)
}

// TestControlGracefulStopOfL7Proxy: SIGTERM to an L7 host's real `xlb proxy`
// while a client keeps opening connections to the VIP. The proxy fails
// /ready first and keeps serving for its drain delay (default 1 s); the
// edge daemon, with its default checks, takes the host out within that
// delay; then the proxy stops and exits 0. No request fails: the flows the
// edge still sent during the drain were served, and none was sent after.
func TestControlGracefulStopOfL7Proxy(t *testing.T) {
	b := newCtlBed(t, 0)
	b.startDaemon(t)
	proxied := b.l7[0]
	for _, l := range b.l7 {
		b.waitState(t, l.host.Addr4, api.StateActive)
	}

	var ok, failed, atProxied atomic.Int64
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20000 { // bounded: the loop normally stops long before
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			host, err := b.get(ctx)
			cancel()
			if err != nil {
				failed.Add(1)
				mu.Lock()
				if len(errs) < 5 {
					errs = append(errs, err.Error())
				}
				mu.Unlock()
				continue
			}
			ok.Add(1)
			if host == proxied.host.Name {
				atProxied.Add(1)
			}
		}
	}()
	require.Eventually(t, func() bool { return atProxied.Load() > 10 }, 20*time.Second, 10*time.Millisecond,
		"the proxied host never served")

	exit := make(chan error, 1)
	start := time.Now()
	go func() { exit <- proxied.termProxy() }()
	b.waitState(t, proxied.host.Addr4, api.StateDown)
	t.Logf("edge took the stopping host out %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-exit:
		assert.NoError(t, err, "xlb proxy must exit 0 after SIGTERM")
	case <-time.After(30 * time.Second):
		t.Fatal("xlb proxy did not exit after SIGTERM")
	}
	after := ok.Load()
	require.Eventually(t, func() bool { return ok.Load() > after+50 }, 20*time.Second, 10*time.Millisecond,
		"the other hosts keep serving")
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("requests: ok=%d failed=%d (to the stopped host: %d) errors=%v", ok.Load(), failed.Load(), atProxied.Load(), errs)
	assert.Zero(t, failed.Load(), "errors: %v", errs)
}
