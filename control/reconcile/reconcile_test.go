package reconcile

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/internal/failopen"
)

// recorder is a data path that keeps what it is told, checks the order
// rules of the real one, and counts calls.
type recorder struct {
	nextID   BackendID
	vips     map[api.VIPKey]bool
	backends map[netip.Addr]BackendID
	tables   map[api.VIPKey][]BackendID
	installs map[api.VIPKey]int
	calls    []string
	failNext map[string]error
}

func newRecorder(firstID BackendID) *recorder {
	return &recorder{
		nextID: firstID, vips: map[api.VIPKey]bool{}, backends: map[netip.Addr]BackendID{},
		tables: map[api.VIPKey][]BackendID{}, installs: map[api.VIPKey]int{}, failNext: map[string]error{},
	}
}

func (r *recorder) fail(op string) error {
	if err, ok := r.failNext[op]; ok {
		delete(r.failNext, op)
		return err
	}
	return nil
}

func (r *recorder) UpsertVIP(k api.VIPKey) error {
	r.calls = append(r.calls, "upsert-vip "+k.String())
	if err := r.fail("upsert-vip"); err != nil {
		return err
	}
	r.vips[k] = true
	return nil
}

func (r *recorder) DeleteVIP(k api.VIPKey) error {
	r.calls = append(r.calls, "delete-vip "+k.String())
	if !r.vips[k] {
		return errors.New("unknown vip")
	}
	delete(r.vips, k)
	delete(r.tables, k)
	return nil
}

func (r *recorder) UpsertBackend(a netip.Addr) (BackendID, error) {
	r.calls = append(r.calls, "upsert-backend "+a.String())
	if id, ok := r.backends[a]; ok {
		return id, nil
	}
	r.nextID++
	r.backends[a] = r.nextID
	return r.nextID, nil
}

func (r *recorder) DeleteBackend(a netip.Addr, id BackendID) error {
	r.calls = append(r.calls, "delete-backend "+a.String())
	if r.backends[a] != id {
		return errors.New("unknown backend")
	}
	for k, t := range r.tables {
		for _, s := range t {
			if s == id {
				return fmt.Errorf("backend in use by %s", k)
			}
		}
	}
	delete(r.backends, a)
	return nil
}

func (r *recorder) InstallTable(k api.VIPKey, t []BackendID) error {
	r.calls = append(r.calls, "install "+k.String())
	if !r.vips[k] {
		return errors.New("unknown vip")
	}
	if err := r.fail("install"); err != nil {
		return err
	}
	known := map[BackendID]bool{}
	for _, id := range r.backends {
		known[id] = true
	}
	for _, id := range t {
		if !known[id] {
			return fmt.Errorf("table names unknown backend %d", id)
		}
	}
	r.tables[k] = append([]BackendID(nil), t...)
	r.installs[k]++
	return nil
}

// counts returns the installed table of k as slots per backend address.
func (r *recorder) counts(k api.VIPKey) map[netip.Addr]int {
	byID := map[BackendID]netip.Addr{}
	for a, id := range r.backends {
		byID[id] = a
	}
	m := map[netip.Addr]int{}
	for _, id := range r.tables[k] {
		m[byID[id]]++
	}
	return m
}

// addrs returns the installed table of k with addresses instead of ids.
func (r *recorder) addrs(k api.VIPKey) []netip.Addr {
	byID := map[BackendID]netip.Addr{}
	for a, id := range r.backends {
		byID[id] = a
	}
	out := make([]netip.Addr, len(r.tables[k]))
	for i, id := range r.tables[k] {
		out[i] = byID[id]
	}
	return out
}

var (
	vipA = api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: "tcp"}
	vipB = api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 443, Proto: "tcp"}
	h1   = netip.MustParseAddr("10.0.1.1")
	h2   = netip.MustParseAddr("10.0.1.2")
	h3   = netip.MustParseAddr("10.0.1.3")
)

const m = 65537

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func desired(vips ...state.VIP) state.Desired { return state.Desired{VIPs: vips} }

func vipOf(k api.VIPKey, bs ...state.Backend) state.VIP {
	return state.VIP{Key: k, Mode: "ipip", TableSize: m, Backends: bs}
}

