package reconcile

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/internal/failopen"
	"github.com/xlbproject/xlb/maglev"
)

// BackendID is the data path's name for an L7 host; 0 means "no backend".
type BackendID uint32

// Dataplane is what the reconciler needs from the data path. The daemon
// adapts *l4.Dataplane to it; tests record the calls.
type Dataplane interface {
	// UpsertVIP creates the VIP (idempotent).
	UpsertVIP(key api.VIPKey) error
	// DeleteVIP removes the VIP and its table.
	DeleteVIP(key api.VIPKey) error
	// UpsertBackend returns the backend's id, creating it if needed
	// (idempotent for the same address).
	UpsertBackend(addr netip.Addr) (BackendID, error)
	// DeleteBackend removes a backend no table names any more.
	DeleteBackend(addr netip.Addr, id BackendID) error
	// InstallTable replaces the VIP's whole table atomically; an empty
	// table means "drop and count", never "keep the old one".
	InstallTable(key api.VIPKey, table []BackendID) error
}

// Health is what a VIP's backend's checks say about it.
type Health uint8

const (
	// Unchecked: no check has finished yet (the backend was just added,
	// or its check's port changed). It is neither passing nor failing: it
	// keeps the place it had in the table, a new one gets no flows until
	// its first result, and it never counts towards failing open.
	Unchecked Health = iota
	Passing
	Failing
)

// HealthFunc reports what a VIP's backend's checks say.
type HealthFunc func(vip api.VIPKey, backend netip.Addr) Health

// Reconciler turns desired state × health into the data path's VIPs,
// backends and Maglev tables. It remembers what it installed and rebuilds
// only the VIPs whose table input (in-table backends, weights, size)
// changed. It is not safe for concurrent use; the daemon serialises calls.
type Reconciler struct {
	log *slog.Logger
	dp  Dataplane
	now func() time.Time

	vips     map[api.VIPKey]*installed
	backends map[netip.Addr]BackendID
	// failOpen: when a VIP's backends fail their checks, whether and
	// below which share of passing ones new flows go to all of them.
	failOpen    failopen.Policy
	failOpenSet bool
}

type installed struct {
	input  []maglev.Backend // sorted by name: the table's whole input
	size   uint32
	ids    []BackendID // the installed table
	counts map[netip.Addr]int
	// failingOpen: the table holds every backend not drained, failing
	// ones included, because too few pass.
	failingOpen bool
	// passing and checked are VIPResult's, as of the last run.
	passing, checked int
	// ok is false when the last install failed; the next run retries.
	ok bool
}

// New returns a reconciler that starts from an empty view of the data
// path: its first run installs every VIP's table (on a restart that adopted
// a pinned data path, the same tables are swapped in, which is harmless).
func New(log *slog.Logger, dp Dataplane) *Reconciler {
	return &Reconciler{log: log, dp: dp, now: time.Now, vips: map[api.VIPKey]*installed{}, backends: map[netip.Addr]BackendID{}}
}

// SetFailOpen chooses what the next runs do with a VIP whose backends
// fail their checks: while p.Open says so, new flows go to every backend
// that is not drained, passing or not (Envoy's panic routing: the checks
// failing nearly everywhere at once is more often the checker's fault
// than every host's, and the few that pass would drown under everything).
// Otherwise the table holds the passing ones, and is empty when none
// passes. Drained backends and weight 0 stay out either way. A change of
// policy is logged; the VIPs it moves in or out of failing open log that
// on the next run.
func (r *Reconciler) SetFailOpen(p failopen.Policy) {
	if r.failOpenSet && p != r.failOpen {
		r.log.Info("fail-open policy changed", "from", r.failOpen.String(), "to", p.String())
	}
	r.failOpen, r.failOpenSet = p, true
}

// Adopt tells the reconciler what an adopted (pinned) data path already
// holds, so that the first run reuses those VIPs and backends and removes
// the ones desired state no longer has. Adopted tables are rebuilt once.
func (r *Reconciler) Adopt(vips []api.VIPKey, backends map[netip.Addr]BackendID) {
	for _, k := range vips {
		if _, ok := r.vips[k]; !ok {
			r.vips[k] = &installed{}
		}
	}
	for a, id := range backends {
		r.backends[a] = id
	}
}

