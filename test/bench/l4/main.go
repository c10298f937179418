// Command l4 measures the per-packet cost of the xlb balancer through
// BPF_PROG_TEST_RUN, the way Katran's perf tester does: repeat = 1 in a loop,
// averaging the duration the kernel reports (with repeat > 1 the kernel would
// re-run the program on the already-encapsulated buffer). In the same run, on
// the same pinned CPU and interleaved round by round, it measures a trivial
// MAC-swap XDP_TX program as the floor and reports every case over it:
//
//	l4bench case=<name> ns=<median> floor_ns=<floor> over_floor_ns=<difference> iqm_ns=<median> floor_iqm_ns=<floor> over_floor_iqm_ns=<difference>
//
// ns is the median over rounds of each round's mean; iqm_ns the same with
// each round's interquartile mean (the mean of the middle half of its
// runs), which a run preempted by another process on a busy machine does
// not move. Needs root.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/test/bench/benchxdp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "l4bench:", err)
		os.Exit(1)
	}
}

type benchCase struct {
	name  string
	prog  *ebpf.Program
	in    []byte
	want  uint32 // expected verdict, checked before measuring
	prime []byte // packet run once first (the SYN that creates the entry)
	// vary, when set, rewrites the packet before each run (a new flow
	// every time).
	vary func(in []byte, i int)
	// primeFlows, when set, primes that many flows first: prime rewritten
	// by vary for each (the connections a case then cycles through).
	primeFlows int
	// dp is the balancer the case's counters are read from (nil: the
	// one with the static next hop).
	dp *l4.Dataplane
}

