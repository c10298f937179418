package l4

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// VIPOption tunes a VIP.
type VIPOption func(*xlbVipInfo)

// Mode is how a VIP forwards to its L7 hosts.
type Mode uint32

// Forwarding modes (XLB_VIP_* flags in bpf/include/consts.h).
const (
	// ModeIPIP wraps the packet in IP-in-IP towards the L7 host (routed,
	// the default).
	ModeIPIP Mode = 0
	// ModeL2DSR rewrites only the MACs: the packet goes as it is to an L7
	// host on this segment that has the VIP on its loopback. The host's
	// MAC comes from the neighbour table (through the FIB) even when a
	// NextHopMAC is configured.
	ModeL2DSR = Mode(abiXlbVipFlagXLB_ABI_VIP_L2DSR)
	// ModeGUE wraps the packet in GUE variant 1 (IP directly in UDP, to
	// Config.GUEPort) towards the L7 host; the UDP source port carries
	// the flow hash, so the host's NIC spreads flows over its queues.
	ModeGUE = Mode(abiXlbVipFlagXLB_ABI_VIP_GUE)
)

// checkMode refuses flags that are not exactly one mode, and GUE without
// a port to send it to.
func (d *Dataplane) checkMode(m Mode) error {
	switch m {
	case ModeIPIP, ModeL2DSR:
		return nil
	case ModeGUE:
		if d.cfg.GUEPort == 0 {
			return fmt.Errorf("mode gue needs Config.GUEPort: %w", ErrInvalid)
		}
		return nil
	}
	return fmt.Errorf("flags %#x are no forwarding mode: %w", uint32(m), ErrInvalid)
}

func (m Mode) String() string {
	switch m {
	case ModeIPIP:
		return "ipip"
	case ModeL2DSR:
		return "l2dsr"
	case ModeGUE:
		return "gue"
	}
	return fmt.Sprintf("mode%d", uint32(m))
}

// WithMode sets how the VIP forwards (default ModeIPIP).
func WithMode(m Mode) VIPOption {
	return func(i *xlbVipInfo) { i.Flags = uint32(m) }
}

// UpsertVIP makes v known to the balancer. A new VIP has no table: its
// packets are dropped (no_backend) until InstallTable. Upserting an existing
// VIP changes nothing.
func (d *Dataplane) UpsertVIP(v VIP, opts ...VIPOption) error {
	if err := v.validate(); err != nil {
		return err
	}
	v.Addr = v.Addr.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.vips[v]; ok {
		info := xlbVipInfo{Id: st.id, Gen: st.gen}
		for _, o := range opts {
			o(&info)
		}
		if err := d.checkMode(Mode(info.Flags)); err != nil {
			return fmt.Errorf("update vip %s: %w", v, err)
		}
		// Established flows read the flags from vip_gen_map, new ones
		// from vip_map: both change, the hit path's first.
		if err := d.objs.VipGenMap.Put(st.id, xlbVipLive{Gen: st.gen, Flags: info.Flags}); err != nil {
			return fmt.Errorf("update vip %s: %w", v, err)
		}
		if err := d.objs.VipMap.Put(vipKey(v), &info); err != nil {
			return fmt.Errorf("update vip %s: %w", v, err)
		}
		st.mode = Mode(info.Flags)
		d.vips[v] = st
		return nil
	}
	info := xlbVipInfo{}
	for _, o := range opts {
		o(&info)
	}
	if err := d.checkMode(Mode(info.Flags)); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	id, ok := d.freeVIPID()
	if !ok {
		return fmt.Errorf("add vip %s: %w", v, ErrFull)
	}
	gen, err := d.nextGen()
	if err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	// The id's tables are created here, once (see ringsFor), and kept while
	// the id is unused. A previous owner of the id may have left a live
	// table (crash before DeleteVIP finished) and counters.
	if _, err := d.ringsFor(id); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	d.live.store(id, slot(0, slotVersion(d.live.load(id))))
	if err := zeroPerCPU[xlbVipStat](d.objs.VipStatsMap, id, d.ncpu); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	if v.Port == 0 {
		d.ctl.WildcardVips++
		if err := d.writeCtl(); err != nil {
			return fmt.Errorf("add vip %s: %w", v, err)
		}
	}
	// The generation first (connection entries are checked against it),
	// then the filter bit, then the VIP itself: traffic sees it complete.
	if err := d.objs.VipGenMap.Put(id, xlbVipLive{Gen: gen, Flags: info.Flags}); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	if err := d.setFilterBit(v.Addr); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	info.Id, info.Gen = id, gen
	if err := d.objs.VipMap.Update(vipKey(v), &info, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	d.vips[v] = vipState{id: id, gen: gen, mode: Mode(info.Flags)}
	d.vipByID[id] = v
	if err := d.writeVIPAddr(v.Addr); err != nil {
		return fmt.Errorf("add vip %s: %w", v, err)
	}
	d.log.Info("vip added", "vip", v.String())
	return nil
}

// DeleteVIP stops balancing v: its packets pass to the host again. Its
// connection entries become invalid (the VIP's generation is gone).
func (d *Dataplane) DeleteVIP(v VIP) error {
	v.Addr = v.Addr.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.vips[v]
	if !ok {
		return fmt.Errorf("delete vip %s: %w", v, ErrUnknownVIP)
	}
	if err := d.objs.VipMap.Delete(vipKey(v)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete vip %s: %w", v, err)
	}
	// Its tables stay in ring_map for the id's next owner; none is live.
	// The version stays: the next owner's tables get newer ones.
	d.live.store(st.id, slot(0, slotVersion(d.live.load(st.id))))
	if err := d.objs.VipGenMap.Put(st.id, xlbVipLive{}); err != nil {
		return fmt.Errorf("delete vip %s: %w", v, err)
	}
	d.setTableRefs(st.id, nil)
	delete(d.vips, v)
	delete(d.vipByID, st.id)
	if err := d.clearFilterBit(v.Addr); err != nil {
		return fmt.Errorf("delete vip %s: %w", v, err)
	}
	if err := d.writeVIPAddr(v.Addr); err != nil {
		return fmt.Errorf("delete vip %s: %w", v, err)
	}
	if v.Port == 0 && d.ctl.WildcardVips > 0 {
		d.ctl.WildcardVips--
		if err := d.writeCtl(); err != nil {
			return fmt.Errorf("delete vip %s: %w", v, err)
		}
	}
	d.log.Info("vip deleted", "vip", v.String())
	return nil
}

// VIPMode returns how v forwards, and false when v is unknown.
func (d *Dataplane) VIPMode(v VIP) (Mode, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.vips[VIP{v.Addr.Unmap(), v.Port, v.Proto}]
	return st.mode, ok
}

// VIPs lists the known VIPs.
func (d *Dataplane) VIPs() []VIP {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]VIP, 0, len(d.vips))
	for v := range d.vips {
		out = append(out, v)
	}
	return out
}

