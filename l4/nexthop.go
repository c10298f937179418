package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NextHop is what the kernel's routing and neighbour tables say about
// reaching an L7 host: the same tables bpf_fib_lookup reads for every
// frame when no NextHopMAC is configured.
type NextHop struct {
	Backend netip.Addr
	Iface   string     // egress interface, empty without a route
	Gateway netip.Addr // the router on the way; invalid when on-link
	MAC     net.HardwareAddr
	// State is the neighbour entry's state: "reachable", "stale",
	// "delay", "probe", "permanent", "noarp", "incomplete", "failed",
	// "none" (no entry yet), "no route", or "local" (an address of this
	// host, which the balancer cannot forward to).
	State string
	// Managed is true when the kernel keeps the entry resolved by itself
	// (a managed neighbour entry, see EnsureNextHop).
	Managed bool
}

// Resolved says whether the balancer can forward to the host now: a route
// and a neighbour entry with a usable MAC.
func (n NextHop) Resolved() bool {
	switch n.State {
	case "reachable", "stale", "delay", "probe", "permanent", "noarp":
		return true
	}
	return false
}

// Neighbour address: the gateway, or the host itself when on-link.
func (n NextHop) neighbour() netip.Addr {
	if n.Gateway.IsValid() {
		return n.Gateway
	}
	return n.Backend
}

// LookupNextHop reads the next hop towards backend from the calling
// thread's network namespace. An error means the tables could not be
// read; a missing route or neighbour is a State, not an error.
func LookupNextHop(backend netip.Addr) (NextHop, error) {
	backend = backend.Unmap()
	nh := NextHop{Backend: backend, State: "no route"}
	routes, err := netlink.RouteGet(backend.AsSlice())
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) || (err == nil && len(routes) == 0) {
		return nh, nil
	}
	if err != nil {
		return nh, fmt.Errorf("look up route to %s: %w", backend, err)
	}
	r := routes[0]
	if r.Type == unix.RTN_LOCAL {
		nh.State = "local"
		return nh, nil
	}
	if r.Type != unix.RTN_UNICAST || r.LinkIndex == 0 {
		return nh, nil
	}
	link, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return nh, fmt.Errorf("look up interface %d of the route to %s: %w", r.LinkIndex, backend, err)
	}
	nh.Iface = link.Attrs().Name
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
		nh.Gateway = gw.Unmap()
	}
	nh.State = "none"
	neighs, err := netlink.NeighList(r.LinkIndex, familyNum(backend))
	if err != nil {
		return nh, fmt.Errorf("list neighbours on %s: %w", nh.Iface, err)
	}
	want := nh.neighbour()
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == want {
			nh.State = nudName(n.State)
			nh.Managed = n.FlagsExt&netlink.NTF_EXT_MANAGED != 0
			if nh.Resolved() {
				nh.MAC = n.HardwareAddr
			}
			break
		}
	}
	return nh, nil
}

// EnsureNextHop makes the kernel resolve the next hop towards backend and
// keep it resolved: when its neighbour entry is missing or not usable, it
// adds a managed entry (NTF_EXT_MANAGED, Linux 5.16), which the kernel
// probes by itself and keeps reachable without traffic of its own. That is
// what resolves the neighbour after the data path counted fib_no_neigh and
// passed the packet: XDP has no way to queue a frame on an unresolved
// neighbour. It returns the next hop as it was before any change.
func EnsureNextHop(backend netip.Addr) (NextHop, error) {
	nh, err := LookupNextHop(backend)
	if err != nil || nh.Iface == "" || nh.Resolved() || nh.Managed {
		return nh, err
	}
	link, err := netlink.LinkByName(nh.Iface)
	if err != nil {
		return nh, fmt.Errorf("look up interface %s: %w", nh.Iface, err)
	}
	n := &netlink.Neigh{
		LinkIndex: link.Attrs().Index,
		Family:    familyNum(backend),
		IP:        nh.neighbour().AsSlice(),
		State:     netlink.NUD_NONE,
		FlagsExt:  netlink.NTF_EXT_MANAGED,
	}
	if err := netlink.NeighSet(n); err != nil {
		return nh, fmt.Errorf("add managed neighbour %s on %s: %w", nh.neighbour(), nh.Iface, err)
	}
	return nh, nil
}

func familyNum(a netip.Addr) int {
	if a.Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func nudName(s int) string {
	switch {
	case s&netlink.NUD_PERMANENT != 0:
		return "permanent"
	case s&netlink.NUD_NOARP != 0:
		return "noarp"
	case s&netlink.NUD_REACHABLE != 0:
		return "reachable"
	case s&netlink.NUD_STALE != 0:
		return "stale"
	case s&netlink.NUD_DELAY != 0:
		return "delay"
	case s&netlink.NUD_PROBE != 0:
		return "probe"
	case s&netlink.NUD_INCOMPLETE != 0:
		return "incomplete"
	case s&netlink.NUD_FAILED != 0:
		return "failed"
	}
	return "none"
}

// FlushNextHops empties every CPU's cache of FIB answers (next_hop_map):
// the next packet to each backend asks the FIB again. For a change of the
// kernel's neighbour or route tables (a router's MAC, a failover), which
// the data path would otherwise follow only after Config.NextHopTTL.
func (d *Dataplane) FlushNextHops() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flushNextHopsLocked()
}

func (d *Dataplane) flushNextHopsLocked() error {
	empty := make([]xlbNextHopEntry, d.ncpu)
	for id := uint32(0); id < d.cfg.MaxBackends; id++ {
		if _, used := d.backends[BackendID(id)]; !used {
			continue
		}
		if err := d.objs.NextHopMap.Put(id, empty); err != nil {
			return fmt.Errorf("flush next hop of backend %d: %w", id, err)
		}
	}
	return nil
}

// WatchNextHops empties the next-hop cache (FlushNextHops) whenever the
// kernel's neighbour or route tables of the calling thread's network
// namespace change, until ctx is done: a router's new MAC or a failover is
// followed at once rather than after Config.NextHopTTL. Events that arrive
// together cause one flush. It returns an error only when it cannot
// subscribe, or when a flush fails.
func (d *Dataplane) WatchNextHops(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	neigh := make(chan netlink.NeighUpdate, 64)
	route := make(chan netlink.RouteUpdate, 64)
	if err := netlink.NeighSubscribe(neigh, done); err != nil {
		return fmt.Errorf("watch neighbour changes: %w", err)
	}
	if err := netlink.RouteSubscribe(route, done); err != nil {
		return fmt.Errorf("watch route changes: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-neigh:
			if !ok {
				return errors.New("watch neighbour changes: subscription closed")
			}
		case _, ok := <-route:
			if !ok {
				return errors.New("watch route changes: subscription closed")
			}
		}
		for drained := false; !drained; {
			select {
			case <-neigh:
			case <-route:
			default:
				drained = true
			}
		}
		if err := d.FlushNextHops(); err != nil {
			return err
		}
	}
}
