package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
	"github.com/xlbproject/xlb/test/topo"
)

// gueTunnel is a GUE encapsulator in the kernel's own terms, standing in
// for the balancer: packets routed into a TUN device are read by Go and sent
// as UDP datagrams (the kernel builds the outer IP and UDP headers, checksum
// included) to an L7 host's GUE port. Variant 1: the payload is the inner IP
// packet itself.
type gueTunnel struct {
	tun      *os.File
	udp4     net.PacketConn
	udp6     net.PacketConn
	dst4     netip.AddrPort
	dst6     netip.AddrPort
	outerV6  atomic.Bool // send over IPv6 instead of IPv4
	sent     atomic.Int64
	sendErrs atomic.Int64
	done     sync.WaitGroup
}

const tunName = "xlbgue0"

// newGUETunnel creates the TUN device in h's namespace, routes the VIPs
// into it and starts forwarding to l7's GUE port until the test ends.
func newGUETunnel(t *testing.T, h, l7 *topo.Host, port uint16, vips ...netip.Addr) *gueTunnel {
	t.Helper()
	g := &gueTunnel{dst4: netip.AddrPortFrom(l7.Addr4, port), dst6: netip.AddrPortFrom(l7.Addr6, port)}
	require.NoError(t, h.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open tun: %w", err)
		}
		ifr, err := unix.NewIfreq(tunName)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("create tun %s: %w", tunName, err)
		}
		g.tun = os.NewFile(uintptr(fd), tunName) // non-blocking: Close ends a Read
		l, err := netlink.LinkByName(tunName)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		for _, v := range vips {
			bits := 32
			if v.Is6() {
				bits = 128
			}
			dst := &net.IPNet{IP: v.AsSlice(), Mask: net.CIDRMask(bits, bits)}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst}); err != nil {
				return fmt.Errorf("route %s into %s: %w", v, tunName, err)
			}
		}
		return nil
	}))
	var err error
	g.udp4, err = h.ListenPacket("udp4", netip.AddrPortFrom(h.Addr4, 0).String())
	require.NoError(t, err)
	g.udp6, err = h.ListenPacket("udp6", netip.AddrPortFrom(h.Addr6, 0).String())
	require.NoError(t, err)
	g.done.Add(1)
	go g.run()
	t.Cleanup(func() {
		_ = g.tun.Close()
		g.done.Wait()
		_ = g.udp4.Close()
		_ = g.udp6.Close()
	})
	return g
}

func (g *gueTunnel) run() {
	defer g.done.Done()
	buf := make([]byte, 65536)
	for {
		n, err := g.tun.Read(buf)
		if err != nil {
			return // closed at the end of the test
		}
		c, dst := g.udp4, g.dst4
		if g.outerV6.Load() {
			c, dst = g.udp6, g.dst6
		}
		if _, err := c.WriteTo(buf[:n], net.UDPAddrFromAddrPort(dst)); err != nil {
			g.sendErrs.Add(1)
			continue
		}
		g.sent.Add(1)
	}
}

// TestVethGUE runs real TCP connections through GUE tunnels built by the
// kernel's UDP stack into the decapsulator, in every family pair: the L7
// host answers from the VIP straight to the client, sees the client's real
// address, and full-size segments arrive whole.
func TestVethGUE(t *testing.T) {
	for _, mode := range []xdplink.Mode{xdplink.ModeNative, xdplink.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) { testVethGUE(t, mode) })
	}
}