func be(a netip.Addr, w uint32, drain bool) state.Backend {
	return state.Backend{Addr: a, Weight: w, Drain: drain}
}

func allUp(api.VIPKey, netip.Addr) Health { return Passing }

func downSet(down ...netip.Addr) HealthFunc {
	return healthOf(nil, down)
}

// healthOf: unchecked ones first, then failing ones, everyone else passes.
func healthOf(unchecked, failing []netip.Addr) HealthFunc {
	return func(_ api.VIPKey, a netip.Addr) Health {
		switch {
		case slices.Contains(unchecked, a):
			return Unchecked
		case slices.Contains(failing, a):
			return Failing
		}
		return Passing
	}
}

func three(drain2 bool, w3 uint32) state.Desired {
	return desired(
		vipOf(vipA, be(h1, 1, false), be(h2, 1, drain2), be(h3, w3, false)),
		vipOf(vipB, be(h1, 1, false), be(h2, 1, false)),
	)
}

// TestTransitions starts from three equal backends and applies one change
// per case, checking the installed table and which VIPs were rebuilt.
func TestTransitions(t *testing.T) {
	tests := []struct {
		name        string
		next        state.Desired
		health      HealthFunc
		wantSlots   map[netip.Addr]int // VIP A's slots; -1 = "about a third"
		wantState   map[netip.Addr]string
		wantInstall int // VIP A installs in the second run
		wantVIPB    int // VIP B installs in the second run
	}{
		{
			name: "no change rebuilds nothing", next: three(false, 1), health: allUp,
			wantSlots:   map[netip.Addr]int{h1: 21846, h2: 21846, h3: 21845},
			wantState:   map[netip.Addr]string{h1: "active", h2: "active", h3: "active"},
			wantInstall: 0, wantVIPB: 0,
		},
		{
			name: "drain takes the backend out of one vip only", next: three(true, 1), health: allUp,
			wantSlots:   map[netip.Addr]int{h1: 32769, h3: 32768},
			wantState:   map[netip.Addr]string{h1: "active", h2: "draining", h3: "active"},
			wantInstall: 1, wantVIPB: 0,
		},
		{
			name: "health down takes it out of both vips", next: three(false, 1), health: downSet(h1),
			wantSlots:   map[netip.Addr]int{h2: 32769, h3: 32768},
			wantState:   map[netip.Addr]string{h1: "down", h2: "active", h3: "active"},
			wantInstall: 1, wantVIPB: 1,
		},
		{
			name: "drain wins over down", next: three(true, 1), health: downSet(h2),
			wantSlots:   map[netip.Addr]int{h1: 32769, h3: 32768},
			wantState:   map[netip.Addr]string{h1: "active", h2: "draining", h3: "active"},
			wantInstall: 1, wantVIPB: 1,
		},
		{
			name: "weight change gives exact proportions", next: three(false, 2), health: allUp,
			wantSlots:   map[netip.Addr]int{h1: 16384, h2: 16384, h3: 32769},
			wantState:   map[netip.Addr]string{h1: "active", h2: "active", h3: "active"},
			wantInstall: 1, wantVIPB: 0,
		},
		{
			name: "weight zero leaves the table", next: three(false, 0), health: allUp,
			wantSlots:   map[netip.Addr]int{h1: 32769, h2: 32768},
			wantState:   map[netip.Addr]string{h1: "active", h2: "active", h3: "active"},
			wantInstall: 1, wantVIPB: 0,
		},
		{
			name: "all down installs an empty table", next: three(false, 1), health: downSet(h1, h2, h3),
			wantSlots:   map[netip.Addr]int{},
			wantState:   map[netip.Addr]string{h1: "down", h2: "down", h3: "down"},
			wantInstall: 1, wantVIPB: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dp := newRecorder(0)
			r := New(quiet(), dp)
			_, err := r.Reconcile(three(false, 1), allUp)
			require.NoError(t, err)
			require.Equal(t, 1, dp.installs[vipA])
			require.Equal(t, 1, dp.installs[vipB])

			rep, err := r.Reconcile(tt.next, tt.health)
			require.NoError(t, err)
			assert.Equal(t, tt.wantInstall, dp.installs[vipA]-1, "installs of vip A")
			assert.Equal(t, tt.wantVIPB, dp.installs[vipB]-1, "installs of vip B")
			assert.Equal(t, tt.wantInstall+tt.wantVIPB, rep.Rebuilds)
			assert.Equal(t, tt.wantSlots, dp.counts(vipA))
			if len(tt.wantSlots) == 0 {
				assert.Empty(t, dp.tables[vipA], "empty table, never the stale one")
			} else {
				assert.Len(t, dp.tables[vipA], m)
			}
			require.Len(t, rep.VIPs, 2)
			assert.Equal(t, tt.wantState, rep.VIPs[0].States)
			assert.Equal(t, len(tt.wantSlots) > 0, len(rep.VIPs[0].Slots) > 0)
			for a, n := range tt.wantSlots {
				assert.Equal(t, n, rep.VIPs[0].Slots[a])
			}
			// Drained and down backends stay in the data path so their
			// established flows keep being forwarded.
			assert.Len(t, dp.backends, 3)
		})
	}
}

