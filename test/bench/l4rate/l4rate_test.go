package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/test/bench/benchxdp"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces and XDP need root; CI runs this as root")
	}
}

func haveNFT() bool {
	_, err := exec.LookPath("nft")
	return err == nil
}

// TestFramesArrive sends a fixed number of live frames through each
// forwarder and checks what the sink counts: the generator and the
// counting path deliver, and each forwarder's frames arrive as what it
// makes of them (the bounce's still to the VIP, xlb's as IP-in-IP to a
// backend, nftables' rewritten to a backend). Counts only, no timing.
//
// The frames go in batches smaller than a veth ring (256 frames), each
// sent once the one before has arrived: at full rate a forwarder slower
// than the generator overflows the rings and loses frames in proportion
// to how busy the machine is, which says nothing about the forwarder.
// Paced, every frame must arrive.
func TestFramesArrive(t *testing.T) {
	requireRoot(t)
	const (
		batch   = 64
		batches = 64
		frames  = batch * batches
	)
	b, err := newBench(benchConfig{Flows: 1024, Backends: 4, NFT: haveNFT()})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })

	kinds := []kind{bounce, xlb, xlbMAC}
	if b.cfg.NFT {
		kinds = append(kinds, nftables)
	} else {
		t.Log("nft not installed (Debian: nftables): nftables case not run")
	}
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) {
			detach, err := b.attach(k)
			require.NoError(t, err)
			defer func() { assert.NoError(t, detach()) }()
			before, err := b.counter.Read()
			require.NoError(t, err)
			arrived := func() uint64 {
				c, err := b.counter.Read()
				require.NoError(t, err)
				return c.Sub(before)[k.class()]
			}
			for i := 1; i <= batches; i++ {
				require.NoError(t, b.sendOnce(batch))
				if !assert.Eventually(t, func() bool { return arrived() >= uint64(i*batch) },
					30*time.Second, time.Millisecond) {
					t.Fatalf("%s: batch %d of %d frames of class %s did not arrive at the sink (%d of %d did); balancer counters: %s",
						k, i, batch, k.class(), arrived(), i*batch, counters(t, b.balancer(k)))
				}
			}
			c, err := b.counter.Read()
			require.NoError(t, err)
			d := c.Sub(before)
			// Every IPv4 frame came out as the forwarder makes them (the
			// rest is the kernel's own link traffic). No upper bound on the
			// count: an interrupted live-frame run is restarted whole, and
			// sends more than asked.
			assert.Equal(t, d[k.class()], d.Total()-d[benchxdp.NotIPv4], "%s: IPv4 frames of another class at the sink: %v", k, d)
			t.Logf("%s: sent %d, sink %v", k, frames, d)
			if dp := b.balancer(k); dp != nil {
				// The Maglev table spreads the flows over every backend.
				st, err := dp.Stats()
				require.NoError(t, err)
				used := 0
				for _, n := range st.Backends {
					if n.Packets > 0 {
						used++
					}
				}
				assert.Equal(t, len(b.backends), used, "%s: backends that received frames", k)
			}
		})
	}
}

// TestFlowSplit sends paced batches from both CPUs through the balancer
// and reads its connection-table counters: with the flows split as RSS
// would (each CPU its own half) no hit ever finds its entry last written
// by the other CPU; with every CPU sending every flow, each flow moves
// between the CPUs on every pass. Counts only, no timing.
func TestFlowSplit(t *testing.T) {
	requireRoot(t)
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	const (
		flows = 256
		batch = 64 // below a veth ring's 256 frames
	)
	b, err := newBench(benchConfig{Flows: flows, Backends: 4})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	detach, err := b.attach(xlb)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, detach()) })

	var sent uint64
	start, err := b.counter.Read()
	require.NoError(t, err)
	// send sends frames from cpu in paced batches, each once the one
	// before has arrived.
	send := func(cpu, frames int) {
		t.Helper()
		for range frames / batch {
			require.NoError(t, b.sendOn(cpu, batch))
			sent += batch
			require.Eventually(t, func() bool {
				c, err := b.counter.Read()
				require.NoError(t, err)
				return c.Sub(start)[benchxdp.Tunnel] >= sent
			}, 30*time.Second, time.Millisecond, "frames from cpu %d did not arrive; balancer counters: %s", cpu, counters(t, b.dp))
		}
	}
	conn := func() (hit, other uint64) {
		st, err := b.dp.Stats()
		require.NoError(t, err)
		return st.Counters[l4.CounterConnHit].Packets, st.Counters[l4.CounterConnHitOtherCPU].Packets
	}

	// Split as RSS would: two passes over each CPU's half, the first
	// making the entries.
	require.NoError(t, b.generator.Split(2))
	send(0, flows/2)
	send(1, flows/2)
	hit0, other0 := conn()
	send(0, flows/2)
	send(1, flows/2)
	hit1, other1 := conn()
	assert.Equal(t, other0, other1, "rss split: hits whose entry the other CPU wrote")
	assert.GreaterOrEqual(t, hit1-hit0, uint64(flows), "rss split: hits")

	// Every CPU every flow: CPU 0 takes over CPU 1's half, then CPU 1
	// takes over all of them.
	require.NoError(t, b.generator.Split(1))
	send(0, flows)
	send(1, flows)
	_, other2 := conn()
	assert.GreaterOrEqual(t, other2-other1, uint64(flows/2+flows), "shared flows: hits whose entry the other CPU wrote")
}

