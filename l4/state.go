package l4

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// readState rebuilds the Go-side view (ids, generations, table references)
// from the maps, which are the single source of truth: after an adoption the
// new Dataplane knows exactly what the old one had installed.
func (d *Dataplane) readState() error {
	if err := d.objs.CtlMap.Lookup(uint32(0), &d.ctl); err != nil {
		return fmt.Errorf("read ctl map: %w", err)
	}
	if d.ctl.TableSize != 0 && d.ctl.Layout != mapLayout {
		return fmt.Errorf("adopt maps of layout %d with layout %d: %w",
			d.ctl.Layout, mapLayout, ErrIncompatiblePins)
	}
	if d.ctl.TableSize != 0 && d.ctl.TableSize != d.cfg.TableSize {
		return fmt.Errorf("adopt tables of size %d with TableSize %d: %w",
			d.ctl.TableSize, d.cfg.TableSize, ErrIncompatiblePins)
	}
	if d.ctl.NextGen == 0 {
		d.ctl.NextGen = 1
	}
	d.ctl.TableSize = d.cfg.TableSize
	d.ctl.Layout = mapLayout
	if err := d.writeCtl(); err != nil {
		return err
	}

	var (
		k    xlbVipKey
		info xlbVipInfo
	)
	it := d.objs.VipMap.Iterate()
	for it.Next(&k, &info) {
		v := VIP{Addr: wordsAddr(k.Addr, k.Family), Port: htons(k.Port), Proto: Proto(k.Proto)}
		d.vips[v] = vipState{id: info.Id, gen: info.Gen, mode: Mode(info.Flags)}
		d.vipByID[info.Id] = v
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read vip map: %w", err)
	}
	// Maps pinned before vip_addr_map existed adopt it empty: fill it.
	for v := range d.vips {
		if err := d.writeVIPAddr(v.Addr); err != nil {
			return err
		}
	}

	var (
		id uint32
		b  xlbBackend
	)
	bit := d.objs.BackendMap.Iterate()
	for bit.Next(&id, &b) {
		if b.Family == afNone {
			continue
		}
		a := wordsAddr(b.Addr, b.Family)
		d.backends[BackendID(id)] = backendState{addr: a, gen: b.Gen}
		d.byAddr[a] = BackendID(id)
	}
	if err := bit.Err(); err != nil {
		return fmt.Errorf("read backend map: %w", err)
	}

	for _, st := range d.vips {
		ids, err := d.readTable(st.id)
		if err != nil {
			return err
		}
		d.setTableRefs(st.id, ids)
	}
	return nil
}

// readTable returns the distinct backend ids in a VIP's live table.
func (d *Dataplane) readTable(vipID uint32) ([]BackendID, error) {
	live := d.live.load(vipID)
	n := slotID(live)
	if n == 0 {
		return nil, nil
	}
	if n > ringsPerVIP {
		return nil, fmt.Errorf("read table of vip id %d: live table %d of %d: %w", vipID, n, ringsPerVIP, ErrIncompatiblePins)
	}
	r, err := d.ringsFor(vipID)
	if err != nil {
		return nil, err
	}
	seen := map[uint32]bool{}
	var out []BackendID
	for _, s := range r.mem[n-1] {
		if id := slotID(s); id != 0 && !seen[id] && slotVersion(s) == slotVersion(live) {
			seen[id] = true
			out = append(out, BackendID(id))
		}
	}
	slices.Sort(out)
	return out, nil
}

// setTableRefs records which backends a VIP's table names.
func (d *Dataplane) setTableRefs(vipID uint32, ids []BackendID) {
	for _, id := range d.tables[vipID] {
		d.refs[id]--
		if d.refs[id] <= 0 {
			delete(d.refs, id)
		}
	}
	if len(ids) == 0 {
		delete(d.tables, vipID)
		return
	}
	d.tables[vipID] = ids
	for _, id := range ids {
		d.refs[id]++
	}
}

// nextGen hands out a generation number, never 0, persisted in ctl_map so a
// restarted daemon never hands out one that live entries may still carry.
func (d *Dataplane) nextGen() (uint32, error) {
	g := d.ctl.NextGen
	d.ctl.NextGen++
	if d.ctl.NextGen == 0 {
		d.ctl.NextGen = 1
	}
	if err := d.writeCtl(); err != nil {
		return 0, err
	}
	return g, nil
}

func (d *Dataplane) writeCtl() error {
	if err := d.objs.CtlMap.Put(uint32(0), &d.ctl); err != nil {
		return fmt.Errorf("write ctl map: %w", err)
	}
	return nil
}

// zeroPerCPU resets one per-CPU slot; used when an id gets a new owner, whose
// counters start a new series.
func zeroPerCPU[T any](m *ebpf.Map, key uint32, ncpu int) error {
	if err := m.Put(key, make([]T, ncpu)); err != nil {
		return fmt.Errorf("reset counters %d: %w", key, err)
	}
	return nil
}