// VIPResult is what one run did to one VIP.
type VIPResult struct {
	Key api.VIPKey
	// Rebuilt is true when a new table was built and installed.
	Rebuilt  bool
	Duration time.Duration // build + install, when Rebuilt
	// Moved is how many slots changed owner, when Rebuilt.
	Moved int
	// Slots is the number of table entries per backend now installed.
	Slots map[netip.Addr]int
	// FailingOpen is set when the table holds every backend not drained,
	// failing ones included, because too few pass (SetFailOpen).
	FailingOpen bool
	// Passing and Checked count the backends that take part in that
	// decision (not drained, weight above 0, checked at least once) and,
	// of those, the ones passing their checks.
	Passing, Checked int
	// States is each backend's effective state (api.StateActive, ...).
	States map[netip.Addr]string
	Err    error
}

// Report is what one run did.
type Report struct {
	VIPs     []VIPResult
	Removed  []api.VIPKey
	Rebuilds int
	Duration time.Duration
}

// BackendState derives the effective state of a backend: draining wins over
// down, because an operator who drained a host wants it out whatever its
// health says.
func BackendState(b state.Backend, h Health) string {
	switch {
	case b.Drain:
		return api.StateDraining
	case h != Passing:
		return api.StateDown
	default:
		return api.StateActive
	}
}

// Reconcile makes the data path match desired × health. It carries on past
// a failing VIP and returns every error joined; a failed VIP is retried on
// the next run.
func (r *Reconciler) Reconcile(desired state.Desired, up HealthFunc) (Report, error) {
	start := r.now()
	var rep Report
	var errs []error

	// Backends first: every backend of every desired VIP exists in the data
	// path, drained and down ones included, so that established flows
	// pinned to them by the connection table keep being forwarded.
	wanted := map[netip.Addr]bool{}
	for _, v := range desired.VIPs {
		for _, b := range v.Backends {
			wanted[b.Addr] = true
			if _, ok := r.backends[b.Addr]; ok {
				continue
			}
			id, err := r.dp.UpsertBackend(b.Addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("upsert backend %s: %w", b.Addr, err))
				continue
			}
			r.backends[b.Addr] = id
			r.log.Info("backend added to data path", "backend", b.Addr.String(), "id", uint32(id))
		}
	}

	desiredKeys := map[api.VIPKey]bool{}
	for _, v := range desired.VIPs {
		desiredKeys[v.Key] = true
		res := r.vip(v, up)
		if res.Rebuilt {
			rep.Rebuilds++
		}
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
		rep.VIPs = append(rep.VIPs, res)
	}

	// Removed VIPs go after the tables are in place.
	for key := range r.vips {
		if desiredKeys[key] {
			continue
		}
		if err := r.dp.DeleteVIP(key); err != nil {
			errs = append(errs, fmt.Errorf("delete vip %s: %w", key, err))
			continue
		}
		delete(r.vips, key)
		rep.Removed = append(rep.Removed, key)
		r.log.Info("vip removed from data path", "vip", key.String())
	}
	slices.SortFunc(rep.Removed, func(a, b api.VIPKey) int { return a.Addr.Compare(b.Addr) })

	// Backends no VIP wants any more go last, once no table names them.
	for addr, id := range r.backends {
		if wanted[addr] || r.inAnyTable(addr) {
			continue
		}
		if err := r.dp.DeleteBackend(addr, id); err != nil {
			errs = append(errs, fmt.Errorf("delete backend %s: %w", addr, err))
			continue
		}
		delete(r.backends, addr)
		r.log.Info("backend removed from data path", "backend", addr.String(), "id", uint32(id))
	}
	rep.Duration = r.now().Sub(start)
	return rep, errors.Join(errs...)
}

// inAnyTable reports whether an installed table (possibly of a VIP whose
// delete failed) still names addr.
func (r *Reconciler) inAnyTable(addr netip.Addr) bool {
	for _, in := range r.vips {
		if in.counts[addr] > 0 {
			return true
		}
	}
	return false
}

