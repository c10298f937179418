// Package control holds the control daemon's benchmarks: failover (a dead
// L7 host until the data path stops choosing it) and reconcile (an API
// change until the new table is live in the kernel). Both run the real
// daemon against the real XDP program's maps (root), with L7 stand-ins on
// loopback addresses. Run them with test/bench/control.sh.
package control

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/daemon"
	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/maglev"
)

const (
	trials  = 20
	vipText = "10.201.0.10:80/tcp"
)

func requireKernel(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to load the XDP program")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		b.Skip("/sys/fs/bpf is not bpffs: run scripts/bpffs.sh")
	}
}

// mode of an L7 stand-in's /ready.
const (
	modeReady int32 = iota
	modeNotReady
	modeHang
)

// host is an L7 stand-in: /ready on addr:port answers per mode; it can be
// killed (connections refused) and revived on the same address.
type host struct {
	addr netip.AddrPort
	mode atomic.Int32
	mu   sync.Mutex
	srv  *http.Server
	hang chan struct{}
}

func (h *host) start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ln, err := net.Listen("tcp", h.addr.String())
	if err != nil {
		return err
	}
	hang := make(chan struct{})
	h.hang = hang
	h.srv = &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch h.mode.Load() {
		case modeReady:
			w.WriteHeader(http.StatusOK)
		case modeNotReady:
			w.WriteHeader(http.StatusServiceUnavailable)
		default: // a wedged host: accepts, never answers
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	})}
	go func() { _ = h.srv.Serve(ln) }()
	return nil
}

func (h *host) kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		close(h.hang)
		_ = h.srv.Close()
		h.srv = nil
	}
}

type bed struct {
	d     *daemon.Daemon
	hosts []*host
	key   api.VIPKey
	dir   string
	stop  func()
}

// newBed starts the daemon with n loopback backends; health settings are
// the defaults unless healthYAML overrides them.
func newBed(b *testing.B, n int, healthYAML string) *bed {
	b.Helper()
	requireKernel(b)
	key, err := api.ParseVIPKey(vipText)
	if err != nil {
		b.Fatal(err)
	}
	var port uint16
	var hosts []*host
	for attempt := 0; ; attempt++ {
		hosts, port, err = startHosts(n)
		if err == nil {
			break
		}
		if attempt > 10 {
			b.Fatalf("start %d loopback hosts: %v", n, err)
		}
	}
	bd := &bed{hosts: hosts, key: key, dir: b.TempDir()}
	rb := make([]byte, 3)
	_, _ = rand.Read(rb)
	pin := "/sys/fs/bpf/xlbb" + hex.EncodeToString(rb)
	var backends strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&backends, "      - address: %s\n", h.addr.Addr())
	}
	cfg := fmt.Sprintf(`interfaces:
  - name: lo
outer_source:
  ipv4: 10.201.0.1
dataplane:
  max_backends: 256
  conntrack_entries: 4096
  # The hosts are loopback addresses, which the FIB has no next hop for,
  # and lo has no MAC: fixed MACs make the program forward, which is what
  # is timed.
  next_hop_mac: "02:00:00:00:00:01"
  src_mac: "02:00:00:00:00:02"
health:
  port: %d
%sapi:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: 10.201.0.10
    port: 80
    protocol: tcp
    backends:
%s`, port, healthYAML, filepath.Join(bd.dir, "xlb.sock"), filepath.Join(bd.dir, "state.json"), pin, backends.String())
	cfgPath := filepath.Join(bd.dir, "xlb.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bd.d, err = daemon.New(context.Background(), daemon.Options{ConfigPath: cfgPath, Log: log, NoAttach: true, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bd.d.Run(ctx)
	}()
	bd.stop = func() {
		cancel()
		<-done
		_ = bd.d.Close()
		for _, h := range hosts {
			h.kill()
		}
		_ = l4.RemovePins(pin)
	}
	b.Cleanup(bd.stop)
	return bd
}

func startHosts(n int) ([]*host, uint16, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	var hosts []*host
	for i := 1; i <= n; i++ {
		h := &host{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i / 250), byte(i%250 + 1)}), port)}
		if err := h.start(); err != nil {
			for _, h := range hosts {
				h.kill()
			}
			return nil, 0, err
		}
		hosts = append(hosts, h)
	}
	return hosts, port, nil
}

