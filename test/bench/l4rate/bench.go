package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/maglev"
	"github.com/xlbproject/xlb/test/bench/benchxdp"
	"github.com/xlbproject/xlb/test/topo"
)

// The addresses of the measurement. Everything lives in the topology's
// namespaces:
//
//	ns gen: d0 10.77.0.1/30, generator (live frames out of d0) and the
//	        counting sink on d0
//	ns lb:  d0 10.77.0.2/30, the forwarder under test on d0 (native XDP);
//	        backends 10.78.0.0/24 routed via 10.77.0.1
//
// Whatever the forwarder sends out of lb's d0 arrives at gen's d0, where
// the sink counts it by destination.
var (
	genAddr    = netip.MustParsePrefix("10.77.0.1/30")
	lbAddr     = netip.MustParsePrefix("10.77.0.2/30")
	backendNet = netip.MustParsePrefix("10.78.0.0/24")
	clientAddr = netip.MustParseAddr("198.51.100.1")
	vipAddr    = netip.MustParseAddr("203.0.113.10")
)

const (
	vipPort  = 80
	basePort = 10000
	ifname   = "d0"
)

// kind is a forwarder on the lb side of the wire.
type kind string

const (
	bounce   kind = "bounce"   // MAC swap, XDP_TX
	xlb      kind = "xlb"      // the l4 balancer, XDP_TX of IP-in-IP, next hop from the FIB
	xlbMAC   kind = "xlb-mac"  // the same with a configured next-hop MAC (no FIB lookup)
	nftables kind = "nftables" // XDP_PASS into the kernel: nft DNAT + masquerade
)

// class is what the sink must see for a frame the kind forwarded.
func (k kind) class() benchxdp.Class {
	switch k {
	case xlb, xlbMAC:
		return benchxdp.Tunnel
	case nftables:
		return benchxdp.Backend
	}
	return benchxdp.Other
}

func parseKinds(s string) ([]kind, error) {
	var out []kind
	for _, f := range strings.Split(s, ",") {
		k := kind(strings.TrimSpace(f))
		switch k {
		case bounce, xlb, xlbMAC, nftables:
			out = append(out, k)
		default:
			return nil, fmt.Errorf("unknown case %q (want bounce, xlb, xlb-mac, nftables)", f)
		}
	}
	return out, nil
}

type benchConfig struct {
	Flows    int // distinct 5-tuples, a power of two
	Backends int // L7 hosts behind the VIP
	// NFT turns the nftables balancer on (it needs the nft tool).
	NFT bool
}

// bench is the topology with every program loaded and the balancers
// configured; one forwarder at a time is attached to lb's d0.
type bench struct {
	cfg     benchConfig
	tp      *topo.Topology
	gen, lb *topo.Host
	wire    *topo.DirectLink // A in gen, B in lb

	generator *benchxdp.Generator
	counter   *benchxdp.Counter
	sink      link.Link
	bounce    *ebpf.Program
	pass      *ebpf.Program
	dp        *l4.Dataplane // next hops from the FIB
	dpMAC     *l4.Dataplane // next hop configured
	backends  []netip.Addr
	softirqd  []string // schedstat files of the ksoftirqd threads
}