func testVethGUE(t *testing.T, mode xdplink.Mode) {
	const guePort = 6080
	tp := topo.NewT(t, topo.Options{})
	vip4 := netip.MustParseAddr("198.51.100.20")
	vip6 := netip.MustParseAddr("2001:db8:100::20")
	client, err := tp.AddHost(topo.HostConfig{Name: "client", NoOffloads: true})
	require.NoError(t, err)
	// The encapsulated datagrams are 28 or 48 bytes above the client's MTU.
	lb, err := tp.AddHost(topo.HostConfig{Name: "lb", MTU: topo.BridgeMTU, Router: true, RPFilterOff: true})
	require.NoError(t, err)
	l7, err := tp.AddHost(topo.HostConfig{Name: "l7", MTU: topo.BridgeMTU, VIPs: []netip.Addr{vip4, vip6}, RPFilterOff: true})
	require.NoError(t, err)
	require.NoError(t, client.AddRoute(netip.PrefixFrom(vip4, 32), lb.Addr4))
	require.NoError(t, client.AddRoute(netip.PrefixFrom(vip6, 128), lb.Addr6))
	g := newGUETunnel(t, lb, l7, guePort, vip4, vip6)

	d, err := decap.Open(decap.Config{GUEPort: guePort})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	require.NoError(t, d.SetAddrs([]netip.Addr{l7.Addr4, l7.Addr6}))
	require.NoError(t, l7.Do(func() error { return d.Attach(topo.HostIfname, mode) }))
	assert.Equal(t, mode, d.Mode())
	for _, vip := range []netip.Addr{vip4, vip6} {
		ln, err := l7.Listen("tcp", netip.AddrPortFrom(vip, 80).String())
		require.NoError(t, err)
		serve(t, ln, l7.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name    string
		vip     netip.Addr
		outerV6 bool
		gue     func(decap.Stats) uint64
	}{
		{"4-in-4", vip4, false, func(s decap.Stats) uint64 { return s.GUEV4.Packets }},
		{"6-in-6", vip6, true, func(s decap.Stats) uint64 { return s.GUEV6.Packets }},
		{"4-in-6", vip4, true, func(s decap.Stats) uint64 { return s.GUEV4.Packets }},
		{"6-in-4", vip6, false, func(s decap.Stats) uint64 { return s.GUEV6.Packets }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.outerV6.Store(tc.outerV6)
			before, err := d.Stats()
			require.NoError(t, err)
			src := client.Addr4
			if tc.vip.Is6() {
				src = client.Addr6
			}
			var nc net.Conn
			dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
			defer dcancel()
			// The first IPv6 connection can meet a path the kernel has not
			// finished setting up (the LB answers "no route" while the
			// tunnel device's IPv6 comes up); wait for that, and only that.
			var dialErr error
			require.Eventually(t, func() bool {
				dialErr = client.Do(func() (err error) {
					var dl net.Dialer
					nc, err = dl.DialContext(dctx, "tcp", netip.AddrPortFrom(tc.vip, 80).String())
					return err
				})
				return !errors.Is(dialErr, unix.ENETUNREACH)
			}, 30*time.Second, 50*time.Millisecond, "dial %s: %v", tc.vip, &dialErr)
			require.NoError(t, dialErr)
			defer nc.Close()
			require.NoError(t, nc.SetDeadline(time.Now().Add(time.Minute)))
			c := &conn{Conn: nc, r: bufio.NewReader(nc)}
			host, peer := c.ask(t, "hello")
			assert.Equal(t, l7.Name, host)
			assert.Equal(t, src.String(), netip.MustParseAddrPort(peer).Addr().String(), "the L7 host sees the client's real address")
			// 256 KiB up in MSS-sized segments: each one a full-size
			// GUE datagram.
			big := strings.Repeat("u", 256<<10)
			_, peer = c.ask(t, big)
			assert.NotEmpty(t, peer)

			after, err := d.Stats()
			require.NoError(t, err)
			assert.Greater(t, tc.gue(after)-tc.gue(before), uint64(100), "segments decapsulated from GUE")
			assert.Equal(t, before.Malformed.Packets, after.Malformed.Packets, "nothing malformed")
			assert.Equal(t, before.DecapV4.Packets+before.DecapV6.Packets, after.DecapV4.Packets+after.DecapV6.Packets, "no IP-in-IP here")
		})
	}
	assert.Zero(t, g.sendErrs.Load(), "every datagram sent (%d)", g.sent.Load())
	snmp, err := l7.ReadProcNet("snmp")
	require.NoError(t, err)
	assert.Zero(t, snmpField(t, string(snmp), "Tcp", "InCsumErrors"), "inner checksums intact")
}
