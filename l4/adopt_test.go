package l4

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// testPrefix makes a unique name for pins and links, so that parallel runs
// and leftovers of a crashed run never collide.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "xlbt" + hex.EncodeToString(b)
}

func requireBPFFS(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Skip("/sys/fs/bpf is not bpffs: run scripts/bpffs.sh (make test does)")
	}
	return "/sys/fs/bpf"
}

// testNS is a network namespace of the test's own with a veth pair in it.
type testNS struct {
	ns     netns.NsHandle
	h      *netlink.Handle
	ifname string
}

func newTestNS(t *testing.T, prefix string) *testNS {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	ns, err := netns.New()
	require.NoError(t, err)
	require.NoError(t, netns.Set(orig))
	h, err := netlink.NewHandleAt(ns)
	require.NoError(t, err)
	tn := &testNS{ns: ns, h: h, ifname: prefix + "a"}
	t.Cleanup(func() {
		if l, err := h.LinkByName(tn.ifname); err == nil {
			_ = h.LinkDel(l)
		}
		h.Close()
		ns.Close()
	})
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tn.ifname}, PeerName: prefix + "b"}
	require.NoError(t, h.LinkAdd(veth))
	for _, n := range []string{prefix + "a", prefix + "b"} {
		l, err := h.LinkByName(n)
		require.NoError(t, err)
		require.NoError(t, h.LinkSetUp(l))
	}
	return tn
}

