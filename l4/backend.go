package l4

import (
	"fmt"
	"net/netip"
)

// UpsertBackend registers an L7 host and returns its id; an address already
// registered returns its existing id. A reused id always gets a new
// generation, so connection entries naming the previous owner miss.
func (d *Dataplane) UpsertBackend(addr netip.Addr) (BackendID, error) {
	if !addr.IsValid() {
		return 0, fmt.Errorf("add backend: address missing: %w", ErrInvalid)
	}
	addr = addr.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.byAddr[addr]; ok {
		return id, nil
	}
	id, ok := d.freeBackendID()
	if !ok {
		return 0, fmt.Errorf("add backend %s: %w", addr, ErrFull)
	}
	gen, err := d.nextGen()
	if err != nil {
		return 0, fmt.Errorf("add backend %s: %w", addr, err)
	}
	if err := zeroPerCPU[xlbXlbStat](d.objs.BackendStatsMap, uint32(id), d.ncpu); err != nil {
		return 0, fmt.Errorf("add backend %s: %w", addr, err)
	}
	b := xlbBackend{Addr: addrWords(addr), Gen: gen, Family: familyOf(addr)}
	if err := d.objs.BackendMap.Put(uint32(id), &b); err != nil {
		return 0, fmt.Errorf("add backend %s: %w", addr, err)
	}
	d.backends[id] = backendState{addr: addr, gen: gen}
	d.byAddr[addr] = id
	d.log.Info("backend added", "backend", addr.String(), "id", uint32(id))
	return id, nil
}

// DeleteBackend removes a backend. It fails with ErrBackendInUse while an
// installed table names it: install tables without it first (drain). Its
// connection entries stop matching at once, and their flows move to the
// current tables' choice.
func (d *Dataplane) DeleteBackend(id BackendID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.backends[id]
	if !ok {
		return fmt.Errorf("delete backend %d: %w", id, ErrUnknownBackend)
	}
	if d.refs[id] > 0 {
		return fmt.Errorf("delete backend %d (%s): %w", id, st.addr, ErrBackendInUse)
	}
	// Keep the generation in the slot: the next owner gets a newer one.
	b := xlbBackend{Gen: st.gen, Family: afNone}
	if err := d.objs.BackendMap.Put(uint32(id), &b); err != nil {
		return fmt.Errorf("delete backend %d: %w", id, err)
	}
	delete(d.backends, id)
	delete(d.byAddr, st.addr)
	d.log.Info("backend deleted", "backend", st.addr.String(), "id", uint32(id))
	return nil
}

// Backends returns the live backends by id.
func (d *Dataplane) Backends() map[BackendID]netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[BackendID]netip.Addr, len(d.backends))
	for id, st := range d.backends {
		out[id] = st.addr
	}
	return out
}

func (d *Dataplane) freeBackendID() (BackendID, bool) {
	for id := BackendID(1); uint32(id) < d.cfg.MaxBackends; id++ {
		if _, used := d.backends[id]; !used {
			return id, true
		}
	}
	return 0, false
}
