package l4

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringsPerVIP is XLB_RINGS_PER_VIP: Maglev tables per VIP id, one live and
// the other standing by to be rewritten.
const ringsPerVIP = uint32(abiXlbAbiXLB_ABI_RINGS_PER_VIP)

// mapLayout versions the maps' layout, recorded in ctl_map: a new daemon
// refuses pins of another layout instead of misreading them. 2: two
// mmapable tables of versioned slots per VIP id, and ring_live_map. 3:
// vip_gen_map holds the VIP's flags beside its generation. 4: conn_map is
// one table shared by all CPUs (a flow's set from its hash, not per-CPU
// partitions), with a check and a writer CPU per way. 5: conn_hash hashes the
// 5-tuple itself instead of extending the flow hash (flows sit in other
// sets); pair_stats_map.
const mapLayout = 5

// slot packs a table slot or a ring_live_map value (XLB_SLOT_* in
// bpf/include/consts.h): id (backend id, or live table number) in the low
// half, version in the high half. One uint64 is stored and loaded whole:
// the Go memory model forbids tearing word-sized accesses, and the program
// reads it with one 8-byte load.
func slot(id, version uint32) uint64 {
	return uint64(version)<<32 | uint64(id)
}

func slotID(s uint64) uint32      { return uint32(s) }
func slotVersion(s uint64) uint32 { return uint32(s >> 32) }

// vipRings are one VIP id's tables: mmapable arrays created once and kept
// in ring_map for the life of the pins (also while the id is unused), then
// written only through their memory mappings. Which one is live, and at
// which version, is in ring_live_map.
type vipRings struct {
	maps [ringsPerVIP]*ebpf.Map
	mem  [ringsPerVIP][]uint64 // the tables' mappings, one slot each
}

func (r *vipRings) close() error {
	var errs []error
	for i := range r.maps {
		if r.mem[i] != nil {
			errs = append(errs, munmap(r.mem[i]))
			r.mem[i] = nil
		}
		if r.maps[i] != nil {
			errs = append(errs, r.maps[i].Close())
			r.maps[i] = nil
		}
	}
	return errors.Join(errs...)
}

// ringKey is the ring_map slot of table n (1-based) of VIP id.
func ringKey(id, n uint32) uint32 {
	return id*ringsPerVIP + n - 1
}

// ringsFor returns VIP id's tables: the ones already in ring_map (left by a
// previous owner of the id, or by the instance this one adopted), else
// fresh ones. Putting a fresh table into ring_map waits for an RCU grace
// period (a few ms, once per id), so the tables of an id are put in
// parallel and share it; an install never touches ring_map.
func (d *Dataplane) ringsFor(id uint32) (*vipRings, error) {
	if r, ok := d.rings[id]; ok {
		return r, nil
	}
	r := &vipRings{}
	var (
		wg   sync.WaitGroup
		errs [ringsPerVIP]error
	)
	for i := range r.maps {
		key := ringKey(id, uint32(i+1))
		var m *ebpf.Map
		err := d.objs.RingMap.Lookup(key, &m)
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrKeyNotExist):
			if m, err = ebpf.NewMap(d.innerSpec); err != nil {
				errs[i] = fmt.Errorf("create table %d of vip id %d: %w", i+1, id, err)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.objs.RingMap.Put(key, m); err != nil {
					errs[i] = fmt.Errorf("install table %d of vip id %d: %w", i+1, id, err)
				}
			}()
		default:
			errs[i] = fmt.Errorf("read table %d of vip id %d: %w", i+1, id, err)
			continue
		}
		r.maps[i] = m
	}
	wg.Wait()
	for i, m := range r.maps {
		if errs[i] != nil {
			continue
		}
		if m.MaxEntries() != d.cfg.TableSize || m.Flags()&unix.BPF_F_MMAPABLE == 0 {
			errs[i] = fmt.Errorf("table %d of vip id %d has %d entries, flags %#x: %w",
				i+1, id, m.MaxEntries(), m.Flags(), ErrIncompatiblePins)
			continue
		}
		if r.mem[i], errs[i] = mmapU64(m); errs[i] != nil {
			errs[i] = fmt.Errorf("map table %d of vip id %d: %w", i+1, id, errs[i])
		}
	}
	if err := errors.Join(errs[:]...); err != nil {
		_ = r.close()
		return nil, err
	}
	d.rings[id] = r
	return r, nil
}

// liveMap is ring_live_map mapped into memory: slot(live table number,
// version) of every VIP id, read once per try by the program. Stores are
// atomic and so release stores: a table written before is seen whole.
type liveMap struct {
	mem []uint64
}

func mapLive(m *ebpf.Map) (*liveMap, error) {
	mem, err := mmapU64(m)
	if err != nil {
		return nil, fmt.Errorf("map ring_live_map: %w", err)
	}
	return &liveMap{mem: mem}, nil
}

func (l *liveMap) load(id uint32) uint64     { return atomic.LoadUint64(&l.mem[id]) }
func (l *liveMap) store(id uint32, v uint64) { atomic.StoreUint64(&l.mem[id], v) }

func (l *liveMap) close() error {
	if l == nil || l.mem == nil {
		return nil
	}
	err := munmap(l.mem)
	l.mem = nil
	return err
}

// mmapU64 maps an mmapable BPF array of 8-byte values read-write (the
// kernel lays array values out 8 bytes apart, so value i is element i). The
// mapping is outside the Go heap and stays valid until munmap, even after
// the map's FD is closed.
func mmapU64(m *ebpf.Map) ([]uint64, error) {
	if m.Type() != ebpf.Array || m.ValueSize() != 8 {
		return nil, fmt.Errorf("map %s: want an array of 8-byte values: %w", m, ErrIncompatiblePins)
	}
	page := os.Getpagesize()
	size := (int(m.MaxEntries())*8 + page - 1) / page * page
	b, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", m, err)
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), m.MaxEntries()), nil
}

func munmap(mem []uint64) error {
	page := os.Getpagesize()
	size := (len(mem)*8 + page - 1) / page * page
	if err := unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), size)); err != nil {
		return fmt.Errorf("munmap table: %w", err)
	}
	return nil
}
