package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/l7/config"
)

// fleetAttempts bounds the compare-and-set retries of one change.
const fleetAttempts = 8

// The L7 tier's key layout under store.etcd.prefix: one key per server
// the runtime changed, holding its Override (the file's entry when the
// change was made, and what the runtime wants):
//
//	servers/<pool>/<server>
//
// Pool names are path-escaped; server names cannot hold a slash.
const fleetServers = "servers/"

func overrideKey(pool, name string) string {
	return fleetServers + url.PathEscape(pool) + "/" + name
}

// fleet is the manager's side of an overlay shared through etcd: etcd is
// the truth, every proxy merges it with its own config file by the same
// rule (Merge), and the state file caches the last overlay applied.
type fleet struct {
	store    *etcdstore.Store
	settings config.Store
	// Under Manager.mu.
	snap etcdstore.Snapshot
	revs map[string]int64
	// applied is the snapshot's revision once it runs, for waitApplied.
	applied *etcdstore.Applied
}

func storeEqual(a, b config.Store) bool {
	return fmt.Sprint(a.EtcdConfig) == fmt.Sprint(b.EtcdConfig)
}

// openFleet connects to etcd and takes its overlay; cached is the state
// file's, used while etcd does not answer.
func (m *Manager) openFleet(cached State) error {
	ec := m.file.Store.EtcdConfig
	ec.Log = m.log.With("component", "store")
	st, err := etcdstore.Open(ec)
	if err != nil {
		return fmt.Errorf("open runtime pool store: %w", err)
	}
	m.fleet = &fleet{store: st, settings: m.file.Store, applied: etcdstore.NewApplied()}
	ctx, cancel := context.WithTimeout(context.Background(), st.Timeouts())
	defer cancel()
	snap, err := st.Get(ctx)
	if err != nil {
		m.log.Warn("runtime pool store unreachable at start: serving the cached runtime changes, changes refused until it answers",
			"endpoints", strings.Join(ec.Endpoints, ","), "cache", m.statePath, "overrides", len(cached.Overrides), "error", err)
		m.state = State{Version: stateVersion, Overrides: cached.Overrides}
		return nil
	}
	m.takeLocked(snap)
	return nil
}

// Follow keeps the overlay in step with etcd until ctx ends (a no-op
// without etcd). Run it after Attach.
func (m *Manager) Follow(ctx context.Context) {
	if m.fleet == nil {
		return
	}
	m.mu.Lock()
	from := m.fleet.snap
	m.mu.Unlock()
	_ = m.fleet.store.Sync(ctx, from, func(snap etcdstore.Snapshot, _ []etcdstore.Change) { m.applyFleet(snap) })
}

// Close releases the store's connection.
func (m *Manager) Close() error {
	if m.fleet == nil {
		return nil
	}
	return m.fleet.store.Close()
}

// StoreHealth reports the runtime pool store; ok is false without etcd.
func (m *Manager) StoreHealth() (h etcdstore.Health, ok bool) {
	if m.fleet == nil {
		return etcdstore.Health{}, false
	}
	return m.fleet.store.Health(), true
}

// Store is the etcd store, nil without one (metrics).
func (m *Manager) Store() *etcdstore.Store {
	if m.fleet == nil {
		return nil
	}
	return m.fleet.store
}

func stateFromSnapshot(snap etcdstore.Snapshot) (State, []error) {
	kvs := make([]etcdstore.KV, 0, len(snap.KVs))
	for _, kv := range snap.KVs {
		kvs = append(kvs, kv)
	}
	// The order the servers were first added in, as in the state file.
	slices.SortFunc(kvs, func(a, b etcdstore.KV) int {
		return cmp.Or(cmp.Compare(a.CreateRevision, b.CreateRevision), strings.Compare(a.Key, b.Key))
	})
	st := State{Version: stateVersion, Overrides: []Override{}}
	var errs []error
	for _, kv := range kvs {
		var o Override
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", kv.Key, err))
			continue
		}
		if overrideKey(o.Pool, o.Name) != kv.Key {
			errs = append(errs, fmt.Errorf("key %s holds server %s/%s", kv.Key, o.Pool, o.Name))
			continue
		}
		st.Overrides = append(st.Overrides, o)
	}
	return st, errs
}

