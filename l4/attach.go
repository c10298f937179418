package l4

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Attach attaches the balancer to ifname (in the calling thread's network
// namespace) and, with a PinPath, pins the link so that it survives the
// process. Attaching an interface that already has this Dataplane's (or an
// adopted) link is a no-op.
func (d *Dataplane) Attach(ifname string, mode AttachMode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.links[ifname]; ok {
		return nil
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("attach xdp to %q: %w: %w", ifname, ErrNoInterface, err)
	}
	var l link.Link
	used := mode
	switch mode {
	case AttachNative:
		l, err = d.attachXDP(iface.Index, link.XDPDriverMode)
	case AttachGeneric:
		l, err = d.attachXDP(iface.Index, link.XDPGenericMode)
	case AttachAuto:
		used = AttachNative
		l, err = d.attachXDP(iface.Index, link.XDPDriverMode)
		if err != nil {
			d.log.Warn("native xdp unavailable, using generic (slower)", "iface", ifname, "error", err)
			used = AttachGeneric
			l, err = d.attachXDP(iface.Index, link.XDPGenericMode)
		}
	default:
		return fmt.Errorf("attach xdp to %q: mode %s: %w", ifname, mode, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("attach xdp to %q in %s mode: %w", ifname, mode, attachError(err))
	}
	if d.cfg.PinPath != "" {
		if err := l.Pin(filepath.Join(d.cfg.PinPath, linkPinPref+ifname)); err != nil {
			_ = l.Close()
			return fmt.Errorf("pin xdp link of %q: %w", ifname, err)
		}
	}
	d.links[ifname] = l
	d.modes[ifname] = used
	d.log.Info("xdp attached", "iface", ifname, "mode", used.String(), "requested", mode.String())
	return nil
}

func (d *Dataplane) attachXDP(ifindex int, flags link.XDPAttachFlags) (link.Link, error) {
	return link.AttachXDP(link.XDPOptions{Program: d.objs.XlbIngress, Interface: ifindex, Flags: flags})
}

func attachError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("another xdp program is attached (remove it with `ip link set dev IF xdp off`): %w", err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %w", ErrModeUnsupported, err)
	}
	return err
}

// Detach removes the balancer from ifname and its pin.
func (d *Dataplane) Detach(ifname string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.links[ifname]
	if !ok {
		return fmt.Errorf("detach xdp from %q: not attached: %w", ifname, ErrNoInterface)
	}
	delete(d.links, ifname)
	delete(d.modes, ifname)
	if d.cfg.PinPath != "" {
		if err := l.Unpin(); err != nil {
			_ = l.Close()
			return fmt.Errorf("unpin xdp link of %q: %w", ifname, err)
		}
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach xdp from %q: %w", ifname, err)
	}
	d.log.Info("xdp detached", "iface", ifname)
	return nil
}

// Attached lists the interfaces the balancer is attached to.
func (d *Dataplane) Attached() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.links))
	for name := range d.links {
		out = append(out, name)
	}
	return out
}

// AttachModes maps every attached interface to the mode its program runs
// in: AttachNative or AttachGeneric, never the AttachAuto that was asked
// for, because generic mode is several times slower and an operator has to
// see it. An adopted link whose mode the kernel did not tell (its interface
// is not in this namespace) maps to AttachAuto, meaning unknown.
func (d *Dataplane) AttachModes() map[string]AttachMode {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]AttachMode, len(d.links))
	for name := range d.links {
		out[name] = d.modes[name]
	}
	return out
}

// linkMode asks the kernel in which mode an XDP link runs. A bpf link's info
// names only its interface, not the mode, so the mode comes from the
// interface's IFLA_XDP_ATTACHED, looked up in the calling thread's
// namespace.
func linkMode(l link.Link, ifname string) (AttachMode, error) {
	info, err := l.Info()
	if err != nil {
		return AttachAuto, fmt.Errorf("read link info: %w", err)
	}
	xi := info.XDP()
	if xi == nil {
		return AttachAuto, fmt.Errorf("link %d is not an xdp link", info.ID)
	}
	nlink, err := netlink.LinkByIndex(int(xi.Ifindex))
	if err != nil {
		return AttachAuto, fmt.Errorf("look up interface %d: %w", xi.Ifindex, err)
	}
	attrs := nlink.Attrs()
	if attrs.Name != ifname {
		// Same index, other interface: the link lives in another namespace.
		return AttachAuto, fmt.Errorf("interface %d is %q here, not %q", xi.Ifindex, attrs.Name, ifname)
	}
	if attrs.Xdp == nil {
		return AttachAuto, fmt.Errorf("interface %q reports no xdp program", ifname)
	}
	switch attrs.Xdp.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return AttachNative, nil
	case nl.XDP_ATTACHED_SKB:
		return AttachGeneric, nil
	}
	return AttachAuto, fmt.Errorf("interface %q reports xdp attach state %d", ifname, attrs.Xdp.AttachMode)
}
