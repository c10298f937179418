package e2e

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"github.com/xlbproject/xlb/test/topo"
)

// Edge high availability: several edge hosts, each running the real
// `xlb daemon` with XDP and a BGP session to an FRR router that spreads
// the VIP's packets over them (ECMP, L4 hash). Clients reach the VIP
// through the router; the L7 hosts answer them directly.
//
//	client ──► router (FRR: bgpd + zebra, ECMP) ──► lb1 | lb2 | lb3 (xlb daemon, XDP, BGP)
//	   ▲                                                   │ IP-in-IP
//	   └──────────── l7-1 | l7-2 | l7-3 (decap, VIP on lo) ◄┘
//
// All on one bridge; the router is one-armed.
const (
	haRouterASN = 65000
	haEdgeASN   = 65001
	haHold      = 3 * time.Second // the smallest RFC 4271 allows
	haHTTPPort  = 80
	haStreamPrt = 5001
	haStreams   = 200
)

type haLB struct {
	host                  *topo.Host
	dir, cfg, pin, socket string
	log                   string
	api                   *api.Client
	cmd                   *exec.Cmd
	done                  chan error
	exitCode              int
	killed                bool
}

// bgpBed is what the beds of edge hosts speaking BGP share: the
// topology, xlb built in dir, and the one-armed router running FRR.
type bgpBed struct {
	// t is the top-level test: edge hosts live until it ends, whichever
	// subtest added them.
	t      *testing.T
	tp     *topo.Topology
	router *topo.Host
	frr    *topo.FRR
	dir    string
	bin    string
	// hold and keepalive are both sides' BGP timers.
	hold, keepalive time.Duration
}

// newBGPBed skips where FRR is not installed, else builds xlb and starts
// the router.
func newBGPBed(t *testing.T, hold, keepalive time.Duration) bgpBed {
	t.Helper()
	if !topo.FRRAvailable() {
		t.Skip("FRR is not installed (make deps installs Debian's frr)")
	}
	b := bgpBed{t: t, tp: topo.NewT(t, topo.Options{}), dir: t.TempDir(), hold: hold, keepalive: keepalive}
	b.bin = ctlBuild(t, b.dir)
	var err error
	b.router, err = b.tp.AddHost(topo.HostConfig{Name: "router", Router: true, NoOffloads: true})
	require.NoError(t, err)
	b.frr = b.router.StartFRRT(t, topo.FRRConfig{
		ASN: haRouterASN, RouterID: b.router.Addr4, Listen: b.router.Prefix4, PeerASN: haEdgeASN,
		Keepalive: b.keepalive, HoldTime: b.hold,
	})
	return b
}

type haBed struct {
	bgpBed
	client *topo.Host
	lbs    []*haLB
	l7     []*ctlL7
	vip    netip.Addr
	// vip6 is an IPv6 VIP on the same hosts, announced over the same
	// (IPv4) sessions with the hosts' IPv6 addresses as next hops.
	vip6 netip.Addr
	opts haOptions
}

// haOptions shape a haBed; the zero value of a field takes its default.
type haOptions struct {
	// hold is both sides' BGP hold time (keepalive a third of it, ≥ 1s).
	hold time.Duration
	// edges and l7s are how many edge hosts and L7 hosts (default 3, 3).
	edges, l7s int
	// inTable is how many of the L7 hosts, the first ones, the daemons'
	// config file lists as backends (default all); the others can be
	// added at run time.
	inTable int
	// health is extra YAML under the daemons' health: key (indented two
	// spaces), e.g. "  interval: 300ms\n".
	health string
	// proxied L7 hosts serve VIP:80 and /ready with the real `xlb proxy`,
	// which the caller starts; the test's servers then leave VIP:80 and
	// the admin port to it.
	proxied bool
}