func (d *Dataplane) freeVIPID() (uint32, bool) {
	for id := uint32(0); id < d.cfg.MaxVIPs; id++ {
		if _, used := d.vipByID[id]; !used {
			return id, true
		}
	}
	return 0, false
}

func vipKey(v VIP) xlbVipKey {
	return xlbVipKey{
		Addr:   addrWords(v.Addr),
		Port:   htons(v.Port),
		Proto:  uint8(v.Proto),
		Family: familyOf(v.Addr),
	}
}

// writeVIPAddr makes vip_addr_map say how many VIPs have address a (the
// entry is removed at 0): the data path drops fragments to these
// addresses.
func (d *Dataplane) writeVIPAddr(a netip.Addr) error {
	n := uint32(0)
	for v := range d.vips {
		if v.Addr == a {
			n++
		}
	}
	k := vipKey(VIP{Addr: a})
	if n == 0 {
		if err := d.objs.VipAddrMap.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("write vip address %s: %w", a, err)
		}
		return nil
	}
	if err := d.objs.VipAddrMap.Put(k, n); err != nil {
		return fmt.Errorf("write vip address %s: %w", a, err)
	}
	return nil
}

// filterBit mirrors filter_hash in bpf/include/hash.h: the bit of
// vip_filter_map that an address sets.
func filterBit(a netip.Addr) uint32 {
	return (addrFold(a) * 0x9e3779b1) >> (32 - filterBits)
}

const filterBits = 16 // XLB_FILTER_BITS

func (d *Dataplane) setFilterBit(a netip.Addr) error {
	return d.writeFilterBit(filterBit(a), true)
}

// clearFilterBit clears a's bit unless another VIP address shares it.
func (d *Dataplane) clearFilterBit(a netip.Addr) error {
	bit := filterBit(a)
	for v := range d.vips {
		if filterBit(v.Addr) == bit {
			return nil
		}
	}
	return d.writeFilterBit(bit, false)
}

// writeFilterBit sets or clears one bit of vip_filter_map (a word per key).
func (d *Dataplane) writeFilterBit(bit uint32, on bool) error {
	var word uint64
	if err := d.objs.VipFilterMap.Lookup(bit/64, &word); err != nil {
		return fmt.Errorf("read vip filter: %w", err)
	}
	if on {
		word |= 1 << (bit % 64)
	} else {
		word &^= 1 << (bit % 64)
	}
	if err := d.objs.VipFilterMap.Put(bit/64, word); err != nil {
		return fmt.Errorf("write vip filter: %w", err)
	}
	return nil
}
