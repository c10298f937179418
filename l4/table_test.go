package l4

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTableSlotVersion checks the guard that lets InstallTable rewrite a
// retired table at once: the program acts only on a slot carrying the
// version of the live value it read. A table being rewritten under a packet
// that read the old live value is simulated by writing the flow's slot of
// the live table with another version.
func TestTableSlotVersion(t *testing.T) {
	d := openTest(t, nil)
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2")
	other := upsertBackends(t, d, "192.168.9.9")[0]
	addrs := d.Backends()
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	id := d.vips[vip].id
	p := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
	in := p.build(t)
	slotNo := FlowHash(p.src, 80, TCP) % testM

	tests := []struct {
		name    string
		version func(live uint32) uint32 // version written into the flow's slot
		want    uint32
	}{
		{"slot of the live version is used", func(live uint32) uint32 { return live }, xdpTx},
		{"slot written by a later install is not used", func(live uint32) uint32 { return live + 1 }, xdpDrop},
		{"slot left by an earlier install is not used", func(live uint32) uint32 { return live - 1 }, xdpDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, d.InstallTable(vip, ring(ids, 0)))
			live := d.live.load(id)
			require.NotZero(t, slotID(live))
			mem := d.rings[id].mem[slotID(live)-1]
			mem[slotNo] = slot(uint32(other), tt.version(slotVersion(live)))
			before, err := d.Stats()
			require.NoError(t, err)

			v, out := runProg(t, d.Program(), in)
			require.Equal(t, verdictName(tt.want), verdictName(v))
			if tt.want == xdpTx {
				assert.Equal(t, encapped(t, p, in, addrs[other]), out)
				return
			}
			assert.Equal(t, in, out[:len(in)])
			after, err := d.Stats()
			require.NoError(t, err)
			assert.Equal(t, before.Counters[CounterNoBackend].Packets+1, after.Counters[CounterNoBackend].Packets)
		})
	}
}

// TestInstallTableUnderTraffic installs tables back to back, with no pause,
// while other goroutines run SYNs through the live program; table k sends
// every slot to backend k%4, and every fifth table is empty. A run that
// started after install d0 returned and ended before install s1 began must
// get a backend of a table in [d0, s1], or a drop if one of those is empty:
// a backend of any other table would be a stale or half-written table.
func TestInstallTableUnderTraffic(t *testing.T) {
	const (
		installs = 400
		maxRuns  = 400000 // per goroutine, a bound should installs stall
	)
	d := openTest(t, func(c *Config) { c.TableSize = DefaultTableSize })
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3", "192.168.1.4")
	addrs := d.Backends()
	index := map[netip.Addr]int{}
	for i, id := range ids {
		index[addrs[id]] = i
	}
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	empty := func(k int64) bool { return k%5 == 4 }
	table := func(k int64) []BackendID {
		if empty(k) {
			return nil
		}
		return benchTable(ids[k%4:k%4+1], DefaultTableSize, 0)
	}
	require.NoError(t, d.InstallTable(vip, table(0)))

	var (
		started, done atomic.Int64 // last install begun / returned
		stop          atomic.Bool
		runs, bad     atomic.Int64
		firstBad      atomic.Value
		wg            sync.WaitGroup
	)
	prog := d.Program()
	for g := range 2 {
		// Packets are built here: gopacket reports through t, which a
		// goroutine must not fail.
		pkts := make([][]byte, 256)
		for i := range pkts {
			pkts[i] = tcpSYN(fmt.Sprintf("198.51.%d.%d:%d", g, i, 1024+i), "203.0.113.10:80").build(t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for i := 0; i < maxRuns && !stop.Load(); i++ {
				in := pkts[i%len(pkts)]
				d0 := done.Load()
				opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
				v, err := prog.Run(opts)
				s1 := started.Load()
				runs.Add(1)
				ok := err == nil
				switch {
				case !ok:
				case v == xdpTx:
					got, known := index[netip.AddrFrom4([4]byte(opts.DataOut[14+16:14+20]))]
					ok = false
					for k := d0; k <= s1 && known; k++ {
						ok = ok || (!empty(k) && int(k%4) == got)
					}
				case v == xdpDrop:
					ok = false
					for k := d0; k <= s1; k++ {
						ok = ok || empty(k)
					}
				default:
					ok = false
				}
				if !ok {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("verdict %d err %v during installs [%d, %d]", v, err, d0, s1))
				}
			}
		}()
	}
	for k := int64(1); k <= installs; k++ {
		started.Store(k)
		require.NoError(t, d.InstallTable(vip, table(k)))
		done.Store(k)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d runs during %d installs", runs.Load(), installs)
	require.Positive(t, runs.Load())
	assert.Zero(t, bad.Load(), "first: %v", firstBad.Load())
}

// TestBackToBackInstalls changes one VIP's table three times in a row: the
// third rewrites the table the second retired, and the program then
// answers from the third, every slot.
func TestBackToBackInstalls(t *testing.T) {
	d := openTest(t, nil)
	ids := upsertBackends(t, d, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	addrs := d.Backends()
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d.UpsertVIP(vip))
	for shift := range 3 {
		require.NoError(t, d.InstallTable(vip, ring(ids, shift)))
	}
	want := ring(ids, 2)
	for i := range 64 {
		p := tcpSYN(fmt.Sprintf("198.51.100.%d:%d", i+1, 40000+i), "203.0.113.10:80")
		in := p.build(t)
		v, out := runProg(t, d.Program(), in)
		require.Equal(t, verdictName(xdpTx), verdictName(v))
		assert.Equal(t, encapped(t, p, in, addrs[want[FlowHash(p.src, 80, TCP)%testM]]), out, "flow %d", i)
	}
}

// TestRefuseOldLayout: pins of another map layout are refused with the
// incompatible-pins error rather than misread.
func TestRefuseOldLayout(t *testing.T) {
	requireRoot(t)
	pin := filepath.Join(requireBPFFS(t), testPrefix(t))
	t.Cleanup(func() { assert.NoError(t, RemovePins(pin)) })
	cfg := Config{MaxVIPs: 8, MaxBackends: 16, ConnEntries: 1024, TableSize: testM, PinPath: pin}
	d, err := Open(cfg, testLogger())
	require.NoError(t, err)
	ctl := d.ctl
	ctl.Layout = 1
	require.NoError(t, d.objs.CtlMap.Put(uint32(0), &ctl))
	require.NoError(t, d.Close())
	_, err = Open(cfg, testLogger())
	assert.ErrorIs(t, err, ErrIncompatiblePins)
}