func newHABed(t *testing.T, opts haOptions) *haBed {
	t.Helper()
	opts.edges = cmp.Or(opts.edges, 3)
	opts.l7s = cmp.Or(opts.l7s, 3)
	opts.inTable = cmp.Or(opts.inTable, opts.l7s)
	b := &haBed{bgpBed: newBGPBed(t, opts.hold, max(opts.hold/3, time.Second)),
		vip: netip.MustParseAddr("198.51.100.30"), vip6: netip.MustParseAddr("2001:db8:100::30"), opts: opts}
	var err error
	b.client, err = b.tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	require.NoError(t, b.client.AddRoute(netip.PrefixFrom(b.vip, 32), b.router.Addr4))
	require.NoError(t, b.client.AddRoute(netip.PrefixFrom(b.vip6, 128), b.router.Addr6))
	require.NoError(t, b.client.AddNeigh(b.router.Addr4, b.router.MAC))
	require.NoError(t, b.client.AddNeigh(b.router.Addr6, b.router.MAC))
	for range opts.edges {
		b.addLB(t)
	}
	for i := 1; i <= opts.l7s; i++ {
		l := addCtlL7(t, b.tp, fmt.Sprintf("l7-%d", i), opts.proxied, b.vip, b.vip6)
		h := l.host
		for _, vip := range []netip.Addr{b.vip, b.vip6} {
			ln, err := h.Listen("tcp", netip.AddrPortFrom(vip, haStreamPrt).String())
			require.NoError(t, err)
			serve(t, ln, h.Name)
		}
		// The IPv6 backends' /ready, on the host's IPv6 address.
		ln, err := h.Listen("tcp", netip.AddrPortFrom(h.Addr6, ctlAdminPort).String())
		require.NoError(t, err)
		ready := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "ready")
		})}
		go func() { _ = ready.Serve(ln) }()
		t.Cleanup(func() { _ = ready.Close() })
		require.NoError(t, h.AddNeigh(b.client.Addr4, b.client.MAC))
		require.NoError(t, h.AddNeigh(b.client.Addr6, b.client.MAC))
		b.l7 = append(b.l7, l)
	}
	for _, lb := range b.lbs {
		b.wire(t, lb)
	}
	return b
}

// addLB makes an edge host namespace and its daemon's files; startLB runs
// the daemon.
func (b *haBed) addLB(t *testing.T) *haLB {
	t.Helper()
	lb := b.newLB(t, fmt.Sprintf("lb%d", len(b.lbs)+1))
	b.lbs = append(b.lbs, lb)
	return lb
}

