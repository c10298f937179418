package topo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// HostConfig describes one host namespace.
type HostConfig struct {
	// Name is the host's short name ("client", "lb", "l7-1"): letters,
	// digits and '-', at most 13 characters (the bridge port is "p-"+Name).
	Name string
	// MTU of the host's interface (default 1500). L7 hosts that receive
	// IP-in-IP need BridgeMTU.
	MTU int
	// Queues is the number of TX and RX queues of the veth pair
	// (default 1); 2 lets an XDP program use both cores.
	Queues int
	// VIPs are put on the host's loopback, with arp_ignore=1 and
	// arp_announce=2 so the host never answers ARP for them: a
	// direct-server-return host.
	VIPs []netip.Addr
	// NoOffloads turns off TX checksum offload, TSO and GSO on the host's
	// interface, for hosts whose traffic an XDP program forwards.
	NoOffloads bool
	// PeerXDPPass attaches a trivial XDP_PASS program to the bridge-side
	// port, which native XDP_TX on the host's interface needs to deliver.
	PeerXDPPass bool
	// RPFilterOff sets rp_filter=0 on all of the host's interfaces, for
	// hosts that receive packets whose source is not routed back the same
	// way.
	RPFilterOff bool
	// Router makes the host a one-armed router: it forwards IPv4 and IPv6
	// back out of its one interface and sends no ICMP redirects (the
	// balancer's configured next hop in the tests and the demo).
	Router bool
}