// takeLocked makes snap the overlay and caches it; the proxy, when
// attached, applies it.
func (m *Manager) takeLocked(snap etcdstore.Snapshot) {
	st, errs := stateFromSnapshot(snap)
	for _, err := range errs {
		m.log.Error("runtime pool record skipped", "prefix", m.fleet.store.Prefix(), "error", err)
	}
	revs := make(map[string]int64, len(snap.KVs))
	for k, kv := range snap.KVs {
		revs[k] = kv.ModRevision
	}
	m.fleet.snap, m.fleet.revs = snap, revs
	run, _, notes := Merge(m.file, st)
	m.logNotes(notes)
	m.state = st
	if m.proxy != nil {
		if _, err := m.proxy.Apply(run); err != nil {
			m.log.Error("runtime pool changes from the store not applied: the running pools stay", "error", err)
		} else {
			m.run = run
		}
	} else {
		m.run = run
	}
	if err := m.saveLocked(st); err != nil {
		m.log.Warn("cache runtime pool changes", "state_file", m.statePath, "error", err)
	}
	m.fleet.applied.Set(snap.Revision)
}

func (m *Manager) applyFleet(snap etcdstore.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if snap.Revision <= m.fleet.snap.Revision {
		return
	}
	m.takeLocked(snap)
}

// overrideOps are the writes that turn the overlay cur into next, each on
// the revision its key was read at.
func overrideOps(cur, next State, revs map[string]int64) ([]etcdstore.Op, error) {
	old := map[string]Override{}
	for _, o := range cur.Overrides {
		old[overrideKey(o.Pool, o.Name)] = o
	}
	var ops []etcdstore.Op
	for _, o := range next.Overrides {
		k := overrideKey(o.Pool, o.Name)
		if was, ok := old[k]; ok && overrideEqual(was, o) {
			delete(old, k)
			continue
		}
		delete(old, k)
		data, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode runtime change: %w", err)
		}
		ops = append(ops, etcdstore.Op{Key: k, Value: data, ExpectRevision: revs[k]})
	}
	for k := range old {
		ops = append(ops, etcdstore.Op{Key: k, Delete: true, ExpectRevision: revs[k]})
	}
	return ops, nil
}

// fleetChange is change with etcd: edit runs on the overlay as last read,
// and the servers it touches are written with a compare-and-set on their
// revisions. It returns once committed and applied on this host.
func (m *Manager) fleetChange(what string, edit func(run *config.Config, st *State) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.fleet.store.Timeouts())
	defer cancel()
	for range fleetAttempts {
		if err := m.fleet.store.Unavailable(); err != nil {
			return errorf(ErrUnavailable, "%s: %w (changes are refused; the pools keep their last state)", what, err)
		}
		m.mu.Lock()
		next := State{Version: stateVersion, Overrides: slices.Clone(m.state.Overrides)}
		err := edit(m.run, &next)
		var ops []etcdstore.Op
		if err == nil {
			ops, err = overrideOps(m.state, next, m.fleet.revs)
		}
		m.mu.Unlock()
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			return nil
		}
		rev, err := m.fleet.store.Commit(ctx, ops)
		if errors.Is(err, etcdstore.ErrConflict) {
			snap, gerr := m.fleet.store.Get(ctx)
			if gerr != nil {
				return errorf(ErrUnavailable, "%s: %w", what, gerr)
			}
			m.applyFleet(snap)
			continue
		}
		if err != nil {
			return errorf(ErrUnavailable, "%s: %w", what, err)
		}
		m.waitApplied(ctx, rev)
		m.log.Info("pool changed at runtime, for every L7 host", "change", what, "revision", rev)
		return nil
	}
	return errorf(ErrConflict, "%s: the pool changed under this change %d times in a row (other hosts writing the same server): try again", what, fleetAttempts)
}

// waitApplied waits until this host has applied revision rev.
func (m *Manager) waitApplied(ctx context.Context, rev int64) {
	if m.fleet.applied.Wait(ctx, rev, m.fleet.store.Timeouts()) || ctx.Err() != nil {
		return
	}
	if snap, err := m.fleet.store.Get(ctx); err == nil {
		m.applyFleet(snap)
	}
}