// newLB makes the edge host namespace name and its daemon's files. When
// the top-level test ends the daemon is killed and its pins removed, and
// the tail of its log shown if the test failed.
func (b *bgpBed) newLB(t *testing.T, name string) *haLB {
	t.Helper()
	h, err := b.tp.AddHost(topo.HostConfig{Name: name, MTU: topo.BridgeMTU, PeerXDPPass: true, Router: true})
	require.NoError(t, err)
	lb := &haLB{host: h, dir: filepath.Join(b.dir, name), pin: "/sys/fs/bpf/" + b.tp.NetNSName(name)}
	require.NoError(t, os.MkdirAll(lb.dir, 0o700))
	lb.socket = filepath.Join(lb.dir, "xlb.sock")
	lb.cfg = filepath.Join(lb.dir, "xlb.yaml")
	lb.log = filepath.Join(lb.dir, "daemon.log")
	lb.api = api.NewClient(lb.socket, 10*time.Second)
	top := b.t
	top.Cleanup(func() {
		b.stopLB(top, lb, syscall.SIGKILL)
		assert.NoError(top, l4.RemovePins(lb.pin))
		if top.Failed() {
			if out, err := os.ReadFile(lb.log); err == nil {
				top.Logf("%s daemon log (tail):\n%s", name, tail(out, 40))
			}
		}
	})
	return lb
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// wire writes lb's config and static neighbours (the test measures BGP
// and the data path, not ARP).
func (b *haBed) wire(t *testing.T, lb *haLB) {
	t.Helper()
	require.NoError(t, b.router.AddNeigh(lb.host.Addr4, lb.host.MAC))
	require.NoError(t, b.router.AddNeigh(lb.host.Addr6, lb.host.MAC))
	require.NoError(t, lb.host.AddNeigh(b.router.Addr4, b.router.MAC))
	var backends, backends6 strings.Builder
	for i, l := range b.l7 {
		require.NoError(t, lb.host.AddNeigh(l.host.Addr4, l.host.MAC))
		require.NoError(t, lb.host.AddNeigh(l.host.Addr6, l.host.MAC))
		require.NoError(t, l.host.AddNeigh(lb.host.Addr4, lb.host.MAC))
		if i >= b.opts.inTable {
			continue
		}
		fmt.Fprintf(&backends, "      - address: %s\n", l.host.Addr4)
		fmt.Fprintf(&backends6, "      - address: %s\n", l.host.Addr6)
	}
	var vips strings.Builder
	for _, port := range []int{haHTTPPort, haStreamPrt} {
		fmt.Fprintf(&vips, "  - address: %s\n    port: %d\n    protocol: tcp\n    backends:\n%s", b.vip, port, backends.String())
	}
	fmt.Fprintf(&vips, "  - address: %s\n    port: %d\n    protocol: tcp\n    backends:\n%s", b.vip6, haStreamPrt, backends6.String())
	cfg := fmt.Sprintf(`interfaces:
  - name: eth0
    mode: native
outer_source:
  ipv4: %s
  ipv6: %s
dataplane:
  max_vips: 8
  max_backends: 64
  conntrack_entries: 65536
health:
  port: %d
%sapi:
  socket: %s
metrics:
  listen: 127.0.0.1:9724
state:
  path: %s
bpf:
  pin_path: %s
vips:
%sbgp:
  asn: %d
  shutdown_drain: 1s
  restart_time: 30s
  peers:
    - address: %s
      asn: %d
      hold_time: %s
      keepalive: %s
`, lb.host.Addr4, lb.host.Addr6, ctlAdminPort, b.opts.health, lb.socket, filepath.Join(lb.dir, "state.json"), lb.pin, vips.String(),
		haEdgeASN, b.router.Addr4, haRouterASN, b.hold, b.keepalive)
	require.NoError(t, os.WriteFile(lb.cfg, []byte(cfg), 0o600))
}

// startLB runs `xlb daemon` in lb's namespace and waits for its API.
func (b *bgpBed) startLB(t *testing.T, lb *haLB) {
	t.Helper()
	lb.cmd, lb.done = startLogged(t, lb.host, lb.log, lb.host.Name+" daemon", 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := lb.api.Status(ctx)
		return err == nil
	}, b.bin, "daemon", "--config", lb.cfg)
}

// startLogged runs argv in host, its output appended to the file log, and
// waits up to timeout for ready; it fails the test, with the log, if the
// process exits first. The returned channel has the process's Wait error.
func startLogged(t *testing.T, host *topo.Host, log, what string, timeout time.Duration, ready func() bool, argv ...string) (*exec.Cmd, chan error) {
	t.Helper()
	logf, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	defer logf.Close()
	cmd := host.Command(context.Background(), argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool {
		select {
		case werr := <-done:
			done <- werr
			return true
		default:
		}
		return ready()
	}, timeout, 20*time.Millisecond, "%s never came up", what)
	select {
	case werr := <-done:
		out, _ := os.ReadFile(log)
		t.Fatalf("%s exited (%v):\n%s", what, werr, out)
	default:
	}
	return cmd, done
}

// loseLB takes lb off the network the hard way: its cable first, then
// its daemon (SIGKILL), so that the router hears nothing more from it and
// must notice by the hold timer. It waits until the router has stopped
// using lb and uses the live edge hosts, and returns how long the router
// took.
func (b *haBed) loseLB(t *testing.T, lb *haLB) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, lb.host.Unplug())
	b.stopLB(t, lb, syscall.SIGKILL)
	lb.killed = true
	var gone time.Duration
	require.Eventually(t, func() bool {
		if b.uses(t, lb) {
			return false
		}
		gone = time.Since(start)
		return true
	}, 30*time.Second, 5*time.Millisecond, "the router kept using the lost edge host %s", lb.host.Name)
	b.waitRouterUses(t, b.live())
	return gone
}

// stopLB signals lb's daemon and waits for it to exit.
func (b *bgpBed) stopLB(t *testing.T, lb *haLB, sig syscall.Signal) {
	t.Helper()
	if lb.cmd == nil {
		return
	}
	_ = lb.cmd.Process.Signal(sig)
	select {
	case err := <-lb.done:
		lb.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			lb.exitCode = ee.ExitCode()
		}
	case <-time.After(30 * time.Second):
		_ = lb.cmd.Process.Kill()
		<-lb.done
		t.Errorf("%s daemon did not stop on %v", lb.host.Name, sig)
	}
	lb.cmd = nil
}

