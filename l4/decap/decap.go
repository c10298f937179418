package decap

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// DefaultMaxAddrs is the capacity of the local address map when
// Config.MaxAddrs is zero: a host rarely has more than a handful.
const DefaultMaxAddrs = 64

// Config sizes and wires a Decap.
type Config struct {
	// MaxAddrs is the number of local addresses of each family SetAddrs
	// accepts (default DefaultMaxAddrs).
	MaxAddrs uint32
	// Logger receives attach/detach and address-set transitions
	// (default: discard).
	Logger *slog.Logger
	// PinPath is a directory on bpffs (e.g. /sys/fs/bpf/xlb-decap) where
	// the maps and the XDP link are pinned. A later Open with the same
	// PinPath adopts them: the addresses and counters survive, and the
	// pinned link is switched to the new program in one step, so a proxy
	// restart never leaves the interface without its decapsulator. Close
	// then leaves the program attached; Detach (or RemovePins) removes it.
	// Empty: nothing is pinned and Close detaches.
	PinPath string
	// GUEPort is the UDP destination port of GUE tunnels (variant 1: the
	// inner IP packet right after the UDP header). 0 decapsulates IP-in-IP
	// only; the balancer's GUE forwarding must use the same port.
	GUEPort uint16
}

// Decap is a loaded decapsulator, attached to at most one interface. It is
// safe for concurrent use.
type Decap struct {
	log     *slog.Logger
	objs    decapObjects
	pinPath string

	mu     sync.Mutex
	link   *xdplink.Link
	addrs  map[netip.Addr]struct{}
	closed bool
}

// Open loads the decapsulator into the kernel. It does not attach it.
func Open(cfg Config) (*Decap, error) {
	if cfg.MaxAddrs == 0 {
		cfg.MaxAddrs = DefaultMaxAddrs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec, err := loadDecap()
	if err != nil {
		return nil, fmt.Errorf("load decap spec: %w", err)
	}
	// The program compares the port with the packet's, in wire order.
	if err := spec.Variables[decapVarGuePort].Set(bits.ReverseBytes16(cfg.GUEPort)); err != nil {
		return nil, fmt.Errorf("set decap gue port: %w", err)
	}
	spec.Maps[decapMapDecapV4AddrMap].MaxEntries = cfg.MaxAddrs
	spec.Maps[decapMapDecapV6AddrMap].MaxEntries = cfg.MaxAddrs
	d := &Decap{log: log, pinPath: cfg.PinPath, addrs: map[netip.Addr]struct{}{}}
	var opts ebpf.CollectionOptions
	if cfg.PinPath != "" {
		if err := xdplink.PreparePinDir(cfg.PinPath); err != nil {
			return nil, fmt.Errorf("decap: %w", err)
		}
		// The maps, not the program's read-only knobs (.rodata): a
		// restart may load another GUE port.
		for _, name := range []string{decapMapDecapV4AddrMap, decapMapDecapV6AddrMap, decapMapDecapStatsMap} {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = cfg.PinPath
	}
	if err := spec.LoadAndAssign(&d.objs, &opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("load decap objects from %s: pinned maps have another layout or size (remove them with RemovePins, or keep the old MaxAddrs): %w", cfg.PinPath, err)
		}
		return nil, fmt.Errorf("load decap objects: %w", xdplink.LoadError(err, log))
	}
	if cfg.PinPath != "" {
		if err := d.adopt(); err != nil {
			return nil, errors.Join(err, d.objs.Close())
		}
	}
	return d, nil
}

// Program returns the loaded program, for BPF_PROG_TEST_RUN and for
// attaching it somewhere Attach does not cover (e.g. a tcx hook is not
// supported: the program is XDP). The Decap keeps ownership.
func (d *Decap) Program() *ebpf.Program { return d.objs.XlbDecap }

// Attach attaches the program to the interface named ifname in the
// calling thread's network namespace. ModeAuto tries native mode and falls
// back to generic; Mode says which one runs. A Decap attaches to one
// interface; call Detach first to move it.
func (d *Decap) Attach(ifname string, mode xdplink.Mode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("attach decap to %q: %w", ifname, net.ErrClosed)
	}
	if d.link != nil && d.link.Iface == ifname {
		return nil // adopted from a pin, or attached before
	}
	if d.link != nil {
		return fmt.Errorf("attach decap to %q: already attached to %q (Detach first)", ifname, d.link.Iface)
	}
	l, err := xdplink.Attach(d.objs.XlbDecap, ifname, mode, d.log)
	if err != nil {
		return fmt.Errorf("attach decap: %w", err)
	}
	if d.pinPath != "" {
		if err := l.Pin(d.pinPath); err != nil {
			return errors.Join(err, l.Close())
		}
	}
	d.link = l
	d.log.Info("decap attached", "iface", ifname, "mode", l.Mode.String(), "requested", mode.String())
	return nil
}

