package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/internal/etcdstore"
)

// fleetAttempts bounds the compare-and-set retries of one change: each
// retry follows a write by another daemon to the same VIP.
const fleetAttempts = 8

// fleet is the daemon's side of a desired state shared through etcd
// (state.store: etcd). etcd is the truth: every daemon of the fleet
// applies what is under the prefix, and the state file only caches the
// last state applied, so that a daemon restarted while etcd is down starts
// from it instead of from nothing.
type fleet struct {
	store *etcdstore.Store
	// Under Daemon.mu: the snapshot last applied and the revisions of its
	// keys (the compare-and-set of the next change).
	snap    etcdstore.Snapshot
	revs    map[string]int64
	hasBase bool
	// applied is the snapshot's revision once it is live, for waitFleet.
	applied *etcdstore.Applied
}

// loadFleetCache starts from the state file as the last fleet state this
// host applied; the configuration file is not merged in (the fleet's state
// changes only through etcd, see reloadFleet).
func (d *Daemon) loadFleetCache() error {
	f, err := d.store.Load()
	switch {
	case errors.Is(err, os.ErrNotExist):
		f = state.File{}
	case err != nil:
		return fmt.Errorf("load cached fleet state: %w", err)
	}
	d.file = state.File{Base: f.Base, Desired: d.servable(f.Desired)}
	return nil
}

// openFleet connects to etcd and takes the fleet's desired state, seeding
// an empty prefix from the configuration file. etcd unreachable is not an
// error: the daemon starts from its cache and follows etcd once it answers.
func (d *Daemon) openFleet(ctx context.Context) error {
	ec := d.cfg.Etcd
	ec.Log = d.log.With("component", "store")
	st, err := etcdstore.Open(ec)
	if err != nil {
		return fmt.Errorf("open desired-state store: %w", err)
	}
	d.fleet = &fleet{store: st, applied: etcdstore.NewApplied()}
	gctx, cancel := context.WithTimeout(ctx, st.Timeouts())
	defer cancel()
	snap, err := d.seedFleet(gctx)
	if err != nil && !errors.Is(err, etcdstore.ErrUnavailable) {
		return fmt.Errorf("seed the fleet's desired state: %w", err)
	}
	if err != nil {
		d.log.Warn("desired-state store unreachable at start: forwarding from the cached state, changes refused until it answers",
			"endpoints", strings.Join(ec.Endpoints, ","), "cache", d.store.Path(), "vips", len(d.file.Desired.VIPs), "error", err)
		return nil
	}
	d.mu.Lock()
	d.takeFleetLocked(snap)
	base := state.FromConfig(d.cfg)
	if d.fleet.hasBase && !base.Equal(d.file.Base) {
		d.log.Warn("the configuration file's vips differ from the fleet's: `xlb reload` on this host applies the file's changes to every host",
			"config", d.cfg.File, "prefix", ec.Prefix)
	}
	d.mu.Unlock()
	return nil
}

// seedFleet reads the prefix; an empty one is seeded with the
// configuration file's state (as its base, too), on the condition that
// it is still empty: of daemons starting together one seeds, the others
// read what it wrote.
func (d *Daemon) seedFleet(ctx context.Context) (etcdstore.Snapshot, error) {
	st := d.fleet.store
	for {
		snap, err := st.Get(ctx)
		if err != nil || len(snap.KVs) > 0 {
			return snap, err
		}
		base := state.FromConfig(d.cfg)
		if err := checkDesired(base, d.cfg); err != nil {
			return etcdstore.Snapshot{}, err
		}
		ops, err := state.FleetOps(state.Desired{}, base, nil)
		if err != nil {
			return etcdstore.Snapshot{}, err
		}
		bop, err := state.FleetBaseOp(base, nil)
		if err != nil {
			return etcdstore.Snapshot{}, err
		}
		_, err = st.Commit(ctx, append(ops, bop))
		if err == nil {
			d.log.Info("seeded the fleet's desired state from the configuration file", "prefix", st.Prefix(), "vips", len(base.VIPs))
		} else if !errors.Is(err, etcdstore.ErrConflict) {
			return etcdstore.Snapshot{}, err
		}
	}
}