// waitAnnounced waits until lb's BGP session is up and it announces both
// VIPs.
func (b *haBed) waitAnnounced(t *testing.T, lb *haLB) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := lb.api.Status(context.Background())
		return err == nil && st.BGP != nil && len(st.BGP.Peers) == 1 && st.BGP.Peers[0].Up && len(st.BGP.Announced) == 2
	}, 30*time.Second, 20*time.Millisecond, "%s: session back and both VIPs announced", lb.host.Name)
}

// nextHops are the edge hosts the router sends the IPv4 VIP's packets to.
func (b *haBed) nextHops(t *testing.T) []netip.Addr { return b.nextHopsOf(t, b.vip) }

func (b *haBed) nextHopsOf(t *testing.T, vip netip.Addr) []netip.Addr {
	t.Helper()
	hops, err := b.frr.NextHops(netip.PrefixFrom(vip, vip.BitLen()))
	require.NoError(t, err)
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops
}

func (b *haBed) uses(t *testing.T, lb *haLB) bool {
	return slices.Contains(b.nextHops(t), lb.host.Addr4)
}

func (b *haBed) live() []*haLB {
	var out []*haLB
	for _, lb := range b.lbs {
		if !lb.killed {
			out = append(out, lb)
		}
	}
	return out
}

// waitRouterUses waits until the router spreads the VIP over exactly the
// live edge hosts.
func (b *haBed) waitRouterUses(t *testing.T, lbs []*haLB) {
	t.Helper()
	var want []netip.Addr
	for _, lb := range lbs {
		want = append(want, lb.host.Addr4)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	var got []netip.Addr
	require.Eventually(t, func() bool {
		got = b.nextHops(t)
		return slices.Equal(got, want)
	}, 30*time.Second, 20*time.Millisecond, "router next hops %v, want %v", &got, want)
}

// vipStats are one edge host's counters of the IPv4 VIP on port.
func vipStats(t *testing.T, lb *haLB, port uint16) api.VIPStats {
	return vipStatsOf(t, lb, netip.MustParseAddr("198.51.100.30"), port)
}

func vipStatsOf(t *testing.T, lb *haLB, vip netip.Addr, port uint16) api.VIPStats {
	t.Helper()
	st, err := lb.api.Stats(context.Background())
	require.NoError(t, err)
	for _, v := range st.VIPs {
		if v.Key.Addr == vip && v.Key.Port == port {
			return v
		}
	}
	require.Failf(t, "no such vip", "port %d on %s", port, lb.host.Name)
	return api.VIPStats{}
}

// streams are long-lived connections through the VIP, each moving data in
// rounds; a connection that errs, times out or is answered by another L7
// host than its first is broken.
type streams struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	rounds atomic.Int64
	broken atomic.Int64
	mu     sync.Mutex
	errs   []string
	hosts  map[string]int
}

// streamConn is one long-lived connection: round moves its next piece of
// data, within a bound of its own, and names the L7 host that answered.
type streamConn interface {
	round(seq int) (host string, err error)
	Close() error
}

