package xdplink

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Link is a program attached to one interface through a bpf link.
type Link struct {
	link.Link
	// Iface is the interface's name in the namespace it was attached in.
	Iface string
	// Mode is the mode the program runs in: ModeNative or ModeGeneric,
	// never the ModeAuto that was asked for. An adopted link whose
	// interface is not in the caller's namespace has ModeAuto: unknown.
	Mode Mode
	// pinned is the link's pin path, empty when it is not pinned.
	pinned string
}

// Attach attaches prog to the interface ifname of the calling thread's
// network namespace. ModeAuto tries native mode first and, if the driver
// refuses, generic mode; the returned Link's Mode says which one runs, and
// the fallback is logged (with a nil log, not). Errors are classified by
// AttachError.
func Attach(prog *ebpf.Program, ifname string, mode Mode, log *slog.Logger) (*Link, error) {
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("attach xdp to %q: %w: %w", ifname, ErrNoInterface, err)
	}
	attach := func(m Mode) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index, Flags: flags})
		if err != nil {
			return nil, fmt.Errorf("attach xdp to %q in %s mode: %w", ifname, m, AttachError(err))
		}
		return l, nil
	}
	switch mode {
	case ModeNative, ModeGeneric:
		l, err := attach(mode)
		if err != nil {
			return nil, err
		}
		return &Link{Link: l, Iface: ifname, Mode: mode}, nil
	case ModeAuto:
		l, nerr := attach(ModeNative)
		if nerr == nil {
			return &Link{Link: l, Iface: ifname, Mode: ModeNative}, nil
		}
		// Permission and a program in the way fail generic mode just
		// the same: say so once instead of hiding it behind a retry.
		if errors.Is(nerr, ErrNotPermitted) || errors.Is(nerr, ErrBusy) {
			return nil, nerr
		}
		l, gerr := attach(ModeGeneric)
		if gerr != nil {
			return nil, errors.Join(nerr, gerr)
		}
		if log != nil {
			log.Warn("native xdp unavailable, using generic (slower)", "iface", ifname, "error", nerr)
		}
		return &Link{Link: l, Iface: ifname, Mode: ModeGeneric}, nil
	}
	return nil, fmt.Errorf("attach xdp to %q: %s: %w", ifname, mode, ErrUnsupported)
}

// Pin pins the link as dir/link_<iface>, so that it outlives the process
// and Adopt finds it.
func (l *Link) Pin(dir string) error {
	p := LinkPinPath(dir, l.Iface)
	if err := l.Link.Pin(p); err != nil {
		return fmt.Errorf("pin xdp link of %q: %w", l.Iface, err)
	}
	l.pinned = p
	return nil
}

// Pinned reports whether the link is pinned (by Pin or because it was
// adopted from a pin).
func (l *Link) Pinned() bool { return l.pinned != "" }

// Detach removes the program from the interface at once
// (BPF_LINK_DETACH, which does not wait for the link's last reference to
// go) and the link's pin, and closes the link.
func (l *Link) Detach() error {
	var errs []error
	if err := l.Link.Detach(); err != nil {
		errs = append(errs, fmt.Errorf("detach xdp from %q: %w", l.Iface, err))
	}
	if l.pinned != "" {
		if err := l.Link.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin xdp link of %q: %w", l.Iface, err))
		}
		l.pinned = ""
	}
	if err := l.Link.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close xdp link of %q: %w", l.Iface, err))
	}
	return errors.Join(errs...)
}

// kernelMode asks the kernel in which mode an XDP link runs. A bpf link's
// info names only its interface, not the mode, so the mode comes from the
// interface's IFLA_XDP_ATTACHED, looked up in the calling thread's
// namespace.
func kernelMode(l link.Link, ifname string) (Mode, error) {
	info, err := l.Info()
	if err != nil {
		return ModeAuto, fmt.Errorf("read link info: %w", err)
	}
	xi := info.XDP()
	if xi == nil {
		return ModeAuto, fmt.Errorf("link %d is not an xdp link", info.ID)
	}
	nlink, err := netlink.LinkByIndex(int(xi.Ifindex))
	if err != nil {
		return ModeAuto, fmt.Errorf("look up interface %d: %w", xi.Ifindex, err)
	}
	attrs := nlink.Attrs()
	if attrs.Name != ifname {
		// Same index, other interface: the link lives in another namespace.
		return ModeAuto, fmt.Errorf("interface %d is %q here, not %q", xi.Ifindex, attrs.Name, ifname)
	}
	if attrs.Xdp == nil {
		return ModeAuto, fmt.Errorf("interface %q reports no xdp program", ifname)
	}
	switch attrs.Xdp.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return ModeNative, nil
	case nl.XDP_ATTACHED_SKB:
		return ModeGeneric, nil
	}
	return ModeAuto, fmt.Errorf("interface %q reports xdp attach state %d", ifname, attrs.Xdp.AttachMode)
}

// LinkPinPath is where the link of ifname is pinned under dir.
func LinkPinPath(dir, ifname string) string { return filepath.Join(dir, linkPinPrefix+ifname) }

const linkPinPrefix = "link_"