func run() error {
	n := flag.Int("n", 200000, "runs per case (repeat = 1 each)")
	rounds := flag.Int("rounds", 10, "interleaved rounds the runs are split into")
	cpu := flag.Int("cpu", 0, "CPU to pin the measuring thread to")
	conns := flag.Uint("conns", 0, "connection table entries (0: the l4 default)")
	only := flag.String("cases", "", "comma-separated cases to measure (default all; the floor always runs), e.g. to profile one")
	flag.Parse()
	if *rounds < 1 || *n < *rounds {
		return errors.New("need n >= rounds >= 1")
	}

	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(*cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cpu %d: %w", *cpu, err)
	}

	// The FIB cases need a routing table and a neighbour entry, which
	// this thread gets in a namespace of its own (unnamed: it goes away
	// with the process). BPF_PROG_TEST_RUN runs the program as if the
	// packet came in on that namespace's loopback.
	ns, err := fibNamespace()
	if err != nil {
		return err
	}
	defer ns.Close()

	floor, err := benchxdp.MACSwap()
	if err != nil {
		return err
	}
	defer floor.Close()

	static := l4.Config{
		ConnEntries: uint32(*conns),
		OuterSrcV4:  netip.MustParseAddr("10.0.0.1"),
		OuterSrcV6:  netip.MustParseAddr("fd00::1"),
		SrcMAC:      net.HardwareAddr{2, 0, 0, 0, 0, 1},
		NextHopMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 2},
		GUEPort:     6080,
	}
	d, err := l4.Open(static, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := setup(d); err != nil {
		return err
	}
	if err := setupPairs(d); err != nil {
		return err
	}
	prog := d.Program()

	// The same balancer with the new-flow guard at 1 per second: past the
	// first, every new flow is forwarded without a connection entry, as
	// during a flood.
	guarded := static
	guarded.NewFlowRateLimit = 1
	gd, err := l4.Open(guarded, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer gd.Close()
	if err := setup(gd); err != nil {
		return err
	}

	// The same balancer without a next-hop MAC: every forwarded packet asks
	// bpf_fib_lookup, and an L2 DSR VIP (which always does).
	fd, err := l4.Open(l4.Config{
		ConnEntries: uint32(*conns),
		OuterSrcV4:  netip.MustParseAddr("10.0.0.1"),
		OuterSrcV6:  netip.MustParseAddr("fd00::1"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := setup(fd); err != nil {
		return err
	}
	l2vip := l4.VIP{Addr: netip.MustParseAddr("203.0.113.11"), Port: 80, Proto: l4.TCP}
	if err := fd.UpsertVIP(l2vip, l4.WithMode(l4.ModeL2DSR)); err != nil {
		return err
	}
	if err := fd.InstallTable(l2vip, fullTable(fd, true)); err != nil {
		return err
	}
	fprog := fd.Program()

	client := netip.MustParseAddr("198.51.100.1")
	vip := netip.MustParseAddr("203.0.113.10")
	client6 := netip.MustParseAddr("2001:db8:c::1")
	cases := []benchCase{
		{name: "floor", prog: floor, in: tcp(client, vip, 80, true), want: 3},
		{name: "tcp_syn", prog: prog, in: tcp(client, vip, 80, true), want: 3},
		{name: "tcp_hit", prog: prog, in: tcp(client, vip, 80, false), want: 3, prime: tcp(client, vip, 80, true)},
		{name: "udp_hit", prog: prog, in: udp(client, vip, 53), want: 3, prime: udp(client, vip, 53)},
		{name: "non_vip", prog: prog, in: tcp(client, netip.MustParseAddr("203.0.113.99"), 80, false), want: 2},
		// Not one of the cases: the same SYN path, but every run is a
		// flow never seen before (source port and address change), so the
		// insert lands in a cold set instead of rewriting the same way.
		{name: "tcp_syn_new_flow", prog: prog, in: tcp(client, vip, 80, true), want: 3, vary: newFlow},
		{name: "tcp_hit_fib", prog: fprog, dp: fd, in: tcp(client, vip, 80, false), want: 3, prime: tcp(client, vip, 80, true)},
		{name: "tcp_hit_l2dsr", prog: fprog, dp: fd, in: tcp(client, l2vip.Addr, 80, false), want: 3, prime: tcp(client, l2vip.Addr, 80, true)},
		// The paths added with the encapsulation pairs, GUE and VLAN
		// parsing, and the new-flow guard during a flood.
		{name: "tcp_hit_v6", prog: prog, in: tcp(client6, vip6, 80, false), want: 3, prime: tcp(client6, vip6, 80, true)},
		{name: "tcp_hit_4in6", prog: prog, in: tcp(client, vip4in6, 80, false), want: 3, prime: tcp(client, vip4in6, 80, true)},
		{name: "tcp_hit_gue", prog: prog, in: tcp(client, vipGUE, 80, false), want: 3, prime: tcp(client, vipGUE, 80, true)},
		{name: "tcp_hit_vlan", prog: prog, in: vlan(tcp(client, vip, 80, false), 100), want: 3, prime: vlan(tcp(client, vip, 80, true), 100)},
		// Hits over as many established flows as tcp_syn_new_flow creates
		// per round, each in a cold set: what a hit costs when the table
		// is not in the cache, beside tcp_hit's one hot entry.
		{name: "tcp_hit_many_flows", prog: prog, in: tcp(client, vip, 80, false), want: 3, vary: newFlow,
			prime: tcp(client, vip, 80, true), primeFlows: *n / *rounds},
		{name: "tcp_syn_new_flow_guarded", prog: gd.Program(), dp: gd, in: tcp(client, vip, 80, true), want: 3, vary: newFlow,
			prime: tcp(netip.MustParseAddr("198.51.100.200"), vip, 80, true)},
	}
	if *only != "" {
		want := strings.Split(*only, ",")
		kept := cases[:1] // the floor
		for _, c := range cases[1:] {
			if slices.Contains(want, c.name) {
				kept = append(kept, c)
			}
		}
		if len(kept) != len(want)+1 {
			return fmt.Errorf("unknown case in -cases %q", *only)
		}
		cases = kept
	}
	for _, c := range cases {
		if c.prime != nil {
			if _, err := c.prog.Run(&ebpf.RunOptions{Data: c.prime, DataOut: make([]byte, len(c.prime)+64)}); err != nil {
				return fmt.Errorf("prime %s: %w", c.name, err)
			}
		}
		for i := range c.primeFlows {
			c.vary(c.prime, i)
			if _, err := c.prog.Run(&ebpf.RunOptions{Data: c.prime, DataOut: make([]byte, len(c.prime)+64)}); err != nil {
				return fmt.Errorf("prime %s: %w", c.name, err)
			}
		}
		if c.vary != nil {
			c.vary(c.in, 0)
		}
		cd := c.dp
		if cd == nil {
			cd = d
		}
		before, err := cd.Stats()
		if err != nil {
			return err
		}
		v, err := c.prog.Run(&ebpf.RunOptions{Data: c.in, DataOut: make([]byte, len(c.in)+64)})
		if err != nil {
			return fmt.Errorf("check %s: %w", c.name, err)
		}
		if v != c.want {
			return fmt.Errorf("check %s: verdict %d, want %d", c.name, v, c.want)
		}
		after, err := cd.Stats()
		if err != nil {
			return err
		}
		// Say which path the case takes, so the figure is for what its
		// name claims (e.g. tcp_hit really hits the connection table).
		var path []string
		for _, k := range l4.AllCounters() {
			if after.Counters[k].Packets != before.Counters[k].Packets {
				path = append(path, k.String())
			}
		}
		fmt.Printf("# case=%s path=%s\n", c.name, strings.Join(path, ","))
	}

	per := *n / *rounds
	means := make([][]float64, len(cases))
	iqms := make([][]float64, len(cases))
	for range *rounds {
		for i, c := range cases {
			m, q, err := mean(c, per)
			if err != nil {
				return fmt.Errorf("measure %s: %w", c.name, err)
			}
			means[i] = append(means[i], m)
			iqms[i] = append(iqms[i], q)
		}
	}
	floorNS, floorIQM := median(means[0]), median(iqms[0])
	fmt.Printf("# %d runs per case in %d interleaved rounds, repeat=1, cpu %d; floor = MAC-swap XDP_TX\n", per**rounds, *rounds, *cpu)
	for i, c := range cases[1:] {
		ns, q := median(means[i+1]), median(iqms[i+1])
		fmt.Printf("l4bench case=%s ns=%.1f floor_ns=%.1f over_floor_ns=%.1f iqm_ns=%.1f floor_iqm_ns=%.1f over_floor_iqm_ns=%.1f\n",
			c.name, ns, floorNS, ns-floorNS, q, floorIQM, q-floorIQM)
	}
	return nil
}

// newFlow gives run i its own source address and port.
func newFlow(in []byte, i int) {
	binary.BigEndian.PutUint16(in[14+20:], uint16(1024+i%60000))
	in[14+12+2] = byte(i / 60000)
}

// mean runs the case count times with repeat = 1 and returns the mean of
// the durations the kernel reported, and their interquartile mean.
func mean(c benchCase, count int) (float64, float64, error) {
	var total int64
	ds := make([]int64, count)
	for i := range count {
		if c.vary != nil {
			c.vary(c.in, i)
		}
		_, d, err := c.prog.Benchmark(c.in, 1, nil)
		if err != nil {
			return 0, 0, err
		}
		ds[i] = d.Nanoseconds()
		total += ds[i]
	}
	slices.Sort(ds)
	var mid int64
	for _, d := range ds[count/4 : count-count/4] {
		mid += d
	}
	return float64(total) / float64(count), float64(mid) / float64(count-2*(count/4)), nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fibNamespace moves the calling (locked) thread into a new network
// namespace whose loopback routes 192.168.1.0/24, the backends, with a
// neighbour entry and forwarding on: what bpf_fib_lookup needs to answer.
func fibNamespace() (netns.NsHandle, error) {
	ns, err := netns.New()
	if err != nil {
		return ns, fmt.Errorf("create fib namespace: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err == nil {
		_, dst, _ := net.ParseCIDR("192.168.1.0/24")
		err = netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: dst})
	}
	if err == nil {
		err = netlink.NeighSet(&netlink.Neigh{LinkIndex: lo.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
			IP: net.IPv4(192, 168, 1, 1), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 2}})
	}
	if err == nil {
		err = os.WriteFile("/proc/sys/net/ipv4/conf/lo/forwarding", []byte("1"), 0o644)
	}
	if err != nil {
		ns.Close()
		return ns, fmt.Errorf("set up fib namespace: %w", err)
	}
	return ns, nil
}

// The VIPs of the pair and GUE cases (setupPairs).
var (
	vip6    = netip.MustParseAddr("2001:db8::10")
	vip4in6 = netip.MustParseAddr("203.0.113.12")
	vipGUE  = netip.MustParseAddr("203.0.113.13")
)

// setupPairs adds four IPv6 backends, an IPv6 VIP (6-in-6) and an IPv4 VIP
// (4-in-6) over them, and a GUE VIP over the IPv4 backends, each with a
// full-size table.
func setupPairs(d *l4.Dataplane) error {
	for i := range 4 {
		if _, err := d.UpsertBackend(netip.AddrFrom16([16]byte{0xfd, 1, 15: byte(i + 1)})); err != nil {
			return err
		}
	}
	for _, v := range []struct {
		addr netip.Addr
		mode l4.Mode
		v4   bool
	}{{vip6, l4.ModeIPIP, false}, {vip4in6, l4.ModeIPIP, false}, {vipGUE, l4.ModeGUE, true}} {
		key := l4.VIP{Addr: v.addr, Port: 80, Proto: l4.TCP}
		if err := d.UpsertVIP(key, l4.WithMode(v.mode)); err != nil {
			return err
		}
		if err := d.InstallTable(key, fullTable(d, v.v4)); err != nil {
			return err
		}
	}
	return nil
}

// fullTable is a full-size table (M = 65537) over the backends of one
// family.
func fullTable(d *l4.Dataplane, v4 bool) []l4.BackendID {
	var ids []l4.BackendID
	for id, a := range d.Backends() {
		if a.Is4() == v4 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	table := make([]l4.BackendID, d.Config().TableSize)
	for i := range table {
		table[i] = ids[i%len(ids)]
	}
	return table
}

// setup installs one TCP and one UDP VIP, each with a full-size table
// (M = 65537) spread over ten backends.
func setup(d *l4.Dataplane) error {
	for i := range 10 {
		if _, err := d.UpsertBackend(netip.AddrFrom4([4]byte{192, 168, 1, byte(i + 1)})); err != nil {
			return err
		}
	}
	table := fullTable(d, true)
	for _, v := range []l4.VIP{
		{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: l4.TCP},
		{Addr: netip.MustParseAddr("203.0.113.10"), Port: 53, Proto: l4.UDP},
	} {
		if err := d.UpsertVIP(v); err != nil {
			return err
		}
		if err := d.InstallTable(v, table); err != nil {
			return err
		}
	}
	return nil
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err) // static layers; cannot fail
	}
	return buf.Bytes()
}

func ipv4(src, dst netip.Addr, proto layers.IPProtocol) (*layers.Ethernet, *layers.IPv4) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0xc, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return eth, ip
}

// tcp is a 64-byte-payload TCP segment (SYN or ACK), IPv4 or IPv6.
func tcp(src, dst netip.Addr, port uint16, syn bool) []byte {
	t := &layers.TCP{SrcPort: 40001, DstPort: layers.TCPPort(port), SYN: syn, ACK: !syn, Window: 65535}
	if src.Is6() {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0xc, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		_ = t.SetNetworkLayerForChecksum(ip)
		return serialize(eth, ip, t, gopacket.Payload(make([]byte, 64)))
	}
	eth, ip := ipv4(src, dst, layers.IPProtocolTCP)
	_ = t.SetNetworkLayerForChecksum(ip)
	return serialize(eth, ip, t, gopacket.Payload(make([]byte, 64)))
}

// vlan inserts an 802.1Q tag with VLAN id after the MAC addresses.
func vlan(frame []byte, id uint16) []byte {
	out := append([]byte(nil), frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, 0x8100)
	out = binary.BigEndian.AppendUint16(out, id)
	return append(out, frame[12:]...)
}

func udp(src, dst netip.Addr, port uint16) []byte {
	eth, ip := ipv4(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: 5353, DstPort: layers.UDPPort(port)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(eth, ip, u, gopacket.Payload(make([]byte, 64)))
}