// openStreams opens n connections with open and runs a round on each
// every pause until finish; it returns once every connection has made its
// first round (or failed).
func openStreams(t *testing.T, n int, pause time.Duration, open func(ctx context.Context, i int) (streamConn, error)) *streams {
	t.Helper()
	s := &streams{stop: make(chan struct{}), hosts: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ready := sync.WaitGroup{}
	for i := range n {
		c, err := open(ctx, i)
		if err != nil {
			close(s.stop)
			s.wg.Wait()
			require.NoError(t, err, "stream %d", i)
		}
		ready.Add(1)
		s.wg.Add(1)
		go s.run(c, i, pause, &ready)
	}
	ready.Wait()
	return s
}

// startStreams opens n connections to the stream port, each sending a
// line every 100 ms and reading its echo (serve's line protocol).
func (b *haBed) startStreams(t *testing.T, n int) *streams {
	t.Helper()
	return openStreams(t, n, 100*time.Millisecond, func(ctx context.Context, i int) (streamConn, error) {
		c, err := b.client.DialContext(ctx, "tcp", netip.AddrPortFrom(b.vip, haStreamPrt).String())
		if err != nil {
			return nil, err
		}
		return &echoStream{Conn: c, r: bufio.NewReader(c), i: i}, nil
	})
}

// echoStream is a connection to serve's line protocol.
type echoStream struct {
	net.Conn
	r *bufio.Reader
	i int
}

func (e *echoStream) round(seq int) (string, error) {
	msg := fmt.Sprintf("s%d-%d-%s", e.i, seq, strings.Repeat("p", 200))
	// Bounded: an answer later than this is a broken connection (TCP
	// would have retried through any re-route long before).
	_ = e.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(e, "%s\n", msg); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	line, err := e.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[2] != msg {
		return "", fmt.Errorf("answer %q", line)
	}
	return f[0], nil
}

func (s *streams) fail(i int, format string, args ...any) {
	s.broken.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, fmt.Sprintf("stream %d: ", i)+fmt.Sprintf(format, args...))
	}
}

func (s *streams) run(c streamConn, i int, pause time.Duration, ready *sync.WaitGroup) {
	defer s.wg.Done()
	defer c.Close()
	first := ""
	once := sync.OnceFunc(ready.Done)
	defer once()
	last := time.Now()
	for seq := 0; ; seq++ {
		host, err := c.round(seq)
		if err != nil {
			s.fail(i, "%v (L7 host %s, last answer %v before)", err, first, time.Since(last).Round(time.Millisecond))
			return
		}
		last = time.Now()
		if first == "" {
			first = host
			s.mu.Lock()
			s.hosts[first]++
			s.mu.Unlock()
			once()
		} else if host != first {
			s.fail(i, "answered by %s, then by %s", first, host)
			return
		}
		s.rounds.Add(1)
		select {
		case <-s.stop:
			return
		case <-time.After(pause):
		}
	}
}

// finish stops the streams and returns the broken count.
func (s *streams) finish(t *testing.T) int64 {
	t.Helper()
	close(s.stop)
	s.wg.Wait()
	for _, e := range s.errs {
		t.Log(e)
	}
	return s.broken.Load()
}

// hostCounts is how many streams each L7 host answered first.
func (s *streams) hostCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.hosts)
}

// roundsDuring is how many round trips the streams made in d.
func (s *streams) roundsDuring(d time.Duration) int64 {
	before := s.rounds.Load()
	time.Sleep(d)
	return s.rounds.Load() - before
}

