package l4

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// Attach attaches the balancer to ifname (in the calling thread's network
// namespace) and, with a PinPath, pins the link so that it survives the
// process. AttachAuto tries native mode and falls back to generic; which
// one runs is in AttachModes. Attaching an interface that already has this
// Dataplane's (or an adopted) link is a no-op.
func (d *Dataplane) Attach(ifname string, mode AttachMode) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.links[ifname]; ok {
		return nil
	}
	l, err := xdplink.Attach(d.objs.XlbIngress, ifname, mode, d.log)
	if err != nil {
		return err
	}
	if d.cfg.PinPath != "" {
		if err := l.Pin(d.cfg.PinPath); err != nil {
			_ = l.Close()
			return err
		}
	}
	d.links[ifname] = l
	if err := d.setTxPort(ifname, true); err != nil {
		return err
	}
	d.log.Info("xdp attached", "iface", ifname, "mode", l.Mode.String(), "requested", mode.String())
	return nil
}

// setTxPort adds an attached interface to tx_port_map, or removes it: the
// interfaces XDP_REDIRECT may send out of (FIB next hops on a two-armed
// host). tx_port_map is pinned with the links, so adopted ones stay in it.
func (d *Dataplane) setTxPort(ifname string, on bool) error {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("look up %q for redirects: %w", ifname, err)
	}
	idx := uint32(ifc.Index)
	if on {
		if err := d.objs.TxPortMap.Put(idx, idx); err != nil {
			return fmt.Errorf("add %q to the redirect interfaces: %w", ifname, err)
		}
		return nil
	}
	if err := d.objs.TxPortMap.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove %q from the redirect interfaces: %w", ifname, err)
	}
	return nil
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
	if err := d.setTxPort(ifname, false); err != nil {
		d.log.Warn("interface not removed from the redirect interfaces", "iface", ifname, "error", err)
	}
	// Cached next hops may name it as their egress interface.
	if err := d.flushNextHopsLocked(); err != nil {
		d.log.Warn("next hops not flushed", "error", err)
	}
	if err := l.Detach(); err != nil {
		return err
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
	for name, l := range d.links {
		out[name] = l.Mode
	}
	return out
}
