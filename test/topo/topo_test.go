package topo

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI runs this as root")
	}
}

// namespaces lists /run/netns entries of a prefix.
func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// echo serves one connection at a time, echoing until EOF.
func echo(t *testing.T, ln net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, msg, string(buf))
}

func TestCreateConnectTeardown(t *testing.T) {
	requireRoot(t)
	tp, err := New(Options{})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = tp.Close()
		}
	})

	a, err := tp.AddHost(HostConfig{Name: "client", NoOffloads: true, Queues: 2})
	require.NoError(t, err)
	b, err := tp.AddHost(HostConfig{Name: "l7-1", MTU: BridgeMTU, PeerXDPPass: true, RPFilterOff: true,
		VIPs: []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:100::1")}})
	require.NoError(t, err)
	gw, err := tp.AddHost(HostConfig{Name: "gw", Router: true})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{tp.NetNSName("br"), a.NetNS, b.NetNS, gw.NetNS}, namespaces(t, tp.Prefix()))
	assert.Equal(t, netip.MustParseAddr("10.99.0.1"), a.Addr4)
	assert.Equal(t, netip.MustParseAddr("fd00:99::2"), b.Addr6)
	assert.Same(t, b, tp.Host("l7-1"))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("tcp between namespaces", func(t *testing.T) {
		for _, dst := range []netip.Addr{b.Addr4, b.Addr6} {
			ln, err := b.Listen("tcp", netip.AddrPortFrom(dst, 7000).String())
			require.NoError(t, err)
			echo(t, ln)
			c, err := a.DialContext(ctx, "tcp", netip.AddrPortFrom(dst, 7000).String())
			require.NoError(t, err)
			roundTrip(t, c, "hello "+dst.String())
			_ = c.Close()
			_ = ln.Close()
		}
	})

	t.Run("vip on lo via route", func(t *testing.T) {
		vip := netip.MustParseAddr("198.51.100.1")
		ln, err := b.Listen("tcp", netip.AddrPortFrom(vip, 80).String())
		require.NoError(t, err)
		defer ln.Close()
		echo(t, ln)
		require.NoError(t, a.AddRoute(netip.PrefixFrom(vip, 32), b.Addr4))
		c, err := a.DialContext(ctx, "tcp", "198.51.100.1:80")
		require.NoError(t, err)
		defer c.Close()
		roundTrip(t, c, "to the vip")
		assert.Equal(t, a.Addr4.String(), c.LocalAddr().(*net.TCPAddr).AddrPort().Addr().String())
	})

	t.Run("settings", func(t *testing.T) {
		tests := []struct {
			host *Host
			key  string
			want string
		}{
			{b, "net.ipv4.conf.all.arp_ignore", "1"},
			{b, "net.ipv4.conf.all.arp_announce", "2"},
			{b, "net.ipv4.conf.all.rp_filter", "0"},
			{b, "net.ipv4.conf.eth0.rp_filter", "0"},
			{a, "net.ipv4.conf.all.arp_ignore", "0"},
			{a, "net.ipv4.ip_forward", "0"},
			{gw, "net.ipv4.ip_forward", "1"},
			{gw, "net.ipv6.conf.all.forwarding", "1"},
			{gw, "net.ipv4.conf.all.send_redirects", "0"},
			{gw, "net.ipv4.conf.eth0.send_redirects", "0"},
		}
		for _, tt := range tests {
			got, err := tt.host.Sysctl(tt.key)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "%s %s", tt.host.Name, tt.key)
		}
		// Not /sys/class/net: nsenter --net keeps the caller's /sys.
		mtu := func(h *Host, ifname string) string {
			out, err := h.Run(ctx, "ip", "-o", "link", "show", ifname)
			require.NoError(t, err)
			f := strings.Fields(string(out))
			for i := range f[:len(f)-1] {
				if f[i] == "mtu" {
					return f[i+1]
				}
			}
			return ""
		}
		assert.Equal(t, "1500", mtu(a, "eth0"))
		assert.Equal(t, strconv.Itoa(BridgeMTU), mtu(b, "eth0"))

		out, err := a.Run(ctx, "ethtool", "-k", "eth0")
		require.NoError(t, err)
		// The TSO group also lists features the legacy ioctl leaves alone
		// (AccECN segmentation), so check the members that matter.
		for _, f := range []string{"tx-checksumming: off", "tx-tcp-segmentation: off", "tx-tcp6-segmentation: off", "generic-segmentation-offload: off"} {
			assert.Contains(t, string(out), f)
		}
		out, err = a.Run(ctx, "ip", "-d", "link", "show", "eth0")
		require.NoError(t, err)
		assert.Contains(t, string(out), "numtxqueues 2 numrxqueues 2", "two queues for two generator threads")
		out, err = b.Run(ctx, "ip", "-d", "link", "show", "eth0")
		require.NoError(t, err)
		assert.NotContains(t, string(out), "xdp", "the pass program sits on the bridge side, not on the host")

		out, err = tp.bridgeCommand(ctx, "ip", "-d", "link", "show", b.Port)
		require.NoError(t, err)
		assert.Contains(t, string(out), "prog/xdp", "pass program on the bridge side of l7-1")
		out, err = tp.bridgeCommand(ctx, "ip", "-d", "link", "show", a.Port)
		require.NoError(t, err)
		assert.NotContains(t, string(out), "prog/xdp", "none on the client's port")
		snmp, err := a.ReadProcNet("snmp")
		require.NoError(t, err)
		assert.Contains(t, string(snmp), "InCsumErrors")
	})

	t.Run("link stats", func(t *testing.T) {
		host, port, err := a.LinkStats()
		require.NoError(t, err)
		assert.Positive(t, host.TxPackets)
		// What the host sent arrived at its port.
		assert.Equal(t, host.TxPackets, port.RxPackets)
	})

	require.NoError(t, tp.Close())
	closed = true
	assert.Empty(t, namespaces(t, tp.Prefix()))
	_, err = os.Stat(tp.ownerFile())
	assert.True(t, os.IsNotExist(err), "owner file removed")
	assert.NoError(t, tp.Close(), "second Close")
	_, err = tp.AddHost(HostConfig{Name: "late"})
	assert.ErrorIs(t, err, net.ErrClosed)
}

