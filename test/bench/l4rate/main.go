// Command l4rate measures the packet rate of the xlb balancer on veth: TCP
// ACK frames of a few thousand established flows are generated with
// BPF_PROG_TEST_RUN in live-frame mode in one namespace, sent over a
// 2-queue veth pair to the forwarder under test (native XDP) in another,
// and whatever the forwarder sends back is counted by an XDP sink on the
// generator's side, by destination. Side by side, in interleaved rounds:
//
//	bounce    a MAC-swap XDP_TX: the most an XDP_TX forwarder can do here
//	xlb       the l4 balancer: one VIP, 8 backends, Maglev M=65537,
//	          connection table, next hops from the FIB, IP-in-IP
//	xlb-mac   the same with a configured next-hop MAC (no FIB lookup)
//	nftables  the kernel's NAT balancer to the same backends: nft DNAT by
//	          jhash of the client address and port, plus masquerade
//
// for each number of generator threads (one per CPU) and way of sharing
// the flows out over them:
//
//	rss       each thread sends its own disjoint part of the flows, as a
//	          NIC's RSS receives each flow on one CPU (the default)
//	shared    every thread sends every flow, so a flow's state is written
//	          from both CPUs in turn (which no NIC does; it shows what
//	          sharing cache lines between CPUs costs)
//
// With one thread the two are the same and measured once. Per sample it
// prints a comment line, and at the end the medians:
//
//	l4rate threads=<n> flows=<rss|shared> case=<name> mpps=<median> cpu_ns=<median>
//	l4rate threads=<n> flows=<rss|shared> xlb_over_bounce=<median> ... xlb_over_bounce_cpu=<median> ...
//
// followed by a markdown table. mpps counts delivered frames per second of
// wall time; cpu_ns is the CPU time the whole loop (generator, veth, the
// forwarder, sink) took per delivered frame, which other load on the shared
// machine does not change. The _cpu ratios compare frames per CPU-second. Bounded: rounds × cases × threads samples
// of warmup+interval each; stops by itself and removes its namespaces and
// programs on exit, also after an error or SIGINT/SIGTERM. Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/test/topo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Stdout, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "l4rate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("l4rate", flag.ContinueOnError)
	rounds := fs.Int("rounds", 9, "interleaved rounds")
	interval := fs.Duration("interval", 500*time.Millisecond, "counting interval per sample")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "generation before counting starts, per sample")
	threadsFlag := fs.String("threads", "1,2", "generator thread counts to measure (one CPU each)")
	splitFlag := fs.String("flowsplit", "rss", "how the flows are shared out over generator threads: rss (each thread its own), shared (every thread all), or both")
	casesFlag := fs.String("cases", "bounce,xlb,xlb-mac,nftables", "forwarders to measure (bounce, xlb, xlb-mac, nftables)")
	flows := fs.Int("flows", 4096, "distinct flows (a power of two)")
	backends := fs.Int("backends", 8, "backends behind the VIP")
	chunk := fs.Uint("chunk", 1<<18, "frames per live-frame run (bounds the stop latency)")
	cleanup := fs.Bool("cleanup", false, "only remove what killed runs left behind (namespaces and the links and programs in them), then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *cleanup {
		return topo.CleanupStale()
	}
	if *rounds < 1 || *interval <= 0 || *warmup < 0 || *chunk < 1 || *chunk > 1<<24 {
		return errors.New("need rounds >= 1, interval > 0, warmup >= 0, 1 <= chunk <= 16777216")
	}
	cases, err := parseKinds(*casesFlag)
	if err != nil {
		return err
	}
	var threads []int
	for _, f := range strings.Split(*threadsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad thread count %q", f)
		}
		threads = append(threads, n)
	}
	splits, err := parseSplits(*splitFlag)
	if err != nil {
		return err
	}
	var loads []load
	for _, t := range threads {
		if *flows%t != 0 {
			return fmt.Errorf("%d threads do not divide %d flows", t, *flows)
		}
		for i, sp := range splits {
			if t == 1 && i > 0 {
				break // one thread sends every flow either way
			}
			loads = append(loads, load{threads: t, split: sp})
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root to create namespaces and load XDP programs")
	}
	nft := slices.Contains(cases, nftables)
	if nft {
		if _, err := exec.LookPath("nft"); err != nil {
			return fmt.Errorf("the nftables case needs the nft tool (Debian: nftables): %w", err)
		}
	}

	b, err := newBench(benchConfig{Flows: *flows, Backends: *backends, NFT: nft})
	if err != nil {
		return err
	}
	defer b.Close()
	w := window{warmup: *warmup, interval: *interval, chunk: uint32(*chunk)}
	fmt.Fprintf(out, "# %d-byte TCP ACK frames, %d flows (flows=rss: each generator thread its own part; shared: every thread all), VIP %s:%d -> %d backends; veth pair with 2 queues, native XDP; %d rounds of %v (after %v warm-up) per sample\n",
		60, *flows, vipAddr, vipPort, *backends, *rounds, *interval, *warmup)

	res := results{}
	for r := 1; r <= *rounds; r++ {
		for _, l := range loads {
			for _, k := range cases {
				s, err := b.measure(ctx, k, l, w)
				if err != nil {
					return fmt.Errorf("round %d, %s with %d threads (flows=%s): %w", r, k, l.threads, l.split, err)
				}
				line := fmt.Sprintf("# round=%d %s case=%s mpps=%.2f cpu_ns=%.0f delivered=%.3f", r, l, k, s.pps/1e6, s.cpuNS, s.delivered)
				if s.path != "" && r == 1 {
					line += " path=" + s.path
				}
				fmt.Fprintln(out, line)
				res.add(s)
			}
		}
	}
	res.report(out, loads, cases)
	return nil
}