func newBench(cfg benchConfig) (_ *bench, err error) {
	if cfg.Backends < 1 || cfg.Backends > 250 {
		return nil, fmt.Errorf("backends %d not in [1, 250]", cfg.Backends)
	}
	if err := topo.CleanupStale(); err != nil {
		return nil, fmt.Errorf("remove stale topologies: %w", err)
	}
	tp, err := topo.New(topo.Options{})
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, tp: tp}
	if b.softirqd, err = softirqThreads(); err != nil {
		return nil, errors.Join(err, tp.Close())
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if b.gen, err = tp.AddHost(topo.HostConfig{Name: "gen"}); err != nil {
		return nil, err
	}
	if b.lb, err = tp.AddHost(topo.HostConfig{Name: "lb", RPFilterOff: true}); err != nil {
		return nil, err
	}
	// Two queues: a veth hands an XDP frame to the peer's queue numbered by
	// the sending CPU, so two generator threads need two to use two CPUs.
	b.wire, err = tp.Connect(b.gen, b.lb, topo.DirectConfig{Name: ifname, Queues: 2, AddrA: genAddr, AddrB: lbAddr})
	if err != nil {
		return nil, err
	}
	if err := b.routes(); err != nil {
		return nil, err
	}
	for i := range cfg.Backends {
		b.backends = append(b.backends, netip.AddrFrom4([4]byte{10, 78, 0, byte(i + 1)}))
	}
	if b.counter, err = benchxdp.NewCounter(backendNet); err != nil {
		return nil, err
	}
	err = b.gen.Do(func() (err error) {
		b.sink, err = link.AttachXDP(link.XDPOptions{Program: b.counter.Program(), Interface: b.wire.A.Ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach counter to gen's %s: %w", ifname, err)
	}
	b.generator, err = benchxdp.NewGenerator(benchxdp.Flows{
		SrcMAC: b.wire.A.MAC, DstMAC: b.wire.B.MAC,
		Src: clientAddr, Dst: vipAddr, DstPort: vipPort,
		BasePort: basePort, Count: cfg.Flows,
	})
	if err != nil {
		return nil, err
	}
	if b.bounce, err = benchxdp.MACSwap(); err != nil {
		return nil, err
	}
	if b.pass, err = benchxdp.Pass(); err != nil {
		return nil, err
	}
	if b.dp, err = b.openXLB(l4.Config{}); err != nil {
		return nil, err
	}
	if b.dpMAC, err = b.openXLB(l4.Config{SrcMAC: b.wire.B.MAC, NextHopMAC: b.wire.A.MAC}); err != nil {
		return nil, err
	}
	if cfg.NFT {
		if err := b.loadNFT(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// routes: lb reaches the backends (and everything else) through gen, whose
// MAC is a permanent neighbour, so neither the kernel nor the balancer's
// FIB lookups ever wait for ARP. lb forwards out of the interface the
// packets came in by, so it must not send redirects.
func (b *bench) routes() error {
	gw := genAddr.Addr()
	if err := b.wire.B.AddNeigh(gw, b.wire.A.MAC); err != nil {
		return err
	}
	for _, dst := range []netip.Prefix{backendNet, netip.MustParsePrefix("0.0.0.0/0")} {
		if err := b.wire.B.AddRoute(dst, gw); err != nil {
			return err
		}
	}
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.conf.all.send_redirects", "0"},
		{"net.ipv4.conf." + ifname + ".send_redirects", "0"},
		{"net.ipv4.conf." + ifname + ".rp_filter", "0"},
	} {
		if err := b.lb.SetSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// openXLB loads the real balancer with one TCP VIP whose Maglev table
// (M = 65537) spreads over the backends, forwarding IP-in-IP with the MTU
// check on; next hops from the kernel's FIB unless cfg configures one.
func (b *bench) openXLB(cfg l4.Config) (_ *l4.Dataplane, err error) {
	cfg.OuterSrcV4 = lbAddr.Addr()
	cfg.MTU = 1500
	dp, err := l4.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("open balancer: %w", err)
	}
	defer func() {
		if err != nil {
			dp.Close()
		}
	}()
	in := make([]maglev.Backend, len(b.backends))
	ids := make([]l4.BackendID, len(b.backends))
	for i, a := range b.backends {
		in[i] = maglev.Backend{Name: a.String(), Weight: 1}
		if ids[i], err = dp.UpsertBackend(a); err != nil {
			return nil, fmt.Errorf("add backend %s: %w", a, err)
		}
	}
	tbl, err := maglev.Build(in, int(dp.Config().TableSize))
	if err != nil {
		return nil, fmt.Errorf("build maglev table: %w", err)
	}
	table := make([]l4.BackendID, len(tbl.Slots))
	for i, s := range tbl.Slots {
		table[i] = ids[s]
	}
	v := l4.VIP{Addr: vipAddr, Port: vipPort, Proto: l4.TCP}
	if err := dp.UpsertVIP(v); err != nil {
		return nil, fmt.Errorf("add vip: %w", err)
	}
	if err := dp.InstallTable(v, table); err != nil {
		return nil, fmt.Errorf("install table: %w", err)
	}
	return dp, nil
}

// nftRuleset is the kernel's own balancer for the same VIP and backends:
// DNAT chosen by a hash of the client's address and port, masquerade so
// replies would come back through lb (what a NAT balancer needs, and what
// DSR saves).
func (b *bench) nftRuleset() string {
	var m []string
	for i, a := range b.backends {
		m = append(m, fmt.Sprintf("%d : %s", i, a))
	}
	return fmt.Sprintf(`table ip xlbrate {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat to jhash ip saddr . tcp sport mod %d map { %s }
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr %s masquerade
	}
}
`, vipAddr, vipPort, len(b.backends), strings.Join(m, ", "), backendNet)
}

func (b *bench) loadNFT() error {
	f, err := os.CreateTemp("", "xlbrate-*.nft")
	if err != nil {
		return fmt.Errorf("write nft ruleset: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(b.nftRuleset()); err != nil {
		f.Close()
		return fmt.Errorf("write nft ruleset: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write nft ruleset: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.lb.Run(ctx, "nft", "-f", f.Name()); err != nil {
		return fmt.Errorf("load nft ruleset: %w", err)
	}
	return nil
}

// Close detaches and unloads everything and removes the namespaces.
func (b *bench) Close() error {
	var errs []error
	if b.sink != nil {
		errs = append(errs, b.sink.Close())
	}
	for _, dp := range []*l4.Dataplane{b.dp, b.dpMAC} {
		if dp != nil {
			errs = append(errs, dp.Close())
		}
	}
	if b.generator != nil {
		errs = append(errs, b.generator.Close())
	}
	if b.counter != nil {
		errs = append(errs, b.counter.Close())
	}
	for _, p := range []*ebpf.Program{b.bounce, b.pass} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	if b.tp != nil {
		errs = append(errs, b.tp.Close())
	}
	return errors.Join(errs...)
}

// attach puts forwarder k on lb's d0 (native XDP) and returns its detach.
func (b *bench) attach(k kind) (func() error, error) {
	if dp := b.balancer(k); dp != nil {
		err := b.lb.Do(func() error { return dp.Attach(ifname, l4.AttachNative) })
		if err != nil {
			return nil, err
		}
		return func() error { return b.lb.Do(func() error { return dp.Detach(ifname) }) }, nil
	}
	prog := b.bounce
	if k == nftables {
		if !b.cfg.NFT {
			return nil, errors.New("nftables case without the nftables ruleset")
		}
		prog = b.pass
	}
	var l link.Link
	err := b.lb.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.wire.B.Ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach %s to lb's %s: %w", k, ifname, err)
	}
	return l.Close, nil
}

// balancer is the Dataplane kind k measures, or nil.
func (b *bench) balancer(k kind) *l4.Dataplane {
	switch k {
	case xlb:
		return b.dp
	case xlbMAC:
		return b.dpMAC
	}
	return nil
}

// generate runs threads generator threads, thread i pinned to CPU i inside
// gen's namespace, each sending chunks of frames until ctx is done (a chunk
// in flight is finished: chunk bounds the stop latency). Every thread sends
// its first chunk whatever ctx says, and started is closed once all have:
// on a loaded machine setting the threads up can take longer than a
// sample. It returns the frames sent and the threads' run time.
func (b *bench) generate(ctx context.Context, threads int, chunk uint32, started chan<- struct{}) (uint64, time.Duration, error) {
	if threads < 1 || threads > runtime.NumCPU() {
		return 0, 0, fmt.Errorf("%d generator threads on %d CPUs", threads, runtime.NumCPU())
	}
	var (
		sent    atomic.Uint64
		cpu     atomic.Int64
		wg      sync.WaitGroup
		errs    = make([]error, threads)
		pending atomic.Int32
	)
	pending.Store(int32(threads))
	first := func() {
		if pending.Add(-1) == 0 {
			close(started)
		}
	}
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[t] = b.gen.Do(func() error {
				return pinned(t, func() error {
					start, err := threadRuntime()
					if err != nil {
						return err
					}
					for i := 0; i == 0 || ctx.Err() == nil; i++ {
						err := b.generator.Send(b.wire.A.Ifindex, chunk)
						if i == 0 {
							first()
						}
						if err != nil {
							return err
						}
						sent.Add(uint64(chunk))
					}
					end, err := threadRuntime()
					cpu.Add(int64(end - start))
					return err
				})
			})
		}()
	}
	wg.Wait()
	return sent.Load(), time.Duration(cpu.Load()), errors.Join(errs...)
}

// pinned runs fn on the calling (locked) thread pinned to cpu, and gives
// the thread its whole CPU set back afterwards, since the runtime reuses it.
func pinned(cpu int, fn func() error) error {
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return fmt.Errorf("read cpu affinity: %w", err)
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return fmt.Errorf("pin to cpu %d: %w", cpu, err)
	}
	err := fn()
	if rerr := unix.SchedSetaffinity(0, &all); rerr != nil {
		err = errors.Join(err, fmt.Errorf("restore cpu affinity: %w", rerr))
	}
	return err
}

// xlbPath names the balancer's counters that moved between two snapshots,
// largest first: which path the measured frames took.
func xlbPath(before, after l4.Stats) string {
	type moved struct {
		name string
		n    uint64
	}
	var ms []moved
	for _, c := range l4.AllCounters() {
		if n := after.Counters[c].Packets - before.Counters[c].Packets; n > 0 {
			ms = append(ms, moved{c.String(), n})
		}
	}
	slices.SortFunc(ms, func(a, b moved) int { return int(int64(b.n) - int64(a.n)) })
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s:%d", m.name, m.n))
	}
	return strings.Join(s, ",")
}