func TestAddHostErrors(t *testing.T) {
	tp := NewT(t, Options{})
	_, err := tp.AddHost(HostConfig{Name: "a"})
	require.NoError(t, err)
	tests := []struct {
		name string
		cfg  HostConfig
	}{
		{"duplicate", HostConfig{Name: "a"}},
		{"bridge name", HostConfig{Name: "br"}},
		{"too long", HostConfig{Name: "abcdefghijklmn"}},
		{"bad chars", HostConfig{Name: "a/b"}},
		{"mtu above bridge", HostConfig{Name: "big", MTU: BridgeMTU + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tp.AddHost(tt.cfg)
			assert.Error(t, err)
		})
	}
	assert.Len(t, tp.Hosts(), 1)
}

// A failure half-way through building a host (here: a VIP that cannot be
// added twice) must still leave nothing behind after Close.
func TestTeardownAfterFailure(t *testing.T) {
	requireRoot(t)
	tp, err := New(Options{})
	require.NoError(t, err)
	vip := netip.MustParseAddr("198.51.100.9")
	_, err = tp.AddHost(HostConfig{Name: "bad", VIPs: []netip.Addr{vip, vip}})
	require.Error(t, err, "the same VIP twice fails")
	assert.NotEmpty(t, namespaces(t, tp.Prefix()))
	require.NoError(t, tp.Close())
	assert.Empty(t, namespaces(t, tp.Prefix()))
}

// A host used while and after its topology closes gets an error, never a
// stale descriptor: net/http finishes a dial it started for a request that
// was cancelled meanwhile, and that dial can run after the test's cleanup
// (run with -race: closing used to race with the dial's setns).
func TestUseWhileClosing(t *testing.T) {
	requireRoot(t)
	tp, err := New(Options{})
	require.NoError(t, err)
	h, err := tp.AddHost(HostConfig{Name: "a"})
	require.NoError(t, err)

	var entered atomic.Int64
	done := make(chan error, 1)
	go func() {
		// Bounded in time, not in count: the loop must still run when
		// Close comes, however fast the machine.
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			if err := h.Do(func() error { return nil }); err != nil {
				done <- err
				return
			}
			entered.Add(1)
		}
		done <- nil
	}()
	require.Eventually(t, func() bool { return entered.Load() > 0 }, 30*time.Second, time.Millisecond)
	require.NoError(t, tp.Close())
	assert.ErrorIs(t, <-done, errNSClosed, "the loop ends with the close, after %d entries", entered.Load())

	assert.ErrorIs(t, h.Do(func() error { return nil }), errNSClosed)
	_, err = h.DialContext(context.Background(), "tcp", "127.0.0.1:1")
	assert.ErrorIs(t, err, errNSClosed)
	assert.ErrorIs(t, h.netlink(func(*netlink.Handle) error { return nil }), errNSClosed)
}