// Host is one namespace with one interface on the bridge.
type Host struct {
	// Name is the short name given in HostConfig.
	Name string
	// NetNS is the namespace name; its path is NetNSPath.
	NetNS string
	// Ifname and Ifindex name the host's interface inside its namespace.
	Ifname  string
	Ifindex int
	// MAC is the interface's hardware address.
	MAC net.HardwareAddr
	// Addr4 and Addr6 are the interface's addresses; Prefix4 and Prefix6
	// the on-link subnets.
	Addr4, Addr6     netip.Addr
	Prefix4, Prefix6 netip.Prefix
	// Port and PortIndex name the bridge-side end in the bridge namespace.
	Port      string
	PortIndex int

	ns   *nsHandle
	topo *Topology
}

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,12}$`)

// AddHost creates a host namespace, its veth pair to the bridge, addresses
// and settings. Hosts are numbered in the order they are added.
func (tp *Topology) AddHost(cfg HostConfig) (*Host, error) {
	if !hostName.MatchString(cfg.Name) || cfg.Name == "br" {
		return nil, fmt.Errorf("add host %q: name must be 1-13 of [a-z0-9-] and not \"br\"", cfg.Name)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU > tp.mtu {
		return nil, fmt.Errorf("add host %q: MTU %d above the bridge's %d (frames would be dropped silently)", cfg.Name, cfg.MTU, tp.mtu)
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		return nil, fmt.Errorf("add host %q: %w", cfg.Name, net.ErrClosed)
	}
	if tp.byName[cfg.Name] != nil {
		return nil, fmt.Errorf("add host %q: name taken", cfg.Name)
	}
	n := len(tp.hosts) + 1
	a4, ok4 := nthAddr(tp.sub4, n)
	a6, ok6 := nthAddr(tp.sub6, n)
	if !ok4 || !ok6 {
		return nil, fmt.Errorf("add host %q: subnets %v, %v are full", cfg.Name, tp.sub4, tp.sub6)
	}
	h := &Host{
		Name: cfg.Name, NetNS: tp.NetNSName(cfg.Name), Ifname: HostIfname,
		Addr4: a4, Addr6: a6, Prefix4: tp.sub4, Prefix6: tp.sub6,
		Port: "p-" + cfg.Name, topo: tp,
	}
	var err error
	if h.ns, err = newNamedNS(h.NetNS); err != nil {
		return nil, fmt.Errorf("add host %q: %w", cfg.Name, err)
	}
	// Registered now so that Close removes a half-built host too.
	tp.hosts = append(tp.hosts, h)
	tp.byName[h.Name] = h
	if err := tp.wire(h, cfg); err != nil {
		return nil, fmt.Errorf("add host %q: %w", cfg.Name, err)
	}
	if err := h.configure(cfg); err != nil {
		return nil, fmt.Errorf("add host %q: %w", cfg.Name, err)
	}
	if cfg.PeerXDPPass {
		if err := tp.attachPassLocked(h); err != nil {
			return nil, fmt.Errorf("add host %q: %w", cfg.Name, err)
		}
	}
	tp.log.Info("host added", "host", h.Name, "addr4", h.Addr4, "addr6", h.Addr6)
	return h, nil
}

// nthAddr returns the n-th address of p (n=1 is the first after the
// network address), or false when p has no such address.
func nthAddr(p netip.Prefix, n int) (netip.Addr, bool) {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a, a.IsValid() && p.Contains(a) && a.Next().IsValid() && p.Contains(a.Next())
}

// wire creates the veth pair in the bridge namespace, moves the host end
// into h's namespace and enslaves the port to the bridge.
func (tp *Topology) wire(h *Host, cfg HostConfig) error {
	nl, err := tp.brNS.netlink()
	if err != nil {
		return fmt.Errorf("open netlink in bridge netns: %w", err)
	}
	defer nl.Close()
	err = h.ns.use(func(peer netns.NsHandle) error {
		return nl.LinkAdd(&netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{
				Name: h.Port, MTU: tp.mtu, MasterIndex: tp.brIndex,
				NumTxQueues: cfg.Queues, NumRxQueues: cfg.Queues,
			},
			PeerName:        h.Ifname,
			PeerMTU:         uint32(cfg.MTU),
			PeerNumTxQueues: uint32(cfg.Queues),
			PeerNumRxQueues: uint32(cfg.Queues),
			PeerNamespace:   netlink.NsFd(int(peer)),
		})
	})
	if err != nil {
		return fmt.Errorf("create veth %s: %w", h.Port, err)
	}
	port, err := nl.LinkByName(h.Port)
	if err != nil {
		return fmt.Errorf("find port %s: %w", h.Port, err)
	}
	h.PortIndex = port.Attrs().Index
	if err := nl.LinkSetUp(port); err != nil {
		return fmt.Errorf("set %s up: %w", h.Port, err)
	}
	return nil
}

// configure sets addresses, routes and sysctls inside h's namespace.
func (h *Host) configure(cfg HostConfig) error {
	nl, err := h.ns.netlink()
	if err != nil {
		return fmt.Errorf("open netlink in netns: %w", err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	eth, err := nl.LinkByName(h.Ifname)
	if err != nil {
		return fmt.Errorf("find %s: %w", h.Ifname, err)
	}
	h.Ifindex = eth.Attrs().Index
	h.MAC = eth.Attrs().HardwareAddr
	for _, a := range []netip.Prefix{
		netip.PrefixFrom(h.Addr4, h.Prefix4.Bits()),
		netip.PrefixFrom(h.Addr6, h.Prefix6.Bits()),
	} {
		// NODAD: a test must not wait seconds for duplicate detection.
		addr := &netlink.Addr{IPNet: prefixNet(a), Flags: unix.IFA_F_NODAD}
		if err := nl.AddrAdd(eth, addr); err != nil {
			return fmt.Errorf("add %v to %s: %w", a, h.Ifname, err)
		}
	}
	// No duplicate address detection for the link-local address either:
	// until it finishes, neighbour discovery stalls the first IPv6 packets
	// for seconds. Set before the link goes up, which adds the address.
	for _, ifc := range []string{"all", "default", h.Ifname} {
		if err := h.SetSysctl("net.ipv6.conf."+ifc+".accept_dad", "0"); err != nil {
			return err
		}
	}
	if err := nl.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up: %w", h.Ifname, err)
	}
	if cfg.RPFilterOff {
		for _, ifc := range []string{"all", "default", h.Ifname} {
			if err := h.SetSysctl("net.ipv4.conf."+ifc+".rp_filter", "0"); err != nil {
				return err
			}
		}
	}
	if cfg.Router {
		for _, kv := range [][2]string{
			{"net.ipv4.ip_forward", "1"},
			{"net.ipv6.conf.all.forwarding", "1"},
			// One-armed: without this the router would tell the sender
			// to go to the next hop directly, and the sender would.
			{"net.ipv4.conf.all.send_redirects", "0"},
			{"net.ipv4.conf." + h.Ifname + ".send_redirects", "0"},
		} {
			if err := h.SetSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	if cfg.NoOffloads {
		if err := h.SetOffloads(false); err != nil {
			return err
		}
	}
	for _, vip := range cfg.VIPs {
		if err := h.AddVIP(vip); err != nil {
			return err
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// NetNSPath is the namespace's bind mount, for nsenter --net= or
// netns.GetFromPath.
func (h *Host) NetNSPath() string { return filepath.Join(netnsDir, h.NetNS) }

// Do runs fn inside the host's namespace on a locked OS thread. Sockets,
// netlink handles and XDP attachments made there belong to the namespace;
// goroutines fn starts do not.
func (h *Host) Do(fn func() error) error { return inNS(h.ns, fn) }

// Listen creates a listener inside the host's namespace (e.g.
// Listen("tcp", "198.51.100.1:80") on a VIP). It stays in the namespace:
// Accept from any goroutine.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, h.Name, err)
	}
	return ln, nil
}

// ListenPacket is Listen for UDP and other packet sockets.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, h.Name, err)
	}
	return pc, nil
}

// DialContext connects from inside the host's namespace. Connect runs in
// the namespace; the returned connection works from any goroutine.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, h.Name, err)
	}
	return c, nil
}

// Dialer returns a dial function bound to the host's namespace, for
// http.Transport.DialContext and fasthttp clients.
func (h *Host) Dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.DialContext
}

// Command prepares name with args to run inside the host's namespace
// through nsenter --net, which keeps the caller's /sys and bpffs.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.NetNSPath(), "--", name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %s %s in %s: %w: %s", name, strings.Join(args, " "), h.Name, err, out)
	}
	return out, nil
}

// SetSysctl writes a sysctl ("net.ipv4.conf.all.arp_ignore") of the host's
// namespace.
func (h *Host) SetSysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := h.Do(func() error { return os.WriteFile(p, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s in %s: %w", key, value, h.Name, err)
	}
	return nil
}

// Sysctl reads a sysctl of the host's namespace.
func (h *Host) Sysctl(key string) (string, error) {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var b []byte
	err := h.Do(func() (err error) {
		b, err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in %s: %w", key, h.Name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadProcNet reads /proc/net/<name> ("snmp", "netstat") of the host's
// namespace. (/proc/net follows the process's main thread, so this goes
// through /proc/thread-self on the namespace's thread.)
func (h *Host) ReadProcNet(name string) ([]byte, error) {
	var b []byte
	err := h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read /proc/net/%s in %s: %w", name, h.Name, err)
	}
	return b, nil
}

// AddVIP puts vip on the host's loopback and makes the host silent about
// it on ARP (arp_ignore=1, arp_announce=2), as a DSR host must be.
func (h *Host) AddVIP(vip netip.Addr) error {
	vip = vip.Unmap()
	for _, kv := range [][2]string{
		{"net.ipv4.conf.all.arp_ignore", "1"},
		{"net.ipv4.conf.all.arp_announce", "2"},
	} {
		if err := h.SetSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	bits := 32
	if vip.Is6() {
		bits = 128
	}
	return h.netlink(func(nl *netlink.Handle) error {
		lo, err := nl.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(vip, bits)), Flags: unix.IFA_F_NODAD}
		if err := nl.AddrAdd(lo, addr); err != nil {
			return fmt.Errorf("add vip %v to lo in %s: %w", vip, h.Name, err)
		}
		return nil
	})
}

// AddRoute routes dst via the gateway gw on the host's interface (e.g.
// a VIP via the LB host's address).
func (h *Host) AddRoute(dst netip.Prefix, gw netip.Addr) error {
	return h.addRoute(h.Ifindex, dst, gw)
}

func (h *Host) addRoute(ifindex int, dst netip.Prefix, gw netip.Addr) error {
	return h.netlink(func(nl *netlink.Handle) error {
		r := &netlink.Route{LinkIndex: ifindex, Dst: prefixNet(dst.Masked()), Gw: gw.AsSlice()}
		if err := nl.RouteAdd(r); err != nil {
			return fmt.Errorf("add route %v via %v in %s: %w", dst, gw, h.Name, err)
		}
		return nil
	})
}

// AddNeigh adds a permanent neighbour entry on the host's interface, so a
// test does not depend on ARP/ND timing.
func (h *Host) AddNeigh(ip netip.Addr, mac net.HardwareAddr) error {
	return h.addNeigh(h.Ifindex, ip, mac)
}

func (h *Host) addNeigh(ifindex int, ip netip.Addr, mac net.HardwareAddr) error {
	return h.netlink(func(nl *netlink.Handle) error {
		fam := unix.AF_INET
		if ip.Is6() {
			fam = unix.AF_INET6
		}
		n := &netlink.Neigh{LinkIndex: ifindex, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := nl.NeighSet(n); err != nil {
			return fmt.Errorf("add neighbour %v in %s: %w", ip, h.Name, err)
		}
		return nil
	})
}

// LinkStats returns the counters of the host's interface and of its
// bridge-side port (what the bridge sent to and received from the host).
func (h *Host) LinkStats() (host, port *netlink.LinkStatistics, err error) {
	err = h.netlink(func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(h.Ifindex)
		if err != nil {
			return fmt.Errorf("find %s: %w", h.Ifname, err)
		}
		host = l.Attrs().Statistics
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	nl, err := h.topo.brNS.netlink()
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink in bridge netns: %w", err)
	}
	defer nl.Close()
	l, err := nl.LinkByIndex(h.PortIndex)
	if err != nil {
		return nil, nil, fmt.Errorf("find %s: %w", h.Port, err)
	}
	return host, l.Attrs().Statistics, nil
}

// AttachPeerXDPPass attaches the trivial XDP_PASS program to the host's
// bridge-side port (see HostConfig.PeerXDPPass). Idempotent per host is
// not guaranteed: call it once.
func (h *Host) AttachPeerXDPPass() error {
	h.topo.mu.Lock()
	defer h.topo.mu.Unlock()
	return h.topo.attachPassLocked(h)
}

func (tp *Topology) attachPassLocked(h *Host) error {
	if tp.pass == nil {
		p, err := newPassProgram()
		if err != nil {
			return err
		}
		tp.pass = p
	}
	var l link.Link
	// XDP attaches by ifindex in the caller's namespace.
	err := tp.BridgeDo(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: tp.pass, Interface: h.PortIndex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return fmt.Errorf("attach xdp pass to %s: %w", h.Port, err)
	}
	tp.links = append(tp.links, l)
	return nil
}

func (h *Host) netlink(fn func(*netlink.Handle) error) error {
	nl, err := h.ns.netlink()
	if err != nil {
		return fmt.Errorf("open netlink in %s: %w", h.Name, err)
	}
	defer nl.Close()
	return fn(nl)
}

// Unplug deletes the host's veth pair: the host drops off the bridge as
// when its cable is pulled (the other hosts see no link change, only
// silence).
func (h *Host) Unplug() error {
	nl, err := h.topo.brNS.netlink()
	if err != nil {
		return fmt.Errorf("open netlink in bridge netns: %w", err)
	}
	defer nl.Close()
	port, err := nl.LinkByName(h.Port)
	if err != nil {
		return fmt.Errorf("find port %s: %w", h.Port, err)
	}
	if err := nl.LinkDel(port); err != nil {
		return fmt.Errorf("delete port %s: %w", h.Port, err)
	}
	return nil
}

// SetMAC gives the host's interface a new hardware address (and h.MAC), as
// when a router fails over to a standby with another MAC. Its neighbours
// learn it only from a new ARP/ND exchange or a gratuitous announcement.
func (h *Host) SetMAC(mac net.HardwareAddr) error {
	return h.netlink(func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(h.Ifindex)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", h.Ifname, h.Name, err)
		}
		if err := nl.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("set %s's MAC in %s: %w", h.Ifname, h.Name, err)
		}
		h.MAC = mac
		return nil
	})
}

// SetLink sets the host's interface up or down. Down, the host goes
// silent: its bridge port loses carrier, but the other hosts' links stay
// up and see nothing but silence.
func (h *Host) SetLink(up bool) error {
	return h.netlink(func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(h.Ifindex)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", h.Ifname, h.Name, err)
		}
		if up {
			err = nl.LinkSetUp(l)
		} else {
			err = nl.LinkSetDown(l)
		}
		if err != nil {
			return fmt.Errorf("set %s in %s up=%v: %w", h.Ifname, h.Name, up, err)
		}
		return nil
	})
}
