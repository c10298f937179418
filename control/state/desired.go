package state

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/maglev"
)

// MaxWeight bounds a backend's weight; larger ratios are meaningless in a
// table of 65537 slots.
const MaxWeight = 65535

// Backend is one L7 host of a VIP as the operator wants it.
type Backend struct {
	Addr   netip.Addr `json:"addr"`
	Weight uint32     `json:"weight"`
	// Drain takes the backend out of the table while its established flows
	// continue through the connection table.
	Drain bool `json:"drain,omitempty"`
}

// VIP is one virtual service as the operator wants it.
type VIP struct {
	Key       api.VIPKey `json:"key"`
	Mode      string     `json:"mode"`
	TableSize uint32     `json:"tableSize"`
	// Backends are sorted by address, so that equal states compare equal.
	Backends []Backend `json:"backends"`
}

// Desired is the whole desired state. VIPs are sorted by key. The zero value
// is an empty state. Mutating methods validate first and change nothing on
// error.
type Desired struct {
	VIPs []VIP `json:"vips"`
}

// FromConfig converts a validated configuration into desired state.
func FromConfig(cfg *config.Config) Desired {
	var d Desired
	for _, cv := range cfg.VIPs {
		v := VIP{
			Key:       api.VIPKey{Addr: cv.Addr, Port: cv.Port, Proto: cv.Proto},
			Mode:      cv.Forwarding,
			TableSize: cv.TableSize,
		}
		for _, cb := range cv.Backends {
			v.Backends = append(v.Backends, Backend{Addr: cb.Addr, Weight: cb.Weight, Drain: cb.State == "draining"})
		}
		sortBackends(v.Backends)
		d.VIPs = append(d.VIPs, v)
	}
	sortVIPs(d.VIPs)
	return d
}

// Clone returns a deep copy.
func (d Desired) Clone() Desired {
	c := Desired{VIPs: make([]VIP, len(d.VIPs))}
	for i, v := range d.VIPs {
		c.VIPs[i] = cloneVIP(v)
	}
	return c
}

// Equal reports whether two states are the same.
func (d Desired) Equal(o Desired) bool {
	return slices.EqualFunc(d.VIPs, o.VIPs, func(a, b VIP) bool { return a.Equal(b) })
}

// Equal reports whether two VIPs are the same, backends included.
func (v VIP) Equal(o VIP) bool {
	return v.Key == o.Key && v.Mode == o.Mode && v.TableSize == o.TableSize && slices.Equal(v.Backends, o.Backends)
}

// VIP returns the VIP with the given key.
func (d Desired) VIP(key api.VIPKey) (VIP, bool) {
	i, ok := d.find(key)
	if !ok {
		return VIP{}, false
	}
	return d.VIPs[i], true
}

func (d Desired) find(key api.VIPKey) (int, bool) {
	return slices.BinarySearchFunc(d.VIPs, key, func(v VIP, k api.VIPKey) int { return compareKeys(v.Key, k) })
}

// AddVIP adds a VIP with its initial backends. An existing key is a conflict.
func (d *Desired) AddVIP(spec api.VIPSpec) error {
	if err := spec.Validate(); err != nil {
		return api.Errorf(api.ErrInvalid, "vip %s: %w", spec.Key, err)
	}
	v := VIP{Key: spec.Key, Mode: spec.Mode, TableSize: spec.TableSize}
	if v.Mode == "" {
		v.Mode = api.ModeIPIP
	}
	if v.TableSize == 0 {
		v.TableSize = maglev.DefaultSize
	}
	if v.TableSize > maglev.MaxSize || !maglev.IsPrime(int(v.TableSize)) {
		return api.Errorf(api.ErrInvalid, "vip %s: table size %d must be a prime up to %d (default %d)", spec.Key, v.TableSize, maglev.MaxSize, maglev.DefaultSize)
	}
	if len(spec.Backends) > int(v.TableSize) {
		return api.Errorf(api.ErrInvalid, "vip %s: %d backends do not fit a table of %d slots", spec.Key, len(spec.Backends), v.TableSize)
	}
	for _, bs := range spec.Backends {
		b, err := newBackend(v.Key, v.Mode, bs)
		if err != nil {
			return fmt.Errorf("vip %s: %w", spec.Key, err)
		}
		v.Backends = append(v.Backends, b)
	}
	i, ok := d.find(v.Key)
	if ok {
		return api.Errorf(api.ErrConflict, "vip %s already exists (delete it first, or add backends to it)", spec.Key)
	}
	sortBackends(v.Backends)
	d.VIPs = slices.Insert(d.VIPs, i, v)
	return nil
}