// servable drops, with an error in the log, the VIPs this host cannot
// serve (another table size, no outer source of the family): one host's
// configuration must not stop it from applying the rest of the fleet.
func (d *Daemon) servable(des state.Desired) state.Desired {
	out := state.Desired{VIPs: des.VIPs[:0:0]}
	for _, v := range des.VIPs {
		if err := checkDesired(state.Desired{VIPs: []state.VIP{v}}, d.cfg); err != nil {
			d.log.Error("fleet vip not applied on this host", "vip", v.Key.String(), "error", err)
			continue
		}
		out.VIPs = append(out.VIPs, v)
	}
	return out
}

// takeFleetLocked makes snap the desired state and caches it.
func (d *Daemon) takeFleetLocked(snap etcdstore.Snapshot) {
	f, errs := state.FleetFromSnapshot(snap)
	for _, err := range errs {
		d.log.Error("fleet record skipped", "prefix", d.fleet.store.Prefix(), "error", err)
	}
	d.file = state.File{Base: f.Base, Desired: d.servable(f.Desired)}
	d.fleet.snap, d.fleet.revs, d.fleet.hasBase = snap, f.Revisions, f.HasBase
	if err := d.store.Save(d.file); err != nil {
		d.log.Warn("cache fleet state", "state", d.store.Path(), "error", err)
	}
	d.fleet.applied.Set(snap.Revision)
}

// applyFleet applies a snapshot from etcd to the data path. One older
// than the state already applied (read directly after a lost
// compare-and-set) is skipped.
func (d *Daemon) applyFleet(snap etcdstore.Snapshot, _ []etcdstore.Change) {
	d.mu.Lock()
	if snap.Revision <= d.fleet.snap.Revision {
		d.mu.Unlock()
		return
	}
	if len(snap.KVs) == 0 && d.fleet.snap.Revision != 0 {
		// Not even the base is left: the prefix was wiped (or etcd
		// replaced by an empty cluster), which no xlb command does.
		// Emptying every table for that would turn losing etcd into
		// losing traffic: keep the state and write it back.
		des, base := d.file.Desired.Clone(), d.file.Base.Clone()
		d.mu.Unlock()
		d.log.Error("the fleet's prefix is empty (etcd wiped, or replaced by an empty cluster): keeping the last state and writing it back",
			"prefix", d.fleet.store.Prefix(), "vips", len(des.VIPs))
		d.reseedFleet(des, base)
		return
	}
	defer d.mu.Unlock()
	d.takeFleetLocked(snap)
	d.checker.Set(d.targetsLocked())
	d.reconcileLocked()
}

// reseedFleet writes des and base to an empty prefix (on the condition
// that it still is: of several daemons one writes, the others then apply
// what it wrote).
func (d *Daemon) reseedFleet(des, base state.Desired) {
	ops, err := state.FleetOps(state.Desired{}, des, nil)
	if err == nil {
		var bop etcdstore.Op
		if bop, err = state.FleetBaseOp(base, nil); err == nil {
			ops = append(ops, bop)
		}
	}
	if err != nil {
		d.log.Error("write the fleet's state back", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.fleet.store.Timeouts())
	defer cancel()
	if _, err := d.fleet.store.Commit(ctx, ops); err != nil && !errors.Is(err, etcdstore.ErrConflict) {
		d.log.Error("write the fleet's state back", "error", err)
	}
}

// runFleet follows etcd until ctx ends.
func (d *Daemon) runFleet(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("fleet watcher panicked: desired state no longer follows etcd", "panic", r)
		}
	}()
	d.mu.Lock()
	from := d.fleet.snap
	d.mu.Unlock()
	_ = d.fleet.store.Sync(ctx, from, d.applyFleet)
}

// refreshFleet reads etcd and applies what it holds (after a lost
// compare-and-set, so that the retry starts from the winner's state).
func (d *Daemon) refreshFleet(ctx context.Context) error {
	snap, err := d.fleet.store.Get(ctx)
	if err != nil {
		return err
	}
	d.applyFleet(snap, nil)
	return nil
}

// waitFleet waits until this daemon has applied revision rev, so that a
// change is live on this host when the API acknowledges it. It gives up
// after the store's timeouts (the change is committed either way).
func (d *Daemon) waitFleet(ctx context.Context, rev int64) {
	if !d.fleet.applied.Wait(ctx, rev, d.fleet.store.Timeouts()) && ctx.Err() == nil {
		_ = d.refreshFleet(ctx)
	}
}

