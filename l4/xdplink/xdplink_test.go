package xdplink

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/test/topo"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"auto", ModeAuto, true}, {"", ModeAuto, true},
		{"native", ModeNative, true}, {"driver", ModeNative, true}, {"drv", ModeNative, true},
		{"generic", ModeGeneric, true}, {"skb", ModeGeneric, true},
		{"offload", ModeAuto, false}, {"Native", ModeAuto, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if !tt.ok {
				assert.ErrorContains(t, err, "want auto, native or generic")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	for _, name := range ModeNames() {
		m, err := ParseMode(name)
		require.NoError(t, err)
		assert.Equal(t, name, m.String(), "canonical names round-trip")
		b, err := m.MarshalText()
		require.NoError(t, err)
		var back Mode
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, m, back)
	}
	_, err := Mode(7).MarshalText()
	assert.Error(t, err)
	assert.Equal(t, "mode7", Mode(7).String())
}

func TestAttachError(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{unix.EPERM, ErrNotPermitted}, {unix.EACCES, ErrNotPermitted},
		{unix.EBUSY, ErrBusy}, {unix.EEXIST, ErrBusy},
		{unix.EOPNOTSUPP, ErrUnsupported}, {unix.EINVAL, ErrUnsupported},
		{unix.ERANGE, ErrUnsupported}, {unix.ENOSPC, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			err := AttachError(fmt.Errorf("attach: %w", tt.err))
			assert.ErrorIs(t, err, tt.want)
			assert.ErrorIs(t, err, tt.err, "the kernel's error stays wrapped")
		})
	}
	other := errors.New("something else")
	assert.Equal(t, other, AttachError(other))
	assert.NoError(t, AttachError(nil))
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading and attaching XDP programs needs root (CAP_BPF, CAP_NET_ADMIN); CI runs this as root")
	}
}

// passProgram loads "return XDP_PASS" under name (distinct programs get
// distinct ids).
func passProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xlbt_xdplink", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func progID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	require.NoError(t, err)
	id, ok := info.ID()
	require.True(t, ok)
	return uint32(id)
}

// xdpState returns the program id on the host's interface (0: none) and
// the kernel's attach mode.
func xdpState(t *testing.T, h *topo.Host) (uint32, Mode) {
	t.Helper()
	var (
		id   uint32
		mode = ModeAuto
	)
	require.NoError(t, h.Do(func() error {
		l, err := netlink.LinkByName(h.Ifname)
		if err != nil {
			return err
		}
		x := l.Attrs().Xdp
		if x == nil || !x.Attached {
			return nil
		}
		id = x.ProgId
		switch x.AttachMode {
		case 1: // XDP_ATTACHED_DRV
			mode = ModeNative
		case 2: // XDP_ATTACHED_SKB
			mode = ModeGeneric
		}
		return nil
	}))
	return id, mode
}

// pinDir returns a fresh directory on bpffs, removed when the test ends.
func pinDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		t.Skip("bpffs is not mounted at /sys/fs/bpf (scripts/bpffs.sh mounts it)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	dir := filepath.Join("/sys/fs/bpf", "xlbt-xdplink-"+hex.EncodeToString(b[:]))
	require.NoError(t, PreparePinDir(dir))
	t.Cleanup(func() { assert.NoError(t, RemovePins(dir)) })
	return dir
}

func attachIn(h *topo.Host, prog *ebpf.Program, mode Mode) (l *Link, err error) {
	err = h.Do(func() error {
		l, err = Attach(prog, h.Ifname, mode, nil)
		return err
	})
	return l, err
}

// Every mode on a veth, whose driver has native XDP: auto takes native, and
// the mode reported is the one the kernel runs.
func TestAttachModes(t *testing.T) {
	requireRoot(t)
	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "x"})
	require.NoError(t, err)
	prog := passProgram(t)
	for _, tc := range []struct{ mode, used Mode }{
		{ModeNative, ModeNative},
		{ModeGeneric, ModeGeneric},
		{ModeAuto, ModeNative},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			l, err := attachIn(h, prog, tc.mode)
			require.NoError(t, err)
			assert.Equal(t, tc.used, l.Mode)
			assert.Equal(t, h.Ifname, l.Iface)
			id, kmode := xdpState(t, h)
			assert.Equal(t, progID(t, prog), id)
			assert.Equal(t, tc.used, kmode, "the kernel runs the mode Attach reported")
			require.NoError(t, l.Detach())
			id, _ = xdpState(t, h)
			assert.Zero(t, id, "detached")
		})
	}
}

// A veth whose peer's MTU is above a page cannot run native XDP (the kernel
// says ERANGE): native fails with ErrUnsupported, auto falls back to
// generic and says so.
func TestAttachAutoFallback(t *testing.T) {
	requireRoot(t)
	tp := topo.NewT(t, topo.Options{BridgeMTU: 9000})
	h, err := tp.AddHost(topo.HostConfig{Name: "x"})
	require.NoError(t, err)
	prog := passProgram(t)

	_, err = attachIn(h, prog, ModeNative)
	require.ErrorIs(t, err, ErrUnsupported)
	assert.ErrorContains(t, err, "native mode")
	id, _ := xdpState(t, h)
	require.Zero(t, id, "a failed native attach leaves nothing behind")

	l, err := attachIn(h, prog, ModeAuto)
	require.NoError(t, err)
	assert.Equal(t, ModeGeneric, l.Mode, "auto reports the fallback")
	id, kmode := xdpState(t, h)
	assert.Equal(t, progID(t, prog), id)
	assert.Equal(t, ModeGeneric, kmode)
	require.NoError(t, l.Detach())
}