// newBackend checks a backend of a VIP forwarding with mode. IP-in-IP and
// GUE take an L7 host of either family (the outer header is the host's);
// l2dsr hands the client's packet on unchanged, so only the VIP's own.
func newBackend(vip api.VIPKey, mode string, bs api.BackendSpec) (Backend, error) {
	if err := bs.Validate(); err != nil {
		return Backend{}, api.Errorf(api.ErrInvalid, "%w", err)
	}
	if bs.Addr == vip.Addr {
		return Backend{}, api.Errorf(api.ErrInvalid, "backend %s is the vip's own address: its packets would come straight back", bs.Addr)
	}
	if bs.Addr.Is4() != vip.Addr.Is4() && mode == api.ModeL2DSR {
		return Backend{}, api.Errorf(api.ErrInvalid, "backend %s is not of the vip's IP family (l2dsr hands the client's packet on unchanged, which needs the same family)", bs.Addr)
	}
	w := bs.Weight
	if w == 0 {
		w = 1
	}
	if w > MaxWeight {
		return Backend{}, api.Errorf(api.ErrInvalid, "backend %s: weight %d is above the maximum %d", bs.Addr, w, MaxWeight)
	}
	return Backend{Addr: bs.Addr, Weight: w, Drain: bs.Drain}, nil
}

// DeleteVIP removes a VIP.
func (d *Desired) DeleteVIP(key api.VIPKey) error {
	i, ok := d.find(key)
	if !ok {
		return api.Errorf(api.ErrNotFound, "vip %s not found", key)
	}
	d.VIPs = slices.Delete(d.VIPs, i, i+1)
	return nil
}

// AddBackend adds a backend to a VIP; an existing backend is a conflict.
func (d *Desired) AddBackend(key api.VIPKey, bs api.BackendSpec) error {
	i, ok := d.find(key)
	if !ok {
		return api.Errorf(api.ErrNotFound, "vip %s not found", key)
	}
	v := &d.VIPs[i]
	b, err := newBackend(key, v.Mode, bs)
	if err != nil {
		return fmt.Errorf("vip %s: %w", key, err)
	}
	j, found := findBackend(v.Backends, b.Addr)
	if found {
		return api.Errorf(api.ErrConflict, "vip %s: backend %s already exists", key, bs.Addr)
	}
	if len(v.Backends)+1 > int(v.TableSize) {
		return api.Errorf(api.ErrInvalid, "vip %s: no room for backend %s: the table of %d slots is full", key, bs.Addr, v.TableSize)
	}
	v.Backends = slices.Insert(v.Backends, j, b)
	return nil
}

// DeleteBackend removes a backend from a VIP.
func (d *Desired) DeleteBackend(key api.VIPKey, addr netip.Addr) error {
	i, j, err := d.backendIndex(key, addr)
	if err != nil {
		return err
	}
	d.VIPs[i].Backends = slices.Delete(d.VIPs[i].Backends, j, j+1)
	return nil
}

// SetDrain drains or undrains a backend.
func (d *Desired) SetDrain(key api.VIPKey, addr netip.Addr, drain bool) error {
	b, err := d.backend(key, addr)
	if err != nil {
		return err
	}
	b.Drain = drain
	return nil
}

// SetWeight changes a backend's weight; 0 keeps it known but out of the table.
func (d *Desired) SetWeight(key api.VIPKey, addr netip.Addr, w uint32) error {
	if w > MaxWeight {
		return api.Errorf(api.ErrInvalid, "vip %s: backend %s: weight %d is above the maximum %d", key, addr, w, MaxWeight)
	}
	b, err := d.backend(key, addr)
	if err != nil {
		return err
	}
	b.Weight = w
	return nil
}

func (d *Desired) backend(key api.VIPKey, addr netip.Addr) (*Backend, error) {
	i, j, err := d.backendIndex(key, addr)
	if err != nil {
		return nil, err
	}
	return &d.VIPs[i].Backends[j], nil
}

