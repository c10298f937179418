package decap

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// pinDir returns a fresh directory on bpffs, removed when the test ends.
func pinDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Skip("bpffs is not mounted at /sys/fs/bpf (scripts/bpffs.sh mounts it)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join("/sys/fs/bpf", "xlbt-decap-"+hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		assert.NoError(t, RemovePins(dir))
		_, err := os.Stat(dir)
		assert.True(t, os.IsNotExist(err), "pin directory removed")
	})
	return dir
}

// xdpProgID returns the id of the XDP program on the host's interface
// (0: none).
func xdpProgID(t *testing.T, h *topo.Host) uint32 {
	t.Helper()
	var id uint32
	require.NoError(t, h.Do(func() error {
		l, err := netlink.LinkByName(h.Ifname)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	}))
	return id
}

func progID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	require.NoError(t, err)
	id, ok := info.ID()
	require.True(t, ok)
	return uint32(id)
}

// A restarted process adopts the pinned decapsulator: the interface never
// loses it, addresses and counters carry over, and the new program takes
// over the attachment.
func TestPinAndAdopt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root; CI runs this as root")
	}
	dir := pinDir(t)
	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "l7", MTU: topo.BridgeMTU})
	require.NoError(t, err)
	frame := tunnel4(t, l7Addr, false, inner(t, false, "x"), nil)

	// First process: attach with pins, decapsulate one packet, exit.
	d1, err := Open(Config{PinPath: dir})
	require.NoError(t, err)
	require.NoError(t, d1.SetAddrs([]netip.Addr{l7Addr}))
	require.NoError(t, h.Do(func() error { return d1.Attach(h.Ifname, xdplink.ModeNative) }))
	_, _ = run(t, d1.Program(), frame)
	id1 := progID(t, d1.Program())
	require.Equal(t, id1, xdpProgID(t, h))
	require.NoError(t, d1.Close())
	assert.Equal(t, id1, xdpProgID(t, h), "still attached after Close: the link is pinned")

	// Second process: adopts.
	d2, err := Open(Config{PinPath: dir})
	require.NoError(t, err)
	defer d2.Close()
	id2 := progID(t, d2.Program())
	assert.NotEqual(t, id1, id2)
	assert.Equal(t, id2, xdpProgID(t, h), "the pinned link now runs the new program")
	assert.ElementsMatch(t, []netip.Addr{l7Addr}, d2.Addrs(), "addresses adopted")
	st, err := d2.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.DecapV4.Packets, "counters survive")
	verdict, out := run(t, d2.Program(), frame)
	assert.Equal(t, uint32(xdpPass), verdict)
	assert.Equal(t, decapped(t, false, inner(t, false, "x")), out)
	// Attaching the adopted interface again is a no-op; SetAddrs diffs
	// against the adopted set.
	require.NoError(t, h.Do(func() error { return d2.Attach(h.Ifname, xdplink.ModeNative) }))
	require.NoError(t, d2.SetAddrs([]netip.Addr{l7Addr6}))
	_, out = run(t, d2.Program(), frame)
	assert.Equal(t, frame, out, "the old address was removed")

	// Detach removes the attachment and its pin.
	require.NoError(t, d2.Detach())
	assert.Zero(t, xdpProgID(t, h))
	_, err = os.Stat(xdplink.LinkPinPath(dir, h.Ifname))
	assert.True(t, os.IsNotExist(err), "link pin removed")
}

func TestPinIncompatible(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading XDP programs needs root; CI runs this as root")
	}
	dir := pinDir(t)
	d1, err := Open(Config{PinPath: dir, MaxAddrs: 8})
	require.NoError(t, err)
	require.NoError(t, d1.Close())
	_, err = Open(Config{PinPath: dir, MaxAddrs: 16})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RemovePins")
	_, err = Open(Config{PinPath: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not on bpffs")
}

func TestInterfaceAddrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; CI runs this as root")
	}
	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "l7"})
	require.NoError(t, err)
	var got, skipped, loUse, loSkipped []netip.Addr
	require.NoError(t, h.Do(func() (err error) {
		if got, skipped, err = InterfaceAddrs(h.Ifname); err != nil {
			return err
		}
		loUse, loSkipped, err = InterfaceAddrs("lo")
		return err
	}))
	assert.ElementsMatch(t, []netip.Addr{h.Addr4, h.Addr6}, got, "no link-local address")
	for _, a := range skipped {
		assert.True(t, a.IsLinkLocalUnicast(), "%s skipped", a)
	}
	// 127.0.0.1 and ::1 are never a tunnel's outer destination.
	assert.Empty(t, loUse)
	assert.Contains(t, loSkipped, netip.MustParseAddr("127.0.0.1"))
	_, _, err = InterfaceAddrs("xlbt-none")
	assert.ErrorContains(t, err, "no such interface")
}