// unavailable is the API's answer while etcd cannot take a change.
func (d *Daemon) unavailable(err error) error {
	return api.Errorf(api.ErrUnavailable, "%w (changes are refused; the data path keeps its last state)", err)
}

// commitFleet writes what ops say, retrying from etcd's state after a lost
// compare-and-set: build runs under d.mu on the state as last applied and
// returns the writes (none: nothing to do). Returns once committed and
// applied here.
func (d *Daemon) commitFleet(ctx context.Context, build func() ([]etcdstore.Op, error), after func()) error {
	for range fleetAttempts {
		if err := d.fleet.store.Unavailable(); err != nil {
			return d.unavailable(err)
		}
		d.mu.Lock()
		ops, err := build()
		d.mu.Unlock()
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			if after != nil {
				after()
			}
			return nil
		}
		rev, err := d.fleet.store.Commit(ctx, ops)
		if errors.Is(err, etcdstore.ErrConflict) {
			if err := d.refreshFleet(ctx); err != nil {
				return d.unavailable(err)
			}
			continue
		}
		if err != nil {
			return d.unavailable(err)
		}
		if after != nil {
			after()
		}
		d.waitFleet(ctx, rev)
		return nil
	}
	return api.Errorf(api.ErrConflict, "desired state changed under this change %d times in a row (other hosts writing the same vip): try again", fleetAttempts)
}

// fleetChange is change with etcd: the change applies to the state as
// last read, and is written with a compare-and-set on the revisions of
// the VIPs it touches.
func (d *Daemon) fleetChange(ctx context.Context, fn func(*state.Desired) error) error {
	return d.commitFleet(ctx, func() ([]etcdstore.Op, error) {
		next, err := d.nextLocked(ctx, fn)
		if err != nil {
			return nil, err
		}
		return state.FleetOps(d.file.Desired, next, d.fleet.revs)
	}, nil)
}

// reloadFleet is Reload with etcd. The file's settings apply to this host;
// what changed in the file's VIPs since the fleet's base (the file last
// applied, by any host) is merged into etcd's state by the same three-way
// rule as a single host's reload, and the file becomes the new base.
func (d *Daemon) reloadFleet(ctx context.Context) error {
	d.mu.Lock()
	running := d.cfg
	d.mu.Unlock()
	cfg, err := config.Load(running.File)
	if err != nil {
		d.log.Warn("reload rejected: running state unchanged", "config", running.File, "error", err)
		return api.Errorf(api.ErrInvalid, "%w", err)
	}
	if err := restartNeeded(running, cfg); err != nil {
		d.log.Warn("reload rejected: running state unchanged", "config", running.File, "error", err)
		return err
	}
	base := state.FromConfig(cfg)
	err = d.commitFleet(ctx, func() ([]etcdstore.Op, error) {
		next := state.Rebase(d.file.Desired, d.file.Base, base)
		if err := checkDesired(next, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.File, err)
		}
		ops, err := state.FleetOps(d.file.Desired, next, d.fleet.revs)
		if err != nil {
			return nil, err
		}
		if !d.fleet.hasBase || !d.file.Base.Equal(base) {
			bop, err := state.FleetBaseOp(base, d.fleet.revs)
			if err != nil {
				return nil, err
			}
			ops = append(ops, bop)
		}
		return ops, nil
	}, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.cfg = cfg
		d.checker.Set(d.targetsLocked())
		d.reconcileLocked()
	})
	if err != nil {
		return err
	}
	d.log.Info("configuration reloaded and applied to the fleet", "config", cfg.File, "prefix", d.fleet.store.Prefix())
	return nil
}

// storeStatusLocked reports the desired-state store.
func (d *Daemon) storeStatusLocked() api.StoreStatus {
	if d.fleet == nil {
		return api.StoreStatus{Kind: config.StoreFile, Up: true}
	}
	h := d.fleet.store.Health()
	return api.StoreStatus{Kind: config.StoreEtcd, Endpoints: d.cfg.Etcd.Endpoints, Prefix: d.cfg.Etcd.Prefix,
		Up: h.Up, Since: h.Since, Error: h.Err, Revision: d.fleet.snap.Revision}
}
