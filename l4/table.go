package l4

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// InstallTable replaces v's Maglev table. table must hold exactly
// Config.TableSize ids (0 = no backend for that slot) or be empty, which
// removes the table: every new flow of v is then dropped and counted as
// no_backend, never sent to a stale host. The new table is built in a fresh
// inner map and swapped in by one write to ring_map, so a packet sees the
// whole old table or the whole new one. Connection entries are untouched:
// established flows stay on their hosts.
func (d *Dataplane) InstallTable(v VIP, table []BackendID) error {
	v.Addr = v.Addr.Unmap()
	if len(table) != 0 && len(table) != int(d.cfg.TableSize) {
		return fmt.Errorf("install table of %s: %d entries, want %d: %w", v, len(table), d.cfg.TableSize, ErrBadTable)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.vips[v]
	if !ok {
		return fmt.Errorf("install table of %s: %w", v, ErrUnknownVIP)
	}
	if len(table) == 0 {
		if err := d.objs.RingMap.Delete(st.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove table of %s: %w", v, err)
		}
		d.setTableRefs(st.id, nil)
		return nil
	}

	vals := make([]uint32, len(table))
	for i, id := range table {
		if id != 0 {
			if _, live := d.backends[id]; !live {
				return fmt.Errorf("install table of %s: slot %d names backend %d: %w", v, i, id, ErrUnknownBackend)
			}
		}
		vals[i] = uint32(id)
	}
	inner, err := ebpf.NewMap(d.innerSpec)
	if err != nil {
		return fmt.Errorf("create table of %s: %w", v, err)
	}
	defer inner.Close()
	if err := fillArray(inner, vals); err != nil {
		return fmt.Errorf("fill table of %s: %w", v, err)
	}
	if err := d.objs.RingMap.Put(st.id, inner); err != nil {
		return fmt.Errorf("swap table of %s: %w", v, err)
	}
	d.setTableRefs(st.id, distinct(vals))
	return nil
}

// fillArray writes vals at keys 0..n-1, in one batch where the kernel can.
func fillArray(m *ebpf.Map, vals []uint32) error {
	keys := make([]uint32, len(vals))
	for i := range keys {
		keys[i] = uint32(i)
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i, v := range vals {
		if err := m.Put(uint32(i), v); err != nil {
			return err
		}
	}
	return nil
}
