package decap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const linkPinPrefix = "link_"

func linkPin(dir, ifname string) string { return filepath.Join(dir, linkPinPrefix+ifname) }

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
	paths, err := filepath.Glob(filepath.Join(d.pinPath, linkPinPrefix+"*"))
	if err != nil {
		return fmt.Errorf("list pinned decap links: %w", err)
	}
	for _, p := range paths {
		ifname := strings.TrimPrefix(filepath.Base(p), linkPinPrefix)
		l, err := link.LoadPinnedLink(p, nil)
		if err != nil {
			return fmt.Errorf("load pinned decap link %s: %w", p, err)
		}
		if d.link != nil {
			_ = l.Close()
			return fmt.Errorf("adopt decap link of %q: already adopted %q; a Decap serves one interface (remove the stale pin %s)", ifname, d.iface, p)
		}
		if err := l.Update(d.objs.XlbDecap); err != nil {
			// The interface is gone and the link defunct: drop it.
			d.log.Warn("dropping defunct pinned decap link", "iface", ifname, "error", err)
			_ = l.Unpin()
			_ = l.Close()
			continue
		}
		d.link, d.iface = l, ifname
		d.log.Info("decap adopted", "iface", ifname)
	}
	return nil
}

// RemovePins detaches and removes everything a Decap pinned under dir
// (links, maps) and the directory if it is then empty. Use it to retire a
// host's decapsulator for good, or to clear pins of an incompatible layout.
func RemovePins(dir string) error {
	var errs []error
	names := []string{decapMapDecapV4AddrMap, decapMapDecapV6AddrMap, decapMapDecapStatsMap}
	links, err := filepath.Glob(filepath.Join(dir, linkPinPrefix+"*"))
	if err != nil {
		return fmt.Errorf("list pinned decap links: %w", err)
	}
	for _, p := range links {
		names = append(names, filepath.Base(p))
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove decap pin %s: %w", n, err))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		errs = append(errs, fmt.Errorf("remove decap pin directory %s: %w", dir, err))
	}
	return errors.Join(errs...)
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
// ifname (in the calling thread's network namespace), link-local ones
// excluded: the usual argument of SetAddrs, since the balancer tunnels to
// the address it knows the host by.
func InterfaceAddrs(ifname string) ([]netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: no such interface in this network namespace (check 'ip link'): %w", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: %w", ifname, err)
	}
	var out []netip.Addr
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
		if ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}