// do runs f on a thread inside the namespace (Attach resolves the interface
// in the calling thread's namespace).
func (tn *testNS) do(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	require.NoError(t, err)
	defer orig.Close()
	require.NoError(t, netns.Set(tn.ns))
	defer func() {
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

// xdpProgID returns the id of the XDP program on the interface, 0 if none.
func (tn *testNS) xdpProgID(t *testing.T) uint32 {
	l, err := tn.h.LinkByName(tn.ifname)
	if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		return 0
	}
	return l.Attrs().Xdp.ProgId
}

func progID(t *testing.T, d *Dataplane) uint32 {
	t.Helper()
	info, err := d.Program().Info()
	require.NoError(t, err)
	id, ok := info.ID()
	require.True(t, ok)
	return uint32(id)
}

func TestAdoptPinned(t *testing.T) {
	requireRoot(t)
	root := requireBPFFS(t)
	prefix := testPrefix(t)
	pin := filepath.Join(root, prefix)
	t.Cleanup(func() { assert.NoError(t, RemovePins(pin)) })
	tn := newTestNS(t, prefix)

	cfg := Config{MaxVIPs: 8, MaxBackends: 16, ConnEntries: 1024, TableSize: testM, PinPath: pin,
		OuterSrcV4: lbSrcV4, OuterSrcV6: lbSrcV6, SrcMAC: lbMAC, NextHopMAC: nextHopMAC}
	d1, err := Open(cfg, testLogger())
	require.NoError(t, err)
	ids := upsertBackends(t, d1, "192.168.1.1", "192.168.1.2", "192.168.1.3")
	vip := VIP{netip.MustParseAddr("203.0.113.10"), 80, TCP}
	require.NoError(t, d1.UpsertVIP(vip))
	require.NoError(t, d1.InstallTable(vip, ring(ids, 0)))
	syn := tcpSYN("198.51.100.1:40001", "203.0.113.10:80")
	ack := tcpACK("198.51.100.1:40001", "203.0.113.10:80")
	v, _ := runProg(t, d1.Program(), syn.build(t))
	require.Equal(t, uint32(xdpTx), v)
	first := d1.Backends()[ring(ids, 0)[FlowHash(syn.src, 80, TCP)%testM]]

	tn.do(t, func() { require.NoError(t, d1.Attach(tn.ifname, AttachGeneric)) })
	linkInfo, err := d1.links[tn.ifname].Info()
	require.NoError(t, err)
	oldProg := progID(t, d1)
	require.Equal(t, oldProg, tn.xdpProgID(t))
	require.NoError(t, d1.Close())
	require.Equal(t, oldProg, tn.xdpProgID(t), "a pinned link outlives the process's FDs")

	// Watch the interface while a new Dataplane adopts: it must never be
	// without a program. Bounded by the adoption, at most 100k samples.
	var (
		stop    atomic.Bool
		gaps    atomic.Int64
		samples atomic.Int64
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000 && !stop.Load(); i++ {
			if tn.xdpProgID(t) == 0 {
				gaps.Add(1)
			}
			samples.Add(1)
		}
	}()
	d2, err := Open(cfg, testLogger())
	stop.Store(true)
	wg.Wait()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d2.Close()) })
	assert.Zero(t, gaps.Load(), "interface without xdp program during adoption (%d samples)", samples.Load())

	t.Run("the link is kept and switched to the new program", func(t *testing.T) {
		require.Contains(t, d2.Attached(), tn.ifname)
		info, err := d2.links[tn.ifname].Info()
		require.NoError(t, err)
		assert.Equal(t, linkInfo.ID, info.ID)
		assert.NotEqual(t, oldProg, progID(t, d2))
		assert.Equal(t, progID(t, d2), tn.xdpProgID(t))
	})
	t.Run("state is read back from the maps", func(t *testing.T) {
		assert.Equal(t, []VIP{vip}, d2.VIPs())
		assert.Len(t, d2.Backends(), 3)
		s, err := d2.Stats()
		require.NoError(t, err)
		assert.Equal(t, uint64(1), s.Counters[CounterConnMissSYN].Packets, "counters survive")
		err = d2.DeleteBackend(ids[0])
		assert.ErrorIs(t, err, ErrBackendInUse, "table references are read back")
	})
	t.Run("connection entries survive and keep the flow", func(t *testing.T) {
		require.NoError(t, d2.InstallTable(vip, ring(ids, 1)))
		in := ack.build(t)
		v, out := runProg(t, d2.Program(), in)
		require.Equal(t, uint32(xdpTx), v)
		assert.Equal(t, encapped(t, ack, in, first), out)
	})
	t.Run("incompatible sizes are refused with advice", func(t *testing.T) {
		for _, mod := range []func(*Config){
			func(c *Config) { c.ConnEntries = 2048 },
			func(c *Config) { c.TableSize = 13 },
		} {
			c := cfg
			mod(&c)
			_, err := Open(c, testLogger())
			assert.ErrorIs(t, err, ErrIncompatiblePins)
		}
	})
	t.Run("detach removes program and pin", func(t *testing.T) {
		require.NoError(t, d2.Detach(tn.ifname))
		assert.Zero(t, tn.xdpProgID(t))
		_, err := os.Stat(xdplink.LinkPinPath(pin, tn.ifname))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestAttachModes(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix(t)
	tn := newTestNS(t, prefix)
	d := openTest(t, nil)
	for _, tc := range []struct{ mode, used AttachMode }{
		{AttachGeneric, AttachGeneric},
		{AttachNative, AttachNative},
		{AttachAuto, AttachNative}, // veth has native XDP
	} {
		t.Run(fmt.Sprint(tc.mode), func(t *testing.T) {
			tn.do(t, func() { require.NoError(t, d.Attach(tn.ifname, tc.mode)) })
			assert.Equal(t, progID(t, d), tn.xdpProgID(t))
			assert.Equal(t, map[string]AttachMode{tn.ifname: tc.used}, d.AttachModes())
			require.NoError(t, d.Detach(tn.ifname))
			assert.Zero(t, tn.xdpProgID(t))
			assert.Empty(t, d.AttachModes())
		})
	}
}

// TestAdoptedAttachMode checks that a daemon that adopts a pinned link
// reports the mode the kernel runs it in, which the link does not record.
func TestAdoptedAttachMode(t *testing.T) {
	requireRoot(t)
	root := requireBPFFS(t)
	for _, mode := range []AttachMode{AttachGeneric, AttachNative} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			prefix := testPrefix(t)
			pin := filepath.Join(root, prefix)
			t.Cleanup(func() { assert.NoError(t, RemovePins(pin)) })
			tn := newTestNS(t, prefix)
			cfg := Config{MaxVIPs: 8, MaxBackends: 16, ConnEntries: 1024, TableSize: testM, PinPath: pin,
				OuterSrcV4: lbSrcV4, OuterSrcV6: lbSrcV6, SrcMAC: lbMAC, NextHopMAC: nextHopMAC}
			d1, err := Open(cfg, testLogger())
			require.NoError(t, err)
			tn.do(t, func() { require.NoError(t, d1.Attach(tn.ifname, mode)) })
			require.NoError(t, d1.Close())

			var d2 *Dataplane
			tn.do(t, func() { d2, err = Open(cfg, testLogger()) })
			require.NoError(t, err)
			assert.Equal(t, map[string]AttachMode{tn.ifname: mode}, d2.AttachModes())
			require.NoError(t, d2.Close())

			// Adopted from outside the interface's namespace the kernel
			// cannot be asked: unknown, not a guess.
			d3, err := Open(cfg, testLogger())
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, d3.Close()) })
			assert.Equal(t, map[string]AttachMode{tn.ifname: AttachAuto}, d3.AttachModes())
		})
	}
}
