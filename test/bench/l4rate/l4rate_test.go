package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
	var out bytes.Buffer
	err := run(context.Background(), &out, []string{
		"-rounds", "1", "-interval", "50ms", "-warmup", "20ms", "-threads", "1",
		"-cases", cases, "-flows", "256", "-chunk", "2048",
	})
	require.NoError(t, err, out.String())
	s := out.String()
	for _, k := range strings.Split(cases, ",") {
		assert.Contains(t, s, "l4rate threads=1 case="+k+" mpps=")
		assert.NotContains(t, s, "case="+k+" mpps=0.00")
	}
	assert.Contains(t, s, "xlb_over_bounce=")
	assert.Contains(t, s, "xlb-mac_over_bounce=")
	assert.Contains(t, s, "xlb_over_bounce_cpu=")
	assert.Contains(t, s, "| 1 | CPU ns/frame |")
	assert.Contains(t, s, "path=xdp_tx:")
	assert.Contains(t, s, "| generator threads |")
	entries, err := os.ReadDir("/run/netns")
	if err == nil {
		for _, e := range entries {
			assert.NotContains(t, e.Name(), "-gen", "namespace left behind")
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-cases", "bounce,ipvs"},
		{"-threads", "0"},
		{"-rounds", "0"},
		{"extra"},
	} {
		err := run(context.Background(), &bytes.Buffer{}, args)
		assert.Error(t, err, "%q", args)
	}
}