// TestFailOpen: with SetFailOpen, a VIP whose every backend not drained
// fails its checks sends new flows to all of those; drained backends and
// an operator who drained everything still get what they asked for.
func TestFailOpen(t *testing.T) {
	dp := newRecorder(0)
	r := New(quiet(), dp)
	r.SetFailOpen(failopen.Policy{On: true})
	_, err := r.Reconcile(three(false, 1), allUp)
	require.NoError(t, err)
	require.False(t, r.FailingOpen(vipA))

	steps := []struct {
		name      string
		next      state.Desired
		health    HealthFunc
		failOpen  bool
		wantSlots map[netip.Addr]int
		wantOpen  bool
	}{
		{"every backend down: all of them stay in the table", three(false, 1), downSet(h1, h2, h3), true,
			map[netip.Addr]int{h1: 21846, h2: 21846, h3: 21845}, true},
		{"one comes back: only it", three(false, 1), downSet(h1, h3), true,
			map[netip.Addr]int{h2: m}, false},
		{"every one not drained is down: those, not the drained one", three(true, 1), downSet(h1, h2, h3), true,
			map[netip.Addr]int{h1: 32769, h3: 32768}, true},
		{"failing open off: an empty table", three(false, 1), downSet(h1, h2, h3), false,
			map[netip.Addr]int{}, false},
		{"on again", three(false, 1), downSet(h1, h2, h3), true,
			map[netip.Addr]int{h1: 21846, h2: 21846, h3: 21845}, true},
		{"all back up", three(false, 1), allUp, true,
			map[netip.Addr]int{h1: 21846, h2: 21846, h3: 21845}, false},
	}
	for _, st := range steps {
		r.SetFailOpen(failopen.Policy{On: st.failOpen})
		rep, err := r.Reconcile(st.next, st.health)
		require.NoError(t, err, st.name)
		assert.Equal(t, st.wantSlots, dp.counts(vipA), st.name)
		assert.Equal(t, st.wantOpen, r.FailingOpen(vipA), st.name)
		require.Len(t, rep.VIPs, 2)
		assert.Equal(t, st.wantOpen, rep.VIPs[0].FailingOpen, st.name)
		assert.Equal(t, st.wantOpen, rep.VIPs[1].FailingOpen, "%s: vip B has the same two backends", st.name)
		if st.wantOpen {
			assert.Equal(t, api.StateDown, rep.VIPs[0].States[h1], "%s: a failing backend is still shown down", st.name)
		}
	}

	// Every backend drained: the operator's choice, dropped whatever health says.
	r.SetFailOpen(failopen.Policy{On: true})
	all := desired(vipOf(vipA, be(h1, 1, true), be(h2, 1, true)))
	_, err = r.Reconcile(all, downSet(h1, h2))
	require.NoError(t, err)
	assert.Empty(t, dp.tables[vipA])
	assert.False(t, r.FailingOpen(vipA))
}

