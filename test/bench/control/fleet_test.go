package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/daemon"
	"github.com/xlbproject/xlb/internal/etcdstore/etcdtest"
	"github.com/xlbproject/xlb/l4"
)

// edge is one LB host of the propagation benchmark: a daemon with its own
// pinned data path, and its API socket's client.
type edge struct {
	d *daemon.Daemon
	c *api.Client
}

// startEdge runs a daemon whose desired state is in the state file
// (endpoint "") or in the etcd at endpoint. Two VIPs: A (10.201.0.10:80)
// on the first three hosts, B (10.201.0.20:80) on the fourth, so that the
// fourth host's health is known before it is added to A: the benchmark
// measures the change's way to the kernels, not a health check's rise.
func startEdge(b *testing.B, hosts []*host, endpoint string) *edge {
	b.Helper()
	dir := b.TempDir()
	rb := make([]byte, 3)
	_, _ = rand.Read(rb)
	pin := "/sys/fs/bpf/xlbp" + hex.EncodeToString(rb)
	store := ""
	if endpoint != "" {
		store = fmt.Sprintf("  store: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: /xlbbench/edge/\n", endpoint)
	}
	var a strings.Builder
	for _, h := range hosts[:3] {
		fmt.Fprintf(&a, "      - address: %s\n", h.addr.Addr())
	}
	cfg := fmt.Sprintf(`interfaces:
  - name: lo
outer_source:
  ipv4: 10.201.0.1
dataplane:
  max_backends: 64
  conntrack_entries: 4096
health:
  port: %d
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
%sbpf:
  pin_path: %s
vips:
  - address: 10.201.0.10
    port: 80
    protocol: tcp
    backends:
%s  - address: 10.201.0.20
    port: 80
    protocol: tcp
    backends:
      - address: %s
`, hosts[0].addr.Port(), filepath.Join(dir, "xlb.sock"), filepath.Join(dir, "state.json"), store, pin, a.String(), hosts[3].addr.Addr())
	path := filepath.Join(dir, "xlb.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := daemon.New(context.Background(), daemon.Options{ConfigPath: path, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NoAttach: true, Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = d.Close()
		_ = l4.RemovePins(pin)
	})
	return &edge{d: d, c: api.NewClient(filepath.Join(dir, "xlb.sock"), 10*time.Second)}
}

