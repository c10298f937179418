package l4

import (
	"fmt"
	"slices"
)

// InstallTable replaces v's Maglev table. table must hold exactly
// Config.TableSize ids (0 = no backend for that slot) or be empty, which
// removes the table: every new flow of v is then dropped and counted as
// no_backend, never sent to a stale host. Connection entries are untouched:
// established flows stay on their hosts.
//
// The new table is written into v's standby table through its memory
// mapping (no syscall per slot), every slot tagged with a new version, then
// made live by one atomic store of (table, version) into ring_live_map. No
// map-in-map update, so the call never waits for an RCU grace period, not
// even for back-to-back changes. A packet acts only on a slot of the exact
// version it read as live (bpf/xlb.c, pick_backend): it sees the whole old
// table or the whole new one, never a table being rewritten.
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
	live := d.live.load(st.id)
	// Versions only grow, per VIP id (also across owners of the id): a
	// slot carrying the live version was written by that install.
	version := slotVersion(live) + 1
	if len(table) == 0 {
		d.live.store(st.id, slot(0, version))
		d.setTableRefs(st.id, nil)
		return nil
	}
	ids, err := d.tableBackends(table)
	if err != nil {
		return fmt.Errorf("install table of %s: %w", v, err)
	}
	r, err := d.ringsFor(st.id)
	if err != nil {
		return fmt.Errorf("install table of %s: %w", v, err)
	}
	// The standby table: the one not live, or the first when none is.
	next := slotID(live)%ringsPerVIP + 1
	mem := r.mem[next-1]
	for i, id := range table {
		mem[i] = slot(uint32(id), version)
	}
	// The flip: one release store, after every slot above.
	d.live.store(st.id, slot(next, version))
	d.setTableRefs(st.id, ids)
	return nil
}

// tableBackends checks that every id in table is a live backend and returns
// the distinct ones, sorted. Ids are below MaxBackends, so a bitmap spares
// a map lookup per slot.
func (d *Dataplane) tableBackends(table []BackendID) ([]BackendID, error) {
	seen := make([]bool, d.cfg.MaxBackends)
	var ids []BackendID
	for i, id := range table {
		if id == 0 || (uint32(id) < d.cfg.MaxBackends && seen[id]) {
			continue
		}
		if _, live := d.backends[id]; !live {
			return nil, fmt.Errorf("slot %d names backend %d: %w", i, id, ErrUnknownBackend)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