func TestRemovals(t *testing.T) {
	dp := newRecorder(0)
	r := New(quiet(), dp)
	_, err := r.Reconcile(three(false, 1), allUp)
	require.NoError(t, err)

	// h3 leaves VIP A (its only VIP): the table without it is installed
	// first, then the backend is deleted.
	next := desired(
		vipOf(vipA, be(h1, 1, false), be(h2, 1, false)),
		vipOf(vipB, be(h1, 1, false), be(h2, 1, false)),
	)
	dp.calls = nil
	rep, err := r.Reconcile(next, allUp)
	require.NoError(t, err)
	assert.Equal(t, []string{"install 203.0.113.10:80/tcp", "delete-backend 10.0.1.3"}, dp.calls)
	assert.Equal(t, 1, rep.Rebuilds)
	assert.NotContains(t, dp.backends, h3)

	// VIP B removed; its backends remain (VIP A uses them).
	dp.calls = nil
	rep, err = r.Reconcile(desired(vipOf(vipA, be(h1, 1, false), be(h2, 1, false))), allUp)
	require.NoError(t, err)
	assert.Equal(t, []string{"delete-vip 203.0.113.10:443/tcp"}, dp.calls)
	assert.Equal(t, []api.VIPKey{vipB}, rep.Removed)

	// Everything removed.
	dp.calls = nil
	_, err = r.Reconcile(state.Desired{}, allUp)
	require.NoError(t, err)
	assert.Empty(t, dp.vips)
	assert.Empty(t, dp.backends)
	assert.Equal(t, "delete-vip 203.0.113.10:80/tcp", dp.calls[0])
}

func TestFailedInstallIsRetried(t *testing.T) {
	dp := newRecorder(0)
	r := New(quiet(), dp)
	_, err := r.Reconcile(three(false, 1), allUp)
	require.NoError(t, err)

	dp.failNext["install"] = errors.New("map full")
	rep, err := r.Reconcile(three(true, 1), allUp)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "install table of vip 203.0.113.10:80/tcp: map full")
	assert.Error(t, rep.VIPs[0].Err)
	assert.Equal(t, 21846, dp.counts(vipA)[h2], "old table still installed")

	rep, err = r.Reconcile(three(true, 1), allUp)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Rebuilds, "the same input is retried")
	assert.Zero(t, dp.counts(vipA)[h2])
}

func TestFailedVIPUpsertIsRetried(t *testing.T) {
	dp := newRecorder(0)
	r := New(quiet(), dp)
	dp.failNext["upsert-vip"] = errors.New("no free id")
	_, err := r.Reconcile(desired(vipOf(vipA, be(h1, 1, false))), allUp)
	require.Error(t, err)
	_, err = r.Reconcile(desired(vipOf(vipA, be(h1, 1, false))), allUp)
	require.NoError(t, err)
	assert.Len(t, dp.tables[vipA], m)
}

// TestTwoHostsAgree: two LB hosts with the same config and health view
// install identical tables slot for slot (as addresses: the data path ids
// are local), whatever order the backends were added in.
func TestTwoHostsAgree(t *testing.T) {
	var hosts []netip.Addr
	for i := range 100 {
		hosts = append(hosts, netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)}))
	}
	build := func(order []int, firstID BackendID) *recorder {
		var d state.Desired
		require.NoError(t, d.AddVIP(api.VIPSpec{Key: vipA}))
		for _, i := range order {
			require.NoError(t, d.AddBackend(vipA, api.BackendSpec{Addr: hosts[i], Weight: uint32(1 + i%3)}))
		}
		dp := newRecorder(firstID)
		_, err := New(quiet(), dp).Reconcile(d, downSet(hosts[7], hosts[42]))
		require.NoError(t, err)
		return dp
	}
	fwd, rev := make([]int, 100), make([]int, 100)
	for i := range 100 {
		fwd[i], rev[i] = i, 99-i
	}
	a, b := build(fwd, 0), build(rev, 1000)
	require.Len(t, a.tables[vipA], m)
	assert.NotEqual(t, a.tables[vipA], b.tables[vipA], "ids differ between hosts")
	assert.Equal(t, a.addrs(vipA), b.addrs(vipA), "addresses agree slot for slot")
	assert.Zero(t, a.counts(vipA)[hosts[7]])
}

