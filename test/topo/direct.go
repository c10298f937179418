package topo

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DirectConfig describes a veth pair that joins two hosts without the
// bridge (see Topology.Connect).
type DirectConfig struct {
	// Name is the interface's name at both ends (default "d0"); at most
	// 15 characters, unused in either namespace.
	Name string
	// Queues is the number of TX and RX queues at each end (default 1).
	// A veth sends an XDP frame to the peer's queue numbered by the
	// sending CPU, so a load spread over two CPUs needs 2.
	Queues int
	// MTU of both ends (default 1500).
	MTU int
	// AddrA and AddrB, when valid, are put on the A and B ends.
	AddrA, AddrB netip.Prefix
}

// LinkEnd is one end of a DirectLink, inside its host's namespace.
type LinkEnd struct {
	Host    *Host
	Ifname  string
	Ifindex int
	MAC     net.HardwareAddr
	Addr    netip.Prefix // AddrA or AddrB of the DirectConfig; may be invalid
}

// DirectLink is a veth pair between two hosts' namespaces: a point-to-point
// wire where one host's frames reach the other with no bridge in between
// (what a packet-rate measurement of a single XDP hop needs). It goes away
// with the namespaces when the topology is closed.
type DirectLink struct {
	A, B LinkEnd
}

// Connect creates a veth pair from a to b, brings both ends up and numbers
// them. The hosts keep their bridge interfaces.
func (tp *Topology) Connect(a, b *Host, cfg DirectConfig) (*DirectLink, error) {
	if cfg.Name == "" {
		cfg.Name = "d0"
	}
	if len(cfg.Name) > unix.IFNAMSIZ-1 || cfg.Name == HostIfname {
		return nil, fmt.Errorf("connect %s to %s: interface name %q is longer than 15 or is %q", a.Name, b.Name, cfg.Name, HostIfname)
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if a == b {
		return nil, fmt.Errorf("connect %s to itself", a.Name)
	}
	err := a.netlink(func(nl *netlink.Handle) error {
		err := b.ns.use(func(peer netns.NsHandle) error {
			return nl.LinkAdd(&netlink.Veth{
				LinkAttrs:       netlink.LinkAttrs{Name: cfg.Name, MTU: cfg.MTU, NumTxQueues: cfg.Queues, NumRxQueues: cfg.Queues},
				PeerName:        cfg.Name,
				PeerMTU:         uint32(cfg.MTU),
				PeerNumTxQueues: uint32(cfg.Queues),
				PeerNumRxQueues: uint32(cfg.Queues),
				PeerNamespace:   netlink.NsFd(int(peer)),
			})
		})
		if err != nil {
			return fmt.Errorf("create veth %s: %w", cfg.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
	}
	l := &DirectLink{}
	for _, e := range []struct {
		end  *LinkEnd
		host *Host
		addr netip.Prefix
	}{{&l.A, a, cfg.AddrA}, {&l.B, b, cfg.AddrB}} {
		*e.end = LinkEnd{Host: e.host, Ifname: cfg.Name, Addr: e.addr}
		if err := e.end.configure(); err != nil {
			return nil, fmt.Errorf("connect %s to %s: %w", a.Name, b.Name, err)
		}
	}
	return l, nil
}

func (e *LinkEnd) configure() error {
	return e.Host.netlink(func(nl *netlink.Handle) error {
		ln, err := nl.LinkByName(e.Ifname)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", e.Ifname, e.Host.Name, err)
		}
		e.Ifindex = ln.Attrs().Index
		e.MAC = ln.Attrs().HardwareAddr
		if e.Addr.IsValid() {
			addr := &netlink.Addr{IPNet: prefixNet(e.Addr), Flags: unix.IFA_F_NODAD}
			if err := nl.AddrAdd(ln, addr); err != nil {
				return fmt.Errorf("add %v to %s in %s: %w", e.Addr, e.Ifname, e.Host.Name, err)
			}
		}
		if err := nl.LinkSetUp(ln); err != nil {
			return fmt.Errorf("set %s up in %s: %w", e.Ifname, e.Host.Name, err)
		}
		return nil
	})
}

// AddRoute routes dst via gw out of this end.
func (e LinkEnd) AddRoute(dst netip.Prefix, gw netip.Addr) error {
	return e.Host.addRoute(e.Ifindex, dst, gw)
}

// AddNeigh adds a permanent neighbour entry on this end.
func (e LinkEnd) AddNeigh(ip netip.Addr, mac net.HardwareAddr) error {
	return e.Host.addNeigh(e.Ifindex, ip, mac)
}