// counters lists a balancer's non-zero counters, to tell on a failure
// where the frames went; "" for the other forwarders.
func counters(t *testing.T, dp *l4.Dataplane) string {
	if dp == nil {
		return ""
	}
	st, err := dp.Stats()
	require.NoError(t, err)
	var parts []string
	for c, n := range st.Counters {
		if n.Packets > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", c, n.Packets))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// TestRunReports runs the whole driver once, tiny: every line it promises
// is printed and the namespaces are gone afterwards.
func TestRunReports(t *testing.T) {
	requireRoot(t)
	cases := "bounce,xlb,xlb-mac"
	if haveNFT() {
		cases += ",nftables"
	}
	threads := "1"
	if runtime.NumCPU() >= 2 {
		threads = "1,2"
	}
	var out bytes.Buffer
	err := run(context.Background(), &out, []string{
		"-rounds", "1", "-interval", "50ms", "-warmup", "20ms", "-threads", threads,
		"-flowsplit", "rss,shared", "-cases", cases, "-flows", "256", "-chunk", "2048",
	})
	require.NoError(t, err, out.String())
	s := out.String()
	for _, k := range strings.Split(cases, ",") {
		assert.Contains(t, s, "l4rate threads=1 flows=rss case="+k+" mpps=")
		// Frames of every sample arrived. The 50 ms count may be 0 on a
		// busy machine (the CPU taken away for the window), and at full
		// rate a ring can overflow, but the whole sample is never empty.
		assert.Regexp(t, `# round=1 threads=1 flows=rss case=`+k+` mpps=\S+ cpu_ns=\S+ delivered=(0\.0*[1-9]|[1-9])`, s)
	}
	// One thread sends every flow either way: measured once.
	assert.NotContains(t, s, "threads=1 flows=shared")
	if threads != "1" {
		for _, sp := range []string{"rss", "shared"} {
			assert.Contains(t, s, "l4rate threads=2 flows="+sp+" case=xlb mpps=")
			assert.Contains(t, s, "l4rate threads=2 flows="+sp+" xlb_over_bounce=")
		}
	}
	assert.Contains(t, s, "xlb_over_bounce=")
	assert.Contains(t, s, "xlb-mac_over_bounce=")
	assert.Contains(t, s, "xlb_over_bounce_cpu=")
	assert.Contains(t, s, "| 1 | rss | CPU ns/frame |")
	assert.Contains(t, s, "path=xdp_tx:")
	assert.Contains(t, s, "| generator threads |")
	// The benchmark's own namespaces are gone; another run on the machine
	// (its topology owned by another process) may have its own.
	entries, err := os.ReadDir("/run/netns")
	if err == nil {
		for _, e := range entries {
			prefix, ok := strings.CutSuffix(e.Name(), "-gen")
			if !ok {
				continue
			}
			owner, _ := os.ReadFile(filepath.Join("/run/xlb-topo", prefix))
			assert.NotEqual(t, strconv.Itoa(os.Getpid()), strings.TrimSpace(string(owner)), "namespace %s left behind", e.Name())
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-cases", "bounce,ipvs"},
		{"-threads", "0"},
		{"-rounds", "0"},
		{"extra"},
		{"-flowsplit", "rs"},
		{"-threads", "3", "-flows", "256"},
	} {
		err := run(context.Background(), &bytes.Buffer{}, args)
		assert.Error(t, err, "%q", args)
	}
}