func TestAttachErrors(t *testing.T) {
	requireRoot(t)
	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "x"})
	require.NoError(t, err)
	prog := passProgram(t)

	_, err = attachIn(h, prog, ModeAuto)
	require.NoError(t, err)
	for _, m := range []Mode{ModeNative, ModeGeneric, ModeAuto} {
		_, err = attachIn(h, prog, m)
		assert.ErrorIs(t, err, ErrBusy, "%s over an attached program", m)
	}
	_, err = attachIn(h, prog, Mode(9))
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = Attach(prog, "xlbt-no-such0", ModeAuto, nil)
	assert.ErrorIs(t, err, ErrNoInterface)
}

// Pin, then a "restart": the link outlives its process's file descriptor,
// Adopt switches it to a new program without a gap and reads its mode back
// from the kernel, and RemovePins detaches it.
func TestPinAdoptRemove(t *testing.T) {
	requireRoot(t)
	for _, mode := range []Mode{ModeNative, ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := pinDir(t)
			tp := topo.NewT(t, topo.Options{})
			h, err := tp.AddHost(topo.HostConfig{Name: "x"})
			require.NoError(t, err)
			old := passProgram(t)
			require.NoError(t, PinProgram(old, dir, "prog"))
			l, err := attachIn(h, old, mode)
			require.NoError(t, err)
			require.NoError(t, l.Pin(dir))
			assert.True(t, l.Pinned())
			require.NoError(t, l.Close(), "closing the fd of a pinned link")
			id, _ := xdpState(t, h)
			require.Equal(t, progID(t, old), id, "still attached after Close: the link is pinned")

			next := passProgram(t)
			require.NoError(t, PinProgram(next, dir, "prog"), "replaces the previous pin")
			var links []*Link
			require.NoError(t, h.Do(func() (err error) {
				links, err = Adopt(dir, next, nil)
				return err
			}))
			require.Len(t, links, 1)
			assert.Equal(t, h.Ifname, links[0].Iface)
			assert.Equal(t, mode, links[0].Mode, "the mode is read from the kernel")
			assert.True(t, links[0].Pinned())
			require.NoError(t, links[0].Close())
			id, kmode := xdpState(t, h)
			assert.Equal(t, progID(t, next), id, "the pinned link runs the new program")
			assert.Equal(t, mode, kmode)
			pinned, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog"), nil)
			require.NoError(t, err)
			assert.Equal(t, progID(t, next), progID(t, pinned))
			require.NoError(t, pinned.Close())

			// Adopted from outside the interface's namespace the
			// kernel cannot be asked: unknown, not a guess.
			links, err = Adopt(dir, next, nil)
			require.NoError(t, err)
			require.Len(t, links, 1)
			assert.Equal(t, ModeAuto, links[0].Mode)
			require.NoError(t, links[0].Close())

			require.NoError(t, RemovePins(dir))
			id, _ = xdpState(t, h)
			assert.Zero(t, id, "RemovePins detaches before it returns")
			_, err = os.Stat(dir)
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// A pinned link whose interface is gone is dropped, pin included.
func TestAdoptDefunct(t *testing.T) {
	requireRoot(t)
	dir := pinDir(t)
	tp := topo.NewT(t, topo.Options{})
	h, err := tp.AddHost(topo.HostConfig{Name: "x"})
	require.NoError(t, err)
	prog := passProgram(t)
	l, err := attachIn(h, prog, ModeGeneric)
	require.NoError(t, err)
	require.NoError(t, l.Pin(dir))
	require.NoError(t, l.Close())
	require.NoError(t, h.Do(func() error {
		nl, err := netlink.LinkByName(h.Ifname)
		if err != nil {
			return err
		}
		return netlink.LinkDel(nl)
	}))

	links, err := Adopt(dir, passProgram(t), nil)
	require.NoError(t, err)
	assert.Empty(t, links)
	_, err = os.Stat(LinkPinPath(dir, h.Ifname))
	assert.ErrorIs(t, err, os.ErrNotExist, "the defunct link's pin is removed")
}

func TestPinDirs(t *testing.T) {
	requireRoot(t)
	err := PreparePinDir(filepath.Join(t.TempDir(), "pins"))
	assert.ErrorIs(t, err, ErrNoBPFFS)
	pinDir(t) // skips without bpffs
	assert.ErrorContains(t, RemovePins("/sys/fs/bpf"), "root of a bpffs mount")
	assert.NoError(t, RemovePins("/sys/fs/bpf/xlbt-never-created"))
}

// A program the verifier rejects keeps its *ebpf.VerifierError reachable.
func TestLoadErrorVerifier(t *testing.T) {
	requireRoot(t)
	_, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xlbt_bad", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Return()}, // R0 never set
	})
	require.Error(t, err)
	err = LoadError(fmt.Errorf("load: %w", err), nil)
	var verr *ebpf.VerifierError
	assert.ErrorAs(t, err, &verr)
	assert.ErrorContains(t, err, "verifier rejected the program")
	assert.NotErrorIs(t, err, ErrNotPermitted)

	assert.ErrorIs(t, LoadError(unix.EPERM, nil), ErrNotPermitted)
	assert.ErrorIs(t, LoadError(ebpf.ErrMapIncompatible, nil), ebpf.ErrMapIncompatible)
}