// split is how the flows are shared out over the generator threads.
type split string

const (
	rss    split = "rss"    // each thread its own part, as a NIC's RSS
	shared split = "shared" // every thread every flow
)

func parseSplits(s string) ([]split, error) {
	var out []split
	for _, f := range strings.Split(s, ",") {
		sp := split(strings.TrimSpace(f))
		if sp != rss && sp != shared {
			return nil, fmt.Errorf("unknown flow split %q (want rss, shared)", f)
		}
		if !slices.Contains(out, sp) {
			out = append(out, sp)
		}
	}
	return out, nil
}

// load is the traffic of a sample: how many generator threads, and how the
// flows are shared out over them.
type load struct {
	threads int
	split   split
}

func (l load) String() string { return fmt.Sprintf("threads=%d flows=%s", l.threads, l.split) }

// results holds every sample by (load, kind) in round order.
type results map[load]map[kind][]sample

func (rs results) add(s sample) {
	if rs[s.load] == nil {
		rs[s.load] = map[kind][]sample{}
	}
	rs[s.load][s.kind] = append(rs[s.load][s.kind], s)
}

// metric picks one figure of a sample, oriented so that more is better.
type metric func(sample) float64

func mpps(s sample) float64 { return s.pps / 1e6 }

// perCPU is frames per CPU-second (in millions): 1000 / cpuNS.
func perCPU(s sample) float64 {
	if s.cpuNS <= 0 {
		return 0
	}
	return 1e3 / s.cpuNS
}

func (rs results) median(t load, k kind, m metric) float64 {
	var xs []float64
	for _, s := range rs[t][k] {
		xs = append(xs, m(s))
	}
	return median(xs)
}

// ratios is m(a)/m(b) of each round: samples of the same round ran seconds
// apart, so their ratio is the least noisy figure.
func (rs results) ratios(t load, a, b kind, m metric) []float64 {
	as, bs := rs[t][a], rs[t][b]
	if len(as) != len(bs) {
		return nil
	}
	var q []float64
	for i := range as {
		if m(bs[i]) > 0 {
			q = append(q, m(as[i])/m(bs[i]))
		}
	}
	return q
}

type pair struct{ a, b kind }

func (rs results) report(out io.Writer, loads []load, cases []kind) {
	var pairs []pair
	for _, x := range []kind{xlb, xlbMAC} {
		for _, base := range []kind{bounce, nftables} {
			if slices.Contains(cases, x) && slices.Contains(cases, base) {
				pairs = append(pairs, pair{x, base})
			}
		}
	}
	ratio := func(t load, p pair, m metric) float64 { return median(rs.ratios(t, p.a, p.b, m)) }
	for _, t := range loads {
		for _, k := range cases {
			fmt.Fprintf(out, "l4rate %s case=%s mpps=%.2f cpu_ns=%.0f\n", t, k, rs.median(t, k, mpps), 1e3/rs.median(t, k, perCPU))
		}
		line := fmt.Sprintf("l4rate %s", t)
		for _, p := range pairs {
			line += fmt.Sprintf(" %s_over_%s=%.2f", p.a, p.b, ratio(t, p, mpps))
		}
		for _, p := range pairs {
			line += fmt.Sprintf(" %s_over_%s_cpu=%.2f", p.a, p.b, ratio(t, p, perCPU))
		}
		// The spread says how far the machine's noise reaches.
		for _, p := range pairs {
			for _, m := range []struct {
				name string
				f    metric
			}{{"mpps", mpps}, {"cpu", perCPU}} {
				var each []string
				for _, r := range rs.ratios(t, p.a, p.b, m.f) {
					each = append(each, fmt.Sprintf("%.2f", r))
				}
				fmt.Fprintf(out, "# %s %s/%s (%s) by round: %s\n", t, p.a, p.b, m.name, strings.Join(each, " "))
			}
		}
		fmt.Fprintln(out, line)
	}

	fmt.Fprintln(out)
	fmt.Fprint(out, "| generator threads | flows | figure |")
	for _, k := range cases {
		fmt.Fprintf(out, " %s |", k)
	}
	for _, p := range pairs {
		fmt.Fprintf(out, " %s ÷ %s |", p.a, p.b)
	}
	fmt.Fprintln(out)
	fmt.Fprint(out, "|---:|---|---|")
	for range len(cases) + len(pairs) {
		fmt.Fprint(out, "---:|")
	}
	fmt.Fprintln(out)
	for _, t := range loads {
		fmt.Fprintf(out, "| %d | %s | Mpps |", t.threads, t.split)
		for _, k := range cases {
			fmt.Fprintf(out, " %.2f |", rs.median(t, k, mpps))
		}
		for _, p := range pairs {
			fmt.Fprintf(out, " %.2f |", ratio(t, p, mpps))
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "| %d | %s | CPU ns/frame |", t.threads, t.split)
		for _, k := range cases {
			fmt.Fprintf(out, " %.0f |", 1e3/rs.median(t, k, perCPU))
		}
		for _, p := range pairs {
			fmt.Fprintf(out, " %.2f |", ratio(t, p, perCPU))
		}
		fmt.Fprintln(out)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