func TestAdoptRemovesWhatIsNoLongerDesired(t *testing.T) {
	dp := newRecorder(0)
	_, err := New(quiet(), dp).Reconcile(three(false, 1), allUp)
	require.NoError(t, err)
	before := dp.counts(vipA)

	// A new daemon adopts the pinned data path; meanwhile h3 and VIP B
	// were removed from the desired state.
	r := New(quiet(), dp)
	r.Adopt([]api.VIPKey{vipA, vipB}, map[netip.Addr]BackendID{h1: dp.backends[h1], h2: dp.backends[h2], h3: dp.backends[h3]})
	dp.calls = nil
	_, err = r.Reconcile(desired(vipOf(vipA, be(h1, 1, false), be(h2, 1, false), be(h3, 1, false))), allUp)
	require.NoError(t, err)
	assert.Equal(t, []string{"install 203.0.113.10:80/tcp", "delete-vip 203.0.113.10:443/tcp"}, dp.calls,
		"no backend or vip is re-created; the adopted table is re-installed identically")
	assert.Equal(t, before, dp.counts(vipA))
}

// nopDataplane accepts everything: BenchmarkReconcile measures the control
// side alone (deciding, building, translating ids), not the kernel.
type nopDataplane struct{ next BackendID }

func (n *nopDataplane) UpsertVIP(api.VIPKey) error { return nil }
func (n *nopDataplane) DeleteVIP(api.VIPKey) error { return nil }
func (n *nopDataplane) UpsertBackend(netip.Addr) (BackendID, error) {
	n.next++
	return n.next, nil
}
func (n *nopDataplane) DeleteBackend(netip.Addr, BackendID) error  { return nil }
func (n *nopDataplane) InstallTable(api.VIPKey, []BackendID) error { return nil }

// BenchmarkReconcile: one weight change of N=100 backends, M=65537, with the
// unchanged case (nothing to rebuild) as the floor.
func BenchmarkReconcile(b *testing.B) {
	var d state.Desired
	require.NoError(b, d.AddVIP(api.VIPSpec{Key: vipA}))
	var hosts []netip.Addr
	for i := range 100 {
		h := netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)})
		hosts = append(hosts, h)
		require.NoError(b, d.AddBackend(vipA, api.BackendSpec{Addr: h}))
	}
	b.Run("weight_change", func(b *testing.B) {
		r := New(quiet(), &nopDataplane{})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			require.NoError(b, d.SetWeight(vipA, hosts[50], uint32(1+i%2)))
			rep, err := r.Reconcile(d, allUp)
			if err != nil || rep.Rebuilds != 1 {
				b.Fatalf("rebuilds %d err %v", rep.Rebuilds, err)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		r := New(quiet(), &nopDataplane{})
		_, err := r.Reconcile(d, allUp)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if rep, _ := r.Reconcile(d, allUp); rep.Rebuilds != 0 {
				b.Fatal("rebuilt an unchanged vip")
			}
		}
	})
}

var (
	h4 = netip.MustParseAddr("10.0.1.4")
	h5 = netip.MustParseAddr("10.0.1.5")
)