// Mode returns the mode the program runs in (ModeNative or ModeGeneric),
// ModeAuto when it is not attached or the kernel could not tell (adopted
// from another network namespace).
func (d *Decap) Mode() xdplink.Mode {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.link == nil {
		return xdplink.ModeAuto
	}
	return d.link.Mode
}

// Detach removes the program from its interface, and its link pin.
// Detaching a Decap that is not attached is not an error.
func (d *Decap) Detach() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.link == nil {
		return nil
	}
	l := d.link
	d.link = nil
	if err := l.Detach(); err != nil {
		return fmt.Errorf("detach decap: %w", err)
	}
	d.log.Info("decap detached", "iface", l.Iface)
	return nil
}

// SetAddrs replaces the set of local addresses whose tunnel packets are
// decapsulated. IPv4 and IPv6 may be mixed; IPv4-mapped IPv6 addresses
// count as IPv4. Addresses are added before stale ones are removed, so an
// address present in both the old and the new set never stops working.
func (d *Decap) SetAddrs(addrs []netip.Addr) error {
	want := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() {
			return fmt.Errorf("set decap addresses: invalid address in %v", addrs)
		}
		want[a.Unmap()] = struct{}{}
	}
	var n4, n6 uint32
	for a := range want {
		if a.Is4() {
			n4++
		} else {
			n6++
		}
	}
	if capacity := d.objs.DecapV4AddrMap.MaxEntries(); n4 > capacity || n6 > capacity {
		return fmt.Errorf("set decap addresses: %d IPv4 and %d IPv6 addresses, capacity %d per family (raise Config.MaxAddrs)", n4, n6, capacity)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("set decap addresses: %w", net.ErrClosed)
	}
	var one uint8 = 1
	for a := range want {
		if _, ok := d.addrs[a]; ok {
			continue
		}
		if err := d.putAddr(a, one); err != nil {
			return fmt.Errorf("add decap address %s: %w", a, err)
		}
		d.addrs[a] = struct{}{}
	}
	for a := range d.addrs {
		if _, ok := want[a]; ok {
			continue
		}
		if err := d.deleteAddr(a); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove decap address %s: %w", a, err)
		}
		delete(d.addrs, a)
	}
	d.log.Info("decap addresses set", "addrs", addrs)
	return nil
}

// putAddr and deleteAddr pick the map of a's family; keys are wire-order
// bytes, as bpf/decap.c reads them from the packet.
func (d *Decap) putAddr(a netip.Addr, v uint8) error {
	if a.Is4() {
		return d.objs.DecapV4AddrMap.Put(decapDecapAddr4{Addr: a.As4()}, v)
	}
	return d.objs.DecapV6AddrMap.Put(decapDecapAddr6{Addr: a.As16()}, v)
}

func (d *Decap) deleteAddr(a netip.Addr) error {
	if a.Is4() {
		return d.objs.DecapV4AddrMap.Delete(decapDecapAddr4{Addr: a.As4()})
	}
	return d.objs.DecapV6AddrMap.Delete(decapDecapAddr6{Addr: a.As16()})
}

// Close releases the program and maps. Without a PinPath that detaches
// the program; with one, the pinned link keeps it attached for the next
// Open to adopt. Further calls return net.ErrClosed.
func (d *Decap) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var err error
	if d.link != nil {
		err = d.link.Close() // a pinned link stays attached
		d.link = nil
	}
	return errors.Join(err, d.objs.Close())
}
