package l4

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/cilium/ebpf/link"
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
	switch mode {
	case AttachNative:
		l, err = d.attachXDP(iface.Index, link.XDPDriverMode)
	case AttachGeneric:
		l, err = d.attachXDP(iface.Index, link.XDPGenericMode)
	case AttachAuto:
		l, err = d.attachXDP(iface.Index, link.XDPDriverMode)
		if err != nil {
			d.log.Info("native xdp unavailable, using generic", "iface", ifname, "error", err)
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
	d.log.Info("xdp attached", "iface", ifname, "mode", mode.String())
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