func TestEdgeHA(t *testing.T) {
	b := newHABed(t, haOptions{hold: haHold})
	for _, lb := range b.lbs {
		b.startLB(t, lb)
	}
	b.waitRouterUses(t, b.lbs)
	st, err := b.lbs[0].api.Status(context.Background())
	require.NoError(t, err)
	require.NotNil(t, st.BGP)
	t.Logf("lb1 bgp: peers %+v, announced %v", st.BGP.Peers, st.BGP.Announced)

	t.Run("1 new flows spread over every edge host and every L7 host", func(t *testing.T) {
		before := map[*haLB]uint64{}
		for _, lb := range b.lbs {
			before[lb] = vipStats(t, lb, haHTTPPort).NewFlows
		}
		httpc := newHTTPClient(b.client)
		answers := map[string]int{}
		const n = 300
		for range n {
			host, err := httpGet(httpc, b.vip)
			require.NoError(t, err)
			answers[host]++
		}
		perLB := map[string]uint64{}
		var total uint64
		for _, lb := range b.lbs {
			d := vipStats(t, lb, haHTTPPort).NewFlows - before[lb]
			perLB[lb.host.Name] = d
			total += d
		}
		t.Logf("%d new connections: new flows per edge host %v; answers per L7 host %v", n, perLB, answers)
		for _, lb := range b.lbs {
			assert.Positive(t, perLB[lb.host.Name], "edge host %s took new flows", lb.host.Name)
		}
		for _, l := range b.l7 {
			assert.Positive(t, answers[l.host.Name], "L7 host %s answered", l.host.Name)
		}
		assert.Equal(t, n, answers[b.l7[0].host.Name]+answers[b.l7[1].host.Name]+answers[b.l7[2].host.Name])
		assert.GreaterOrEqual(t, total, uint64(n), "every connection was a new flow on some edge host")
	})

	t.Run("1 ipv6: new flows spread over every edge host and every L7 host", func(t *testing.T) {
		var want []netip.Addr
		for _, lb := range b.lbs {
			want = append(want, lb.host.Addr6)
		}
		slices.SortFunc(want, netip.Addr.Compare)
		var got []netip.Addr
		require.Eventually(t, func() bool {
			got = b.nextHopsOf(t, b.vip6)
			return slices.Equal(got, want)
		}, 30*time.Second, 20*time.Millisecond, "router's IPv6 next hops %v, want %v", &got, want)
		before := map[*haLB]uint64{}
		for _, lb := range b.lbs {
			before[lb] = vipStatsOf(t, lb, b.vip6, haStreamPrt).NewFlows
		}
		answers := map[string]int{}
		const n = 150
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := b.client.DialContext(ctx, "tcp", netip.AddrPortFrom(b.vip6, haStreamPrt).String())
			cancel()
			require.NoError(t, err)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = fmt.Fprintf(c, "q%d\n", i)
			require.NoError(t, err)
			line, err := bufio.NewReader(c).ReadString('\n')
			require.NoError(t, err)
			_ = c.Close()
			answers[strings.Fields(line)[0]]++
		}
		perLB := map[string]uint64{}
		for _, lb := range b.lbs {
			perLB[lb.host.Name] = vipStatsOf(t, lb, b.vip6, haStreamPrt).NewFlows - before[lb]
		}
		t.Logf("ipv6: router next hops %v; %d new connections: new flows per edge host %v; answers per L7 host %v", got, n, perLB, answers)
		for _, lb := range b.lbs {
			assert.Positive(t, perLB[lb.host.Name], "edge host %s took new IPv6 flows", lb.host.Name)
		}
		for _, l := range b.l7 {
			assert.Positive(t, answers[l.host.Name], "L7 host %s answered over IPv6", l.host.Name)
		}
	})

	t.Run("3 rolling restart of every edge daemon under load: no withdrawal, nothing broken", func(t *testing.T) {
		s := b.startStreams(t, haStreams)
		var fewest atomic.Int64
		fewest.Store(int64(len(b.lbs)))
		watch, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			for {
				hops, err := b.frr.NextHops(netip.PrefixFrom(b.vip, 32))
				if err == nil && int64(len(hops)) < fewest.Load() {
					fewest.Store(int64(len(hops)))
				}
				select {
				case <-watch:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		for _, lb := range b.lbs {
			b.stopLB(t, lb, syscall.SIGUSR2)
			assert.Equal(t, 75, lb.exitCode, "%s: SIGUSR2 exits 75 (restart)", lb.host.Name)
			b.startLB(t, lb)
			b.waitAnnounced(t, lb)
			st, err := lb.api.Status(context.Background())
			require.NoError(t, err)
			assert.True(t, st.Adopted, "%s adopted its pinned data path", lb.host.Name)
		}
		moved := s.roundsDuring(time.Second)
		close(watch)
		<-watched
		broken := s.finish(t)
		t.Logf("rolling restart of %d daemons: %d streams, %d round trips, %d broken; fewest next hops seen at the router: %d",
			len(b.lbs), haStreams, s.rounds.Load(), broken, fewest.Load())
		assert.Zero(t, broken)
		assert.Positive(t, moved, "streams still flowing after the restarts")
		assert.Equal(t, int64(len(b.lbs)), fewest.Load(), "the router never stopped using a restarting host")
	})

	t.Run("4 a fourth edge host under load announces only once in sync", func(t *testing.T) {
		s := b.startStreams(t, haStreams)
		lb := b.addLB(t)
		b.wire(t, lb)
		require.False(t, b.uses(t, lb))
		b.startLB(t, lb)
		b.waitRouterUses(t, b.lbs)
		st, err := lb.api.Status(context.Background())
		require.NoError(t, err)
		assert.False(t, st.LastReconcile.IsZero(), "reconciled before the router used it")
		// Identical tables: the new host picks what the others pick.
		key := api.VIPKey{Addr: b.vip, Port: haStreamPrt, Proto: api.ProtoTCP}
		same := 0
		for p := range 100 {
			q := api.FlowQuery{Src: netip.AddrPortFrom(b.client.Addr4, uint16(40000+p)), VIP: key}
			a1, err := b.lbs[0].api.Flow(context.Background(), q)
			require.NoError(t, err)
			a4, err := lb.api.Flow(context.Background(), q)
			require.NoError(t, err)
			if a1.Backend == a4.Backend && a4.Via == api.ViaMaglev {
				same++
			}
		}
		assert.Equal(t, 100, same, "the new edge host's table matches lb1's")
		moved := s.roundsDuring(time.Second)
		got := vipStats(t, lb, haStreamPrt).Packets
		broken := s.finish(t)
		t.Logf("fourth edge host: %d streams, %d round trips, %d broken; packets of the streams it took: %d; table agreement %d/100",
			haStreams, s.rounds.Load(), broken, got, same)
		assert.Zero(t, broken)
		assert.Positive(t, moved)
		assert.Positive(t, got, "the router sends the new host a share of the flows")
	})

	t.Run("2 an edge host dies under load: the router withdraws it, nothing broken", func(t *testing.T) {
		s := b.startStreams(t, haStreams)
		victim := b.lbs[1]
		s.roundsDuring(500 * time.Millisecond)
		before := vipStats(t, victim, haStreamPrt).Packets
		s.roundsDuring(500 * time.Millisecond)
		share := vipStats(t, victim, haStreamPrt).Packets - before
		require.Positive(t, share, "the victim carries streams")
		gone := b.loseLB(t, victim)
		moved := s.roundsDuring(2 * time.Second)
		broken := s.finish(t)
		t.Logf("edge host %s killed (hold time %v): router stopped using it after %v; %d streams (%d packets/0.5 s on the victim before), %d round trips after, %d broken",
			victim.host.Name, b.hold, gone.Round(time.Millisecond), haStreams, share, moved, broken)
		assert.Zero(t, broken, "flows moved to the surviving hosts pick the same L7 host")
		assert.Positive(t, moved)
	})

	t.Run("an edge host stopped under load withdraws before its session closes, nothing broken", func(t *testing.T) {
		testEdgeStop(t, b)
	})
}

// newHTTPClient makes every request on a new connection (a new flow)
// from h.
// A stopped edge host (SIGTERM) withdraws first and keeps forwarding
// through the drain: the router moves its flows while the session is
// still up, and nothing breaks.
func testEdgeStop(t *testing.T, b *haBed) {
	s := b.startStreams(t, haStreams)
	victim := b.live()[len(b.live())-1]
	sessions, err := b.frr.Established()
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, victim.cmd.Process.Signal(syscall.SIGTERM))
	var withdrawn time.Duration
	upAtWithdrawal := 0
	require.Eventually(t, func() bool {
		if b.uses(t, victim) {
			return false
		}
		withdrawn = time.Since(start)
		upAtWithdrawal, err = b.frr.Established()
		require.NoError(t, err)
		return true
	}, 30*time.Second, 2*time.Millisecond, "the router kept using the stopping host")
	b.stopLB(t, victim, syscall.SIGTERM)
	stopped := time.Since(start)
	victim.killed = true
	moved := s.roundsDuring(time.Second)
	broken := s.finish(t)
	t.Logf("edge host %s stopped (SIGTERM, drain 1s): withdrawn after %v with %d of %d sessions still up; daemon gone after %v; %d streams, %d round trips after, %d broken",
		victim.host.Name, withdrawn.Round(time.Millisecond), upAtWithdrawal, sessions, stopped.Round(time.Millisecond), haStreams, moved, broken)
	assert.Equal(t, sessions, upAtWithdrawal, "the route went before the session")
	assert.Zero(t, victim.exitCode, "SIGTERM exits 0")
	assert.Zero(t, broken)
	assert.Positive(t, moved)
}

func newHTTPClient(h *topo.Host) *http.Client {
	return &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: h.Dialer(), DisableKeepAlives: true}}
}

// httpGet asks the VIP and returns the answering L7 host.
func httpGet(c *http.Client, vip netip.Addr) (string, error) {
	resp, err := c.Get("http://" + vip.String() + "/")
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