// backendIndex returns the positions of a VIP and of one of its backends.
func (d *Desired) backendIndex(key api.VIPKey, addr netip.Addr) (vip, backend int, err error) {
	i, ok := d.find(key)
	if !ok {
		return 0, 0, api.Errorf(api.ErrNotFound, "vip %s not found", key)
	}
	j, ok := findBackend(d.VIPs[i].Backends, addr)
	if !ok {
		return 0, 0, api.Errorf(api.ErrNotFound, "vip %s: backend %s not found", key, addr)
	}
	return i, j, nil
}

func findBackend(bs []Backend, addr netip.Addr) (int, bool) {
	return slices.BinarySearchFunc(bs, addr, func(b Backend, a netip.Addr) int { return b.Addr.Compare(a) })
}

func compareKeys(a, b api.VIPKey) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
}

func sortVIPs(vs []VIP) {
	slices.SortFunc(vs, func(a, b VIP) int { return compareKeys(a.Key, b.Key) })
}

func sortBackends(bs []Backend) {
	slices.SortFunc(bs, func(a, b Backend) int { return a.Addr.Compare(b.Addr) })
}

// Rebase applies to current what changed in the configuration from oldBase
// to newBase, field by field, and returns the result: the file wins for what
// the file changed, the operator's API changes to everything else survive.
//   - a VIP removed from the file is deleted; one added is added (or, if the
//     operator already added it, takes the file's settings and backends);
//   - a VIP's mode or table size changed in the file is set;
//   - a backend removed from the file is deleted, one added is added, and a
//     weight or drain flag changed in the file is set.
func Rebase(current, oldBase, newBase Desired) Desired {
	out := current.Clone()
	idx := func(d Desired) map[api.VIPKey]VIP {
		m := make(map[api.VIPKey]VIP, len(d.VIPs))
		for _, v := range d.VIPs {
			m[v.Key] = v
		}
		return m
	}
	oldM, newM, cur := idx(oldBase), idx(newBase), idx(out)
	for k := range oldM {
		if _, kept := newM[k]; !kept {
			delete(cur, k)
		}
	}
	for k, nv := range newM {
		ov, wasThere := oldM[k]
		cv, exists := cur[k]
		if wasThere && !exists && nv.Equal(ov) {
			continue // the operator deleted it and the file did not touch it
		}
		if !wasThere || !exists {
			if !exists {
				cur[k] = cloneVIP(nv)
				continue
			}
			// Added to the file and through the API: adopt the file's
			// settings, keep the operator's extra backends.
			ov = VIP{Key: k}
		}
		if nv.Mode != ov.Mode {
			cv.Mode = nv.Mode
		}
		if nv.TableSize != ov.TableSize {
			cv.TableSize = nv.TableSize
		}
		cv.Backends = rebaseBackends(cv.Backends, ov.Backends, nv.Backends)
		cur[k] = cv
	}
	out.VIPs = out.VIPs[:0]
	for _, v := range cur {
		out.VIPs = append(out.VIPs, v)
	}
	sortVIPs(out.VIPs)
	return out
}

func rebaseBackends(cur, old, new []Backend) []Backend {
	m := make(map[netip.Addr]Backend, len(cur))
	for _, b := range cur {
		m[b.Addr] = b
	}
	oldM := make(map[netip.Addr]Backend, len(old))
	for _, b := range old {
		oldM[b.Addr] = b
	}
	newM := make(map[netip.Addr]bool, len(new))
	for _, nb := range new {
		newM[nb.Addr] = true
		ob, wasThere := oldM[nb.Addr]
		cb, exists := m[nb.Addr]
		if wasThere && !exists && nb == ob {
			continue // deleted through the API, untouched in the file
		}
		if !wasThere || !exists {
			m[nb.Addr] = nb
			continue
		}
		if nb.Weight != ob.Weight {
			cb.Weight = nb.Weight
		}
		if nb.Drain != ob.Drain {
			cb.Drain = nb.Drain
		}
		m[nb.Addr] = cb
	}
	for _, ob := range old {
		if !newM[ob.Addr] {
			delete(m, ob.Addr)
		}
	}
	out := make([]Backend, 0, len(m))
	for _, b := range m {
		out = append(out, b)
	}
	sortBackends(out)
	return out
}

func cloneVIP(v VIP) VIP {
	v.Backends = slices.Clone(v.Backends)
	return v
}