// inTable lists the backends the installed table of k names, in order.
func (r *recorder) inTable(k api.VIPKey) []netip.Addr {
	var out []netip.Addr
	for a := range r.counts(k) {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func five(drained ...netip.Addr) state.Desired {
	var bs []state.Backend
	for _, a := range []netip.Addr{h1, h2, h3, h4, h5} {
		bs = append(bs, be(a, 1, slices.Contains(drained, a)))
	}
	return desired(vipOf(vipA, bs...))
}

// TestFailOpenBelow: with a threshold, a VIP fails open while fewer than
// that share of its counted backends pass, so the few that still pass do
// not take every new flow; drained backends are not counted.
func TestFailOpenBelow(t *testing.T) {
	all := []netip.Addr{h1, h2, h3, h4, h5}
	steps := []struct {
		name        string
		policy      failopen.Policy
		next        state.Desired
		failing     []netip.Addr
		wantTable   []netip.Addr
		wantOpen    bool
		wantPassing int
		wantChecked int
		wantRebuilt bool
	}{
		{"all pass", failopen.Policy{On: true, Below: 50}, five(), nil, all, false, 5, 5, true},
		{"3 of 5 pass: not below 50%", failopen.Policy{On: true, Below: 50}, five(), []netip.Addr{h4, h5}, []netip.Addr{h1, h2, h3}, false, 3, 5, true},
		{"2 of 5 pass: below 50%, all of them", failopen.Policy{On: true, Below: 50}, five(), []netip.Addr{h3, h4, h5}, all, true, 2, 5, true},
		{"1 of 5 passes: still all, nothing rebuilt", failopen.Policy{On: true, Below: 50}, five(), []netip.Addr{h2, h3, h4, h5}, all, true, 1, 5, false},
		{"2 drained are not counted: 2 of 3 pass", failopen.Policy{On: true, Below: 50}, five(h4, h5), []netip.Addr{h3, h4, h5}, []netip.Addr{h1, h2}, false, 2, 3, true},
		{"1 of 3 passes: all not drained", failopen.Policy{On: true, Below: 50}, five(h4, h5), []netip.Addr{h2, h3, h4, h5}, []netip.Addr{h1, h2, h3}, true, 1, 3, true},
		{"unset threshold: only when none passes", failopen.Policy{On: true}, five(), []netip.Addr{h2, h3, h4, h5}, []netip.Addr{h1}, false, 1, 5, true},
		{"unset threshold, none passes", failopen.Policy{On: true}, five(), all, all, true, 0, 5, true},
		{"fail open off", failopen.Policy{Below: 50}, five(), []netip.Addr{h3, h4, h5}, []netip.Addr{h1, h2}, false, 2, 5, true},
	}
	dp := newRecorder(0)
	r := New(quiet(), dp)
	for _, st := range steps {
		r.SetFailOpen(st.policy)
		rep, err := r.Reconcile(st.next, healthOf(nil, st.failing))
		require.NoError(t, err, st.name)
		require.Len(t, rep.VIPs, 1)
		res := rep.VIPs[0]
		assert.Equal(t, st.wantTable, dp.inTable(vipA), st.name)
		assert.Equal(t, st.wantOpen, res.FailingOpen, st.name)
		assert.Equal(t, st.wantOpen, r.FailingOpen(vipA), st.name)
		assert.Equal(t, st.wantPassing, res.Passing, st.name)
		assert.Equal(t, st.wantChecked, res.Checked, st.name)
		assert.Equal(t, st.wantRebuilt, res.Rebuilt, st.name)
	}
}

// TestUncheckedBackends: a backend no check has answered yet neither
// passes nor fails. Added to a VIP, it gets no flows and cannot tip the
// VIP into failing open; a new VIP whose backends are all unchecked does
// not fail open; a backend already in the table keeps its place while
// its check starts over (a reload that moved the check's port).
func TestUncheckedBackends(t *testing.T) {
	dp := newRecorder(0)
	r := New(quiet(), dp)
	r.SetFailOpen(failopen.Policy{On: true, Below: 50})

	rep, err := r.Reconcile(five(), healthOf([]netip.Addr{h1, h2, h3, h4, h5}, nil))
	require.NoError(t, err)
	assert.False(t, rep.VIPs[0].FailingOpen, "a new VIP that nothing checked yet does not fail open")
	assert.Empty(t, dp.inTable(vipA), "nor does it send flows to hosts not checked yet")
	assert.Zero(t, rep.VIPs[0].Checked)

	two := desired(vipOf(vipA, be(h1, 1, false), be(h2, 1, false)))
	_, err = r.Reconcile(two, allUp)
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{h1, h2}, dp.inTable(vipA))

	// Three hosts added: 2 of 5 would be below 50 %, but the new ones are
	// not checked yet and are not counted.
	rep, err = r.Reconcile(five(), healthOf([]netip.Addr{h3, h4, h5}, nil))
	require.NoError(t, err)
	assert.False(t, rep.VIPs[0].FailingOpen, "adding hosts does not fail the VIP open")
	assert.Equal(t, []netip.Addr{h1, h2}, dp.inTable(vipA), "the new hosts wait for their first check")
	assert.Equal(t, 2, rep.VIPs[0].Checked)

	rep, err = r.Reconcile(five(), allUp)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{h1, h2, h3, h4, h5}, dp.inTable(vipA))

	// Every check starts over: the table stays as it is.
	dp.calls = nil
	rep, err = r.Reconcile(five(), healthOf([]netip.Addr{h1, h2, h3, h4, h5}, nil))
	require.NoError(t, err)
	assert.False(t, rep.VIPs[0].Rebuilt)
	assert.Empty(t, dp.calls, "nothing installed")
	assert.Equal(t, []netip.Addr{h1, h2, h3, h4, h5}, dp.inTable(vipA))

	// Failing open (1 of 3 checked passes) includes the unchecked ones;
	// once it ends, they wait for their check like new ones.
	rep, err = r.Reconcile(five(), healthOf([]netip.Addr{h4, h5}, []netip.Addr{h2, h3}))
	require.NoError(t, err)
	assert.True(t, rep.VIPs[0].FailingOpen)
	assert.Equal(t, []netip.Addr{h1, h2, h3, h4, h5}, dp.inTable(vipA))
	rep, err = r.Reconcile(five(), healthOf([]netip.Addr{h4, h5}, nil))
	require.NoError(t, err)
	assert.False(t, rep.VIPs[0].FailingOpen)
	assert.Equal(t, []netip.Addr{h1, h2, h3}, dp.inTable(vipA))
}

