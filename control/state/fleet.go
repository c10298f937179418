package state

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/etcdstore"
)

// The fleet's key layout under the etcd prefix (state.etcd.prefix):
//
//	vips/<addr>:<port>/<proto>   one VIP: mode, table size, backends with
//	                             weight and drain (JSON of VIP)
//	base                         the configuration file's state as last
//	                             applied with `xlb reload` (JSON of Desired):
//	                             the merge base of the next reload
//
// One key per VIP keeps changes to different VIPs from conflicting, and a
// compare-and-set on the VIP's key covers everything a change reads.
const (
	fleetVIPs = "vips/"
	fleetBase = "base"
)

// FleetKey is the key of a VIP's record, relative to the prefix.
func FleetKey(k api.VIPKey) string { return fleetVIPs + k.String() }

// Fleet is desired state as read from etcd.
type Fleet struct {
	Desired Desired
	// Base is the configuration file's state last applied; HasBase is
	// false until a daemon first seeds the prefix.
	Base    Desired
	HasBase bool
	// Revisions holds the ModRevision of every key read, for the
	// compare-and-set of the next change.
	Revisions map[string]int64
}

// FleetFromSnapshot decodes a snapshot of the prefix. A record that does
// not decode, or whose key does not match its content, is skipped and
// reported; the rest is used.
func FleetFromSnapshot(snap etcdstore.Snapshot) (Fleet, []error) {
	f := Fleet{Revisions: make(map[string]int64, len(snap.KVs))}
	var errs []error
	for k, kv := range snap.KVs {
		f.Revisions[k] = kv.ModRevision
		switch {
		case k == fleetBase:
			var b Desired
			if err := json.Unmarshal(kv.Value, &b); err != nil {
				errs = append(errs, fmt.Errorf("key %s: %w", k, err))
				continue
			}
			f.Base, f.HasBase = b, true
		case strings.HasPrefix(k, fleetVIPs):
			var v VIP
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				errs = append(errs, fmt.Errorf("key %s: %w", k, err))
				continue
			}
			if FleetKey(v.Key) != k {
				errs = append(errs, fmt.Errorf("key %s holds vip %s", k, v.Key))
				continue
			}
			sortBackends(v.Backends)
			f.Desired.VIPs = append(f.Desired.VIPs, v)
		default:
			errs = append(errs, fmt.Errorf("key %s: not an xlb key", k))
		}
	}
	sortVIPs(f.Desired.VIPs)
	sortVIPs(f.Base.VIPs)
	return f, errs
}

// FleetOps are the writes that turn cur into next, each on the condition
// that its key still has the revision it was read at (revs; absent means
// it must not exist).
func FleetOps(cur, next Desired, revs map[string]int64) ([]etcdstore.Op, error) {
	var ops []etcdstore.Op
	old := make(map[api.VIPKey]VIP, len(cur.VIPs))
	for _, v := range cur.VIPs {
		old[v.Key] = v
	}
	for _, v := range next.VIPs {
		if o, ok := old[v.Key]; ok && o.Equal(v) {
			delete(old, v.Key)
			continue
		}
		delete(old, v.Key)
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode vip %s: %w", v.Key, err)
		}
		k := FleetKey(v.Key)
		ops = append(ops, etcdstore.Op{Key: k, Value: data, ExpectRevision: revs[k]})
	}
	for key := range old {
		k := FleetKey(key)
		ops = append(ops, etcdstore.Op{Key: k, Delete: true, ExpectRevision: revs[k]})
	}
	return ops, nil
}

// FleetBaseOp writes the merge base on the condition of its revision.
func FleetBaseOp(base Desired, revs map[string]int64) (etcdstore.Op, error) {
	data, err := json.Marshal(base)
	if err != nil {
		return etcdstore.Op{}, fmt.Errorf("encode base: %w", err)
	}
	return etcdstore.Op{Key: fleetBase, Value: data, ExpectRevision: revs[fleetBase]}, nil
}