// Leftovers of a run that died without Close are removed by CleanupStale;
// a live topology is left alone.
func TestCleanupStale(t *testing.T) {
	requireRoot(t)
	live := NewT(t, Options{})
	_, err := live.AddHost(HostConfig{Name: "x"})
	require.NoError(t, err)

	dead, err := New(Options{})
	require.NoError(t, err)
	_, err = dead.AddHost(HostConfig{Name: "y"})
	require.NoError(t, err)
	// Pretend its owner is a process that has exited: our child.
	cmd := deadPID(t)
	require.NoError(t, os.WriteFile(dead.ownerFile(), []byte(strconv.Itoa(cmd)), 0o644))
	// Drop the handles without removing anything, as a crash would.
	for _, h := range dead.Hosts() {
		h.ns.close()
	}
	dead.brNS.close()

	require.NoError(t, CleanupStale())
	assert.Empty(t, namespaces(t, dead.Prefix()))
	_, err = os.Stat(filepath.Join(ownerDir, dead.Prefix()))
	assert.True(t, os.IsNotExist(err))
	assert.Len(t, namespaces(t, live.Prefix()), 2, "live topology kept")
}

// deadPID runs `true` and returns its (now dead) PID.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	require.NoError(t, err)
	_, err = p.Wait()
	require.NoError(t, err)
	return p.Pid
}

func TestNthAddr(t *testing.T) {
	tests := []struct {
		prefix string
		n      int
		want   string
		ok     bool
	}{
		{"10.99.0.0/24", 1, "10.99.0.1", true},
		{"10.99.0.0/24", 254, "10.99.0.254", true},
		{"10.99.0.0/24", 255, "", false}, // broadcast
		{"10.99.0.0/30", 2, "10.99.0.2", true},
		{"10.99.0.0/30", 3, "", false},
		{"fd00:99::/64", 3, "fd00:99::3", true},
	}
	for _, tt := range tests {
		got, ok := nthAddr(netip.MustParsePrefix(tt.prefix), tt.n)
		assert.Equal(t, tt.ok, ok, "%s #%d", tt.prefix, tt.n)
		if tt.ok {
			assert.Equal(t, tt.want, got.String())
		}
	}
}

func (tp *Topology) bridgeCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	h := &Host{Name: "br", NetNS: tp.NetNSName("br")}
	return h.Run(ctx, name, args...)
}

func TestConnectDirect(t *testing.T) {
	tp := NewT(t, Options{})
	a, err := tp.AddHost(HostConfig{Name: "a"})
	require.NoError(t, err)
	b, err := tp.AddHost(HostConfig{Name: "b"})
	require.NoError(t, err)
	l, err := tp.Connect(a, b, DirectConfig{
		Queues: 2,
		AddrA:  netip.MustParsePrefix("10.98.0.1/30"),
		AddrB:  netip.MustParsePrefix("10.98.0.2/30"),
	})
	require.NoError(t, err)
	assert.Equal(t, "d0", l.A.Ifname)
	assert.NotEqual(t, l.A.MAC.String(), l.B.MAC.String())
	assert.NotZero(t, l.B.Ifindex)

	// A static neighbour: the frames cross the direct link, never the bridge.
	require.NoError(t, l.A.AddNeigh(netip.MustParseAddr("10.98.0.2"), l.B.MAC))
	ln, err := b.Listen("tcp", "10.98.0.2:7")
	require.NoError(t, err)
	defer ln.Close()
	echo(t, ln)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "10.98.0.2:7")
	require.NoError(t, err)
	defer c.Close()
	roundTrip(t, c, "over the direct link")

	_, err = tp.Connect(a, a, DirectConfig{Name: "d1"})
	assert.Error(t, err)
	_, err = tp.Connect(a, b, DirectConfig{Name: HostIfname})
	assert.Error(t, err)
}