func (r *Reconciler) vip(v state.VIP, up HealthFunc) VIPResult {
	res := VIPResult{Key: v.Key, States: map[netip.Addr]string{}}
	cur, exists := r.vips[v.Key]
	// An unchecked backend keeps its place in an ordinary table (a reload
	// that moved the check's port must not empty the tables), and stays
	// out of a failing-open one's successor until its first result.
	kept := func(addr netip.Addr) bool {
		return exists && !cur.failingOpen && cur.counts[addr] > 0
	}
	var input, failing, unchecked []maglev.Backend
	for _, b := range v.Backends {
		h := up(v.Key, b.Addr)
		st := BackendState(b, h)
		res.States[b.Addr] = st
		if _, known := r.backends[b.Addr]; !known || b.Weight == 0 || b.Drain {
			continue
		}
		mb := maglev.Backend{Name: b.Addr.String(), Weight: b.Weight}
		switch h {
		case Passing:
			input = append(input, mb)
		case Failing:
			failing = append(failing, mb)
		default:
			unchecked = append(unchecked, mb)
		}
	}
	res.Passing, res.Checked = len(input), len(input)+len(failing)
	if r.failOpen.Open(len(input), len(failing)) {
		input, res.FailingOpen = slices.Concat(input, failing, unchecked), true
	} else {
		for _, b := range unchecked {
			if kept(netip.MustParseAddr(b.Name)) {
				input = append(input, b)
			}
		}
	}
	slices.SortFunc(input, func(a, b maglev.Backend) int { return strings.Compare(a.Name, b.Name) })

	if exists && cur.ok && cur.size == v.TableSize && slices.Equal(cur.input, input) && cur.failingOpen == res.FailingOpen {
		res.Slots = cur.counts
		cur.passing, cur.checked = res.Passing, res.Checked
		return res
	}
	if !exists {
		if err := r.dp.UpsertVIP(v.Key); err != nil {
			res.Err = fmt.Errorf("upsert vip %s: %w", v.Key, err)
			return res
		}
		cur = &installed{}
		r.vips[v.Key] = cur
	}

	wasOpen := cur.failingOpen
	t0 := r.now()
	table, err := maglev.Build(input, int(v.TableSize))
	if err != nil {
		cur.ok = false
		res.Err = fmt.Errorf("build table of vip %s: %w", v.Key, err)
		return res
	}
	ids := make([]BackendID, len(table.Slots))
	nameIDs := make([]BackendID, len(table.Names))
	for i, n := range table.Names {
		nameIDs[i] = r.backends[netip.MustParseAddr(n)]
	}
	for i, s := range table.Slots {
		ids[i] = nameIDs[s]
	}
	if err := r.dp.InstallTable(v.Key, ids); err != nil {
		cur.ok = false
		res.Err = fmt.Errorf("install table of vip %s: %w", v.Key, err)
		return res
	}
	res.Duration = r.now().Sub(t0)
	res.Rebuilt = true
	res.Moved = moved(cur.ids, ids)

	counts := map[netip.Addr]int{}
	for i, c := range table.Counts() {
		if c > 0 {
			counts[netip.MustParseAddr(table.Names[i])] = c
		}
	}
	*cur = installed{input: input, size: v.TableSize, ids: ids, counts: counts, failingOpen: res.FailingOpen, passing: res.Passing, checked: res.Checked, ok: true}
	res.Slots = counts

	inTable := make([]string, len(input))
	for i, b := range input {
		inTable[i] = b.Name
	}
	attrs := []any{"vip", v.Key.String(), "backends", inTable, "slots_moved", res.Moved, "duration", res.Duration}
	// Failing open is logged when it starts and when it ends: a table
	// rebuilt meanwhile (a weight, a backend added) is an ordinary install.
	open := []any{"vip", v.Key.String(), "passing", res.Passing, "checked", res.Checked, "fail_open", r.failOpen.String()}
	switch {
	case res.FailingOpen && !wasOpen:
		r.log.Warn("too few backends pass their health checks: failing open, new flows go to every backend not drained", append(open, "backends", inTable)...)
	case !res.FailingOpen && wasOpen:
		r.log.Info("vip no longer failing open", open...)
	}
	switch {
	case table.Empty():
		r.log.Warn("table installed empty: no usable backend, packets are dropped", attrs...)
	default:
		r.log.Info("table installed", append(attrs, "failing_open", res.FailingOpen)...)
	}
	return res
}

// FailingOpen reports whether the VIP's installed table holds every
// backend not drained because too few pass their checks (SetFailOpen).
func (r *Reconciler) FailingOpen(key api.VIPKey) bool {
	in, ok := r.vips[key]
	return ok && in.failingOpen
}

// Passing returns VIPResult's Passing and Checked of the VIP's last run.
func (r *Reconciler) Passing(key api.VIPKey) (passing, checked int) {
	if in, ok := r.vips[key]; ok {
		return in.passing, in.checked
	}
	return 0, 0
}

// Slots returns the installed per-backend slot counts of a VIP.
func (r *Reconciler) Slots(key api.VIPKey) map[netip.Addr]int {
	if in, ok := r.vips[key]; ok {
		return in.counts
	}
	return nil
}

// moved counts the slots whose backend differs; a missing slot (an empty
// table) is owned by nobody.
func moved(old, new []BackendID) int {
	n := 0
	for i := range max(len(old), len(new)) {
		var a, b BackendID
		if i < len(old) {
			a = old[i]
		}
		if i < len(new) {
			b = new[i]
		}
		if a != b {
			n++
		}
	}
	return n
}