// TestFailOpenLogs: a VIP logs once at WARN when it starts failing open
// and once when it stops, however often its table is rebuilt or its
// backends' health changes meanwhile; a change of policy is logged.
func TestFailOpenLogs(t *testing.T) {
	var buf strings.Builder
	dp := newRecorder(0)
	r := New(slog.New(slog.NewTextHandler(&buf, nil)), dp)
	count := func(msg string) int { return strings.Count(buf.String(), "msg=\""+msg+"\"") }
	const (
		enter  = "too few backends pass their health checks: failing open, new flows go to every backend not drained"
		leave  = "vip no longer failing open"
		policy = "fail-open policy changed"
	)
	r.SetFailOpen(failopen.Policy{On: true})
	run := func(d state.Desired, h HealthFunc) {
		t.Helper()
		_, err := r.Reconcile(d, h)
		require.NoError(t, err)
	}
	run(five(), allUp)
	run(five(), healthOf(nil, []netip.Addr{h1, h2, h3, h4, h5}))
	assert.Equal(t, 1, count(enter))
	// Rebuilt while failing open: a drained host leaves the table.
	run(five(h5), healthOf(nil, []netip.Addr{h1, h2, h3, h4, h5}))
	run(five(h5), healthOf(nil, []netip.Addr{h1, h2, h3, h4, h5}))
	assert.Equal(t, 1, count(enter), "one warning for one episode:\n%s", buf.String())
	assert.Zero(t, count(leave))

	// A threshold makes 1 of 4 passing too few: the policy change is
	// logged, the VIP stays open (no new episode).
	r.SetFailOpen(failopen.Policy{On: true, Below: 50})
	r.SetFailOpen(failopen.Policy{On: true, Below: 50})
	assert.Equal(t, 1, count(policy), "logged once, when it changes")
	run(five(h5), healthOf(nil, []netip.Addr{h2, h3, h4}))
	assert.Equal(t, 1, count(enter))
	assert.Zero(t, count(leave))

	run(five(h5), healthOf(nil, []netip.Addr{h4}))
	assert.Equal(t, 1, count(leave))
	run(five(h5), allUp)
	assert.Equal(t, 1, count(leave))
	assert.Equal(t, 1, count(enter))

	// The policy turned off while failing open ends the episode too.
	run(five(h5), healthOf(nil, []netip.Addr{h1, h2, h3, h4}))
	assert.Equal(t, 2, count(enter))
	r.SetFailOpen(failopen.Policy{})
	run(five(h5), healthOf(nil, []netip.Addr{h1, h2, h3, h4}))
	assert.Equal(t, 2, count(policy))
	assert.Equal(t, 2, count(leave))
}