// sourcesOf finds k client sources whose new flows the real program sends
// to backend.
func (bd *bed) sourcesOf(b *testing.B, backend netip.Addr, k int) []netip.AddrPort {
	var out []netip.AddrPort
	for i := 0; len(out) < k && i < 100000; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		ans, err := bd.d.Flow(context.Background(), api.FlowQuery{Src: src, VIP: bd.key})
		if err != nil {
			b.Fatal(err)
		}
		if ans.Backend == backend {
			out = append(out, src)
		}
	}
	if len(out) < k {
		b.Fatalf("found only %d sources for %s", len(out), backend)
	}
	return out
}

func (bd *bed) chooses(b *testing.B, srcs []netip.AddrPort, backend netip.Addr) bool {
	for _, src := range srcs {
		ans, err := bd.d.Flow(context.Background(), api.FlowQuery{Src: src, VIP: bd.key})
		if err != nil {
			b.Fatal(err)
		}
		if ans.Backend == backend {
			return true
		}
	}
	return false
}

func (bd *bed) waitActive(b *testing.B, backend netip.Addr) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := bd.d.GetVIP(context.Background(), bd.key)
		if err != nil {
			b.Fatal(err)
		}
		for _, be := range v.Backends {
			if be.Addr == backend && be.State == api.StateActive {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never came back", backend)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkFailover measures, at the default health settings, the time from
// an L7 host's death to the data path no longer choosing it (the real
// program asked for flows that went to that host), over 20 trials per way
// of dying. Target: p99 ≤ 1 s.
func BenchmarkFailover(b *testing.B) {
	cases := []struct {
		name string
		kill func(h *host)
		heal func(h *host) error
	}{
		// The proxy process died: connections are refused at once.
		{"refused", func(h *host) { h.kill() }, func(h *host) error { return h.start() }},
		// The proxy lives but its pools cannot serve: /ready says 503.
		{"not_ready", func(h *host) { h.mode.Store(modeNotReady) }, func(h *host) error { h.mode.Store(modeReady); return nil }},
		// The host is wedged: accepts and never answers (the timeout path).
		{"hang", func(h *host) { h.mode.Store(modeHang) }, func(h *host) error { h.mode.Store(modeReady); return nil }},
	}
	bd := newBed(b, 3, "")
	victim := bd.hosts[2]
	srcs := bd.sourcesOf(b, victim.addr.Addr(), 8)
	b.ResetTimer()
	for range b.N {
		for _, c := range cases {
			var ds []time.Duration
			for range trials {
				bd.waitActive(b, victim.addr.Addr())
				// Active is the health verdict; the reconcile it triggers
				// puts the victim back in the table a moment later.
				back := time.Now().Add(5 * time.Second)
				for !bd.chooses(b, srcs, victim.addr.Addr()) {
					if time.Now().After(back) {
						b.Fatal("victim not in the table before the trial")
					}
					time.Sleep(5 * time.Millisecond)
				}
				start := time.Now()
				c.kill(victim)
				for bd.chooses(b, srcs, victim.addr.Addr()) {
					if time.Since(start) > 10*time.Second {
						b.Fatal("victim never left the table")
					}
					time.Sleep(time.Millisecond)
				}
				ds = append(ds, time.Since(start))
				if err := c.heal(victim); err != nil {
					b.Fatal(err)
				}
			}
			p50, p99 := percentile(ds, 0.5), percentile(ds, 0.99)
			fmt.Printf("controlbench case=failover_%s trials=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f target_p99_ms=1000 ratio_to_target=%.2f\n",
				c.name, trials, ms(p50), ms(p99), ms(slices.Max(ds)), float64(p99)/float64(time.Second))
			b.ReportMetric(ms(p99), c.name+"_p99_ms")
		}
	}
}

// BenchmarkReconcile measures the time from an API change (a weight change
// of one of N=100 backends, through the unix-socket client, as `xlb backend
// weight` does) to the new M=65537 table being live in the kernel: the call
// returns only after the change is persisted (fsync) and the table
// installed. The baseline in the same run is maglev.Build alone.
func BenchmarkReconcile(b *testing.B) {
	const n = 100
	bd := newBed(b, n, "")
	c := api.NewClient(filepath.Join(bd.dir, "xlb.sock"), 10*time.Second)
	ctx := context.Background()
	target := bd.hosts[n/2].addr.Addr()
	srcs := bd.sourcesOf(b, bd.hosts[0].addr.Addr(), 1)
	var total, rebuild, build []time.Duration
	in := make([]maglev.Backend, n)
	for i, h := range bd.hosts {
		in[i] = maglev.Backend{Name: h.addr.Addr().String(), Weight: 1}
	}
	const rounds = 200
	b.ResetTimer()
	for range b.N {
		for i := range rounds {
			w := uint32(1 + (i+1)%2)
			start := time.Now()
			if err := c.SetBackendWeight(ctx, bd.key, target, w); err != nil {
				b.Fatal(err)
			}
			total = append(total, time.Since(start))
			rep := bd.d.LastReport()
			if rep.Rebuilds != 1 {
				b.Fatalf("want exactly one table rebuilt, got %d", rep.Rebuilds)
			}
			rebuild = append(rebuild, rep.VIPs[0].Duration)
			// The table is live: the real program answers from it.
			if _, err := bd.d.Flow(ctx, api.FlowQuery{Src: srcs[0], VIP: bd.key}); err != nil {
				b.Fatal(err)
			}
			in[n/2].Weight = w
			t0 := time.Now()
			if _, err := maglev.Build(in, maglev.DefaultSize); err != nil {
				b.Fatal(err)
			}
			build = append(build, time.Since(t0))
		}
	}
	// Visible: a SYN of a flow that the change moves, run through the live
	// program (BPF_PROG_TEST_RUN, not l4.Lookup, which waits for the
	// install's lock) every 0.2 ms while the change is made. The new table is
	// visible from the swap on, before the install call returns (the kernel
	// then waits for an RCU grace period).
	var visible []time.Duration
	vsrc := bd.sourcesOf(b, target, 1)[0]
	prog := bd.d.Dataplane().Program()
	syn := synFrame(vsrc, netip.AddrPortFrom(bd.key.Addr, bd.key.Port))
	for i := range rounds / 2 {
		drain := i%2 == 0
		seen := make(chan time.Time, 1)
		quit := make(chan struct{})
		go func() {
			for {
				select {
				case <-quit:
					return
				default:
				}
				a, err := forwardedTo(prog, syn)
				if err == nil && (a == target) != drain {
					seen <- time.Now()
					return
				}
				// Leave the cores to the daemon: 0.2 ms resolution.
				time.Sleep(200 * time.Microsecond)
			}
		}()
		start := time.Now()
		if err := c.SetBackendState(ctx, bd.key, target, drain); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-seen:
			visible = append(visible, at.Sub(start))
		case <-time.After(5 * time.Second):
			b.Fatal("the change never became visible")
		}
		close(quit)
	}
	b.StopTimer()
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"api_change_to_live", total}, {"api_change_to_visible", visible}, {"build_and_install", rebuild}, {"maglev_build_baseline", build}} {
		fmt.Printf("controlbench case=reconcile_%s n=%d m=%d rounds=%d p50_ms=%.2f p99_ms=%.2f ratio_p50_to_build=%.2f target_ms=10\n",
			r.name, n, maglev.DefaultSize, len(r.ds), ms(percentile(r.ds, 0.5)), ms(percentile(r.ds, 0.99)),
			float64(percentile(r.ds, 0.5))/float64(percentile(build, 0.5)))
	}
	b.ReportMetric(ms(percentile(total, 0.99)), "p99_ms")
}

// synFrame is a minimal Ethernet/IPv4/TCP SYN from src to dst; the balancer
// does not read checksums.
func synFrame(src, dst netip.AddrPort) []byte {
	f := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	copy(ip[12:16], src.Addr().AsSlice())
	copy(ip[16:20], dst.Addr().AsSlice())
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12], tcp[13] = 5<<4, 0x02 // data offset 5 words, SYN
	return f
}

// forwardedTo runs frame through prog and returns the outer destination of
// the IP-in-IP packet it transmits.
func forwardedTo(prog *ebpf.Program, frame []byte) (netip.Addr, error) {
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+64)}
	verdict, err := prog.Run(opts)
	if err != nil {
		return netip.Addr{}, err
	}
	if verdict != 3 || len(opts.DataOut) < 14+20 { // XDP_TX
		return netip.Addr{}, fmt.Errorf("verdict %d", verdict)
	}
	return netip.AddrFrom4([4]byte(opts.DataOut[14+16 : 14+20])), nil
}