// BenchmarkPropagation measures `xlb backend add` (through one daemon's
// API socket) until the new backend is live in the kernel of the last of
// N=3 LB hosts sharing one etcd: a SYN of a flow that the new backend
// takes is looked up in each host's real program (the daemon's flow API:
// l4.Lookup, BPF_PROG_TEST_RUN of the program's dry-run twin) until all
// three choose it. The same change on a single host with the
// state file (fsync, then install) is the baseline, in alternating trials
// of the same run. Each trial removes the backend again and waits until no
// host chooses it. Target: p99 ≤ 50 ms.
func BenchmarkPropagation(b *testing.B) {
	requireKernel(b)
	const trials = 40
	var hosts []*host
	var port uint16
	var err error
	for attempt := 0; ; attempt++ {
		if hosts, port, err = startHosts(4); err == nil {
			break
		}
		if attempt > 10 {
			b.Fatal(err)
		}
	}
	_ = port
	b.Cleanup(func() {
		for _, h := range hosts {
			h.kill()
		}
	})
	cluster := etcdtest.Start(b)
	var fleet []*edge
	for range 3 {
		fleet = append(fleet, startEdge(b, hosts, cluster.Endpoint(0)))
	}
	single := startEdge(b, hosts, "")
	key, err := api.ParseVIPKey(vipText)
	if err != nil {
		b.Fatal(err)
	}
	newcomer := hosts[3].addr.Addr()
	// The backend must be up before a trial, on every host (its health is
	// checked for VIP B already).
	ctx := api.WithForce(context.Background())
	waitUp := func(e *edge) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := e.d.GetVIP(ctx, api.VIPKey{Addr: netip.MustParseAddr("10.201.0.20"), Port: 80, Proto: api.ProtoTCP})
			if err == nil && v.Backends[0].Healthy {
				return
			}
			if time.Now().After(deadline) {
				b.Fatal("the fourth host never came up")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, e := range append(fleet, single) {
		waitUp(e)
	}
	// A flow that the new backend takes once added (equal tables on every
	// host choose the same one): found by adding it once.
	if err := single.c.AddBackend(ctx, key, api.BackendSpec{Addr: newcomer}); err != nil {
		b.Fatal(err)
	}
	// The real program (l4.Lookup runs its dry-run twin through
	// BPF_PROG_TEST_RUN) asked where a new flow from src goes.
	to := func(e *edge, src netip.AddrPort) netip.Addr {
		ans, err := e.d.Flow(context.Background(), api.FlowQuery{Src: src, VIP: key})
		if err != nil {
			b.Fatal(err)
		}
		return ans.Backend
	}
	var src netip.AddrPort
	for i := 0; i < 100000 && !src.IsValid(); i++ {
		s := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		if to(single, s) == newcomer {
			src = s
		}
	}
	if !src.IsValid() {
		b.Fatal("no flow goes to the new backend")
	}
	if err := single.c.DeleteBackend(ctx, key, newcomer); err != nil {
		b.Fatal(err)
	}
	// until polls every host's program until each forwards syn to the
	// newcomer (want) or elsewhere, and returns when the last one does.
	until := func(es []*edge, want bool, start time.Time) time.Duration {
		pending := append([]*edge(nil), es...)
		for len(pending) > 0 {
			if time.Since(start) > 10*time.Second {
				b.Fatal("the change never reached every host")
			}
			left := pending[:0]
			for _, e := range pending {
				if (to(e, src) == newcomer) != want {
					left = append(left, e)
				}
			}
			pending = left
			if len(pending) > 0 {
				time.Sleep(200 * time.Microsecond)
			}
		}
		return time.Since(start)
	}
	var etcdAdd, etcdDel, fileAdd, fileDel []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range trials {
			type side struct {
				via      *api.Client
				hosts    []*edge
				add, del *[]time.Duration
			}
			sides := []side{{fleet[i%3].c, fleet, &etcdAdd, &etcdDel}, {single.c, []*edge{single}, &fileAdd, &fileDel}}
			if i%2 == 1 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			for _, s := range sides {
				start := time.Now()
				if err := s.via.AddBackend(ctx, key, api.BackendSpec{Addr: newcomer}); err != nil {
					b.Fatal(err)
				}
				*s.add = append(*s.add, until(s.hosts, true, start))
				start = time.Now()
				if err := s.via.DeleteBackend(ctx, key, newcomer); err != nil {
					b.Fatal(err)
				}
				*s.del = append(*s.del, until(s.hosts, false, start))
			}
		}
	}
	b.StopTimer()
	base := percentile(fileAdd, 0.5)
	for _, r := range []struct {
		name string
		n    int
		ds   []time.Duration
	}{{"etcd_add_to_last_kernel", 3, etcdAdd}, {"etcd_delete_to_last_kernel", 3, etcdDel},
		{"file_add_to_kernel", 1, fileAdd}, {"file_delete_to_kernel", 1, fileDel}} {
		fmt.Printf("controlbench case=propagation_%s hosts=%d trials=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f ratio_p50_to_file_add=%.2f target_p99_ms=50\n",
			r.name, r.n, len(r.ds), ms(percentile(r.ds, 0.5)), ms(percentile(r.ds, 0.99)), ms(slicesMax(r.ds)),
			float64(percentile(r.ds, 0.5))/float64(base))
	}
	b.ReportMetric(ms(percentile(etcdAdd, 0.99)), "etcd_add_p99_ms")
}

func slicesMax(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
