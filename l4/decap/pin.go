package decap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// adopt reads the pinned address set and switches a pinned link of a
// previous instance to this program. bpf_link_update swaps the program in
// one step: the interface always has a decapsulator.
func (d *Decap) adopt() error {
	var (
		k4  decapDecapAddr4
		k6  decapDecapAddr6
		val uint8
	)
	it := d.objs.DecapV4AddrMap.Iterate()
	for it.Next(&k4, &val) {
		d.addrs[netip.AddrFrom4(k4.Addr)] = struct{}{}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read pinned decap IPv4 addresses: %w", err)
	}
	it = d.objs.DecapV6AddrMap.Iterate()
	for it.Next(&k6, &val) {
		d.addrs[netip.AddrFrom16(k6.Addr)] = struct{}{}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read pinned decap IPv6 addresses: %w", err)
	}
	links, err := xdplink.Adopt(d.pinPath, d.objs.XlbDecap, d.log)
	if err != nil {
		return fmt.Errorf("adopt decap: %w", err)
	}
	if len(links) > 1 {
		var errs []error
		names := make([]string, 0, len(links))
		for _, l := range links {
			names = append(names, l.Iface)
			errs = append(errs, l.Close())
		}
		return errors.Join(append(errs, fmt.Errorf("adopt decap links of %q: a Decap serves one interface (remove the stale pins under %s)", names, d.pinPath))...)
	}
	if len(links) == 1 {
		d.link = links[0]
	}
	return nil
}

// RemovePins detaches and removes everything a Decap pinned under dir
// (links, maps) and the directory. Use it to retire a host's
// decapsulator for good, or to clear pins of an incompatible layout.
func RemovePins(dir string) error {
	return xdplink.RemovePins(dir)
}

// Addrs returns the local addresses currently decapsulated (including
// those adopted from pins).
func (d *Decap) Addrs() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]netip.Addr, 0, len(d.addrs))
	for a := range d.addrs {
		out = append(out, a)
	}
	return out
}

// InterfaceAddrs returns the unicast addresses of the interface named
// ifname (in the calling thread's network namespace) that can be a
// tunnel's outer destination: the usual argument of SetAddrs, since the
// balancer tunnels to the address it knows the host by. Loopback and
// link-local addresses never can (no edge host reaches them); they are
// returned as skipped, so that a caller left with none can say what the
// interface had.
func InterfaceAddrs(ifname string) (use, skipped []netip.Addr, err error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		// net has no sentinel for this; its text ("route ip+net: no
		// such network interface") is not an operator's.
		if strings.Contains(err.Error(), "no such network interface") {
			return nil, nil, fmt.Errorf("no such interface %q in this network namespace (see `ip link`)", ifname)
		}
		return nil, nil, fmt.Errorf("find interface %q: %w", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses of %q: %w", ifname, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		switch {
		case ip.IsMulticast() || ip.IsUnspecified():
		case ip.IsLoopback() || ip.IsLinkLocalUnicast():
			skipped = append(skipped, ip)
		default:
			use = append(use, ip)
		}
	}
	return use, skipped, nil
}
