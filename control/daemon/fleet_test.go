package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/etcdstore/etcdtest"
)

// fleetEnv writes one edge host's config with its own pin path, socket and
// cache, the shared L7 hosts, and the fleet's etcd endpoints.
func fleetEnv(t *testing.T, hosts []*l7host, port uint16, endpoints []string, prefix string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, cfgPath: filepath.Join(dir, "xlb.yaml"), pin: "/sys/fs/bpf/" + uniquePrefix(t),
		socket: filepath.Join(dir, "run", "xlb.sock"), port: port, hosts: hosts}
	t.Cleanup(func() { _ = os.RemoveAll(e.pin) })
	var b strings.Builder
	for _, h := range hosts[:3] {
		fmt.Fprintf(&b, "      - address: %s\n", h.addr)
	}
	cfg := fmt.Sprintf(`
interfaces:
  - name: lo
outer_source:
  ipv4: 10.200.0.1
dataplane:
  max_vips: 8
  max_backends: 64
  conntrack_entries: 4096
health:
  port: %d
  # This test is about one desired state, not health: checks that fall
  # only after five slow answers in a row keep a loaded CI machine from
  # emptying the table under it.
  interval: 500ms
  timeout: 450ms
  fall: 5
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
  store: etcd
  etcd:
    endpoints: [%s]
    prefix: %s
    dial_timeout: 1s
    request_timeout: 2s
bpf:
  pin_path: %s
vips:
  - address: 10.200.0.10
    port: 80
    protocol: tcp
    backends:
%s`, port, e.socket, filepath.Join(dir, "state.json"), strings.Join(endpoints, ", "), prefix, e.pin, b.String())
	require.NoError(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	return e
}

// answers asks the real program (BPF_PROG_TEST_RUN) which backend each of
// n client flows gets: two hosts with equal answers have equal tables for
// these flows.
func answers(t *testing.T, d *Daemon, n int) []netip.Addr {
	t.Helper()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	out := make([]netip.Addr, n)
	for i := range n {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i / 200), byte(i%200 + 1)}), uint16(10000+i))
		ans, err := d.Flow(context.Background(), api.FlowQuery{Src: src, VIP: vip})
		require.NoError(t, err)
		out[i] = ans.Backend
	}
	return out
}

func storeUp(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "xlb_store_up" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("xlb_store_up not exported")
	return 0
}

// TestFleetOneDesiredState runs three daemons, each with its own real data
// path (separate pin paths), on one three-member etcd: a change through any
// one's API socket reaches every table; with etcd gone the tables keep
// forwarding and changes are refused; etcd back, they converge; a daemon
// whose etcd member missed compacted revisions re-lists and misses nothing.
func TestFleetOneDesiredState(t *testing.T) {
	requireKernel(t)
	cluster := etcdtest.StartCluster(t, 3)
	hosts, port := startHosts(t, 5)
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	// The L7 stand-ins are on loopback, which a change refuses unforced.
	ctx := api.WithForce(context.Background())
	// Host 2 talks to member 0 only, host 0 to members 1 and 2: the
	// compaction case stops member 0 alone.
	eps := [][]string{{cluster.Endpoint(1), cluster.Endpoint(2)}, cluster.Endpoints(), {cluster.Endpoint(0)}}
	var ds []*Daemon
	var clients []*api.Client
	var regs []*prometheus.Registry
	for i := range 3 {
		e := fleetEnv(t, hosts, port, eps[i], "/xlbtest/edge/")
		reg := prometheus.NewPedanticRegistry()
		d, stop := e.startWith(t, reg)
		t.Cleanup(stop)
		ds, regs = append(ds, d), append(regs, reg)
		clients = append(clients, api.NewClient(e.socket, 5*time.Second))
	}
	agree := func(want netip.Addr, present bool) func() bool {
		return func() bool {
			first := answers(t, ds[0], 300)
			for _, d := range ds {
				a := answers(t, d, 300)
				if !slices.Equal(a, first) || slices.Contains(a, want) != present {
					return false
				}
			}
			return true
		}
	}
	require.Eventually(t, agree(hosts[3].addr, false), 30*time.Second, 10*time.Millisecond, "three hosts, one table")

	// (5) `xlb backend add` through one daemon's socket.
	start := time.Now()
	require.NoError(t, clients[1].AddBackend(ctx, vip, api.BackendSpec{Addr: hosts[3].addr}))
	require.Eventually(t, agree(hosts[3].addr, true), 30*time.Second, time.Millisecond)
	t.Logf("backend add through one daemon: all three tables agree after %v", time.Since(start))
	for i, d := range ds {
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		assert.Len(t, v.Backends, 4, "host %d", i)
	}

	t.Run("concurrent changes through two daemons both land", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, w := range []uint32{3, 5} {
			wg.Go(func() { errs[i] = clients[i].SetBackendWeight(ctx, vip, hosts[i].addr, w) })
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		for i, d := range ds {
			require.Eventually(t, func() bool {
				v, err := d.GetVIP(ctx, vip)
				return err == nil && v.Backends[0].Weight == 3 && v.Backends[1].Weight == 5
			}, 30*time.Second, 5*time.Millisecond, "host %d", i)
		}
		// The same backend added through two daemons at once: one wins,
		// the other is told it exists.
		for i := range 2 {
			wg.Go(func() { errs[i] = clients[i].AddBackend(ctx, vip, api.BackendSpec{Addr: hosts[4].addr}) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				assert.ErrorIs(t, err, api.ErrConflict)
				assert.Contains(t, err.Error(), "already exists")
			}
		}
		assert.Equal(t, 1, ok, "exactly one add wins: %v", errs)
		require.NoError(t, clients[2].DeleteBackend(ctx, vip, hosts[4].addr))
		require.Eventually(t, agree(hosts[4].addr, false), 30*time.Second, 5*time.Millisecond)
	})

	t.Run("etcd gone: traffic unchanged, changes refused, then converged", func(t *testing.T) {
		before := answers(t, ds[0], 300)
		cluster.Stop()
		for i, d := range ds {
			require.Eventually(t, func() bool {
				st, err := d.Status(ctx)
				return err == nil && !st.Store.Up
			}, 20*time.Second, 10*time.Millisecond, "host %d sees the store down", i)
			assert.Equal(t, before, answers(t, d, 300), "host %d forwards as before", i)
			assert.Zero(t, storeUp(t, regs[i]))
		}
		err := clients[0].SetBackendState(ctx, vip, hosts[0].addr, true)
		require.ErrorIs(t, err, api.ErrUnavailable)
		assert.Contains(t, err.Error(), "desired-state store unreachable since ")
		assert.Contains(t, err.Error(), "changes are refused; the data path keeps its last state")

		cluster.Restart()
		for i, d := range ds {
			require.Eventually(t, func() bool {
				st, err := d.Status(ctx)
				return err == nil && st.Store.Up
			}, 20*time.Second, 10*time.Millisecond, "host %d sees the store back", i)
			assert.Equal(t, 1.0, storeUp(t, regs[i]))
		}
		require.NoError(t, clients[2].SetBackendState(ctx, vip, hosts[0].addr, true))
		require.Eventually(t, agree(hosts[0].addr, false), 30*time.Second, 5*time.Millisecond, "drain reaches every host")
	})

	t.Run("compaction while a host is behind: nothing missed", func(t *testing.T) {
		cluster.Stop(0) // host 2's only member
		// Members 1 and 2 may first have to elect a leader: until then the
		// change is refused, and the operator retries.
		require.Eventually(t, func() bool { return clients[0].SetBackendState(ctx, vip, hosts[0].addr, false) == nil },
			20*time.Second, 50*time.Millisecond)
		require.NoError(t, clients[0].DeleteBackend(ctx, vip, hosts[2].addr))
		require.NoError(t, clients[1].SetBackendWeight(ctx, vip, hosts[1].addr, 2))
		other := api.VIPKey{Addr: netip.MustParseAddr("10.200.0.11"), Port: 443, Proto: api.ProtoTCP}
		require.NoError(t, clients[1].AddVIP(ctx, api.VIPSpec{Key: other, Backends: []api.BackendSpec{{Addr: hosts[1].addr}}}))
		st, err := ds[0].Status(ctx)
		require.NoError(t, err)
		require.NoError(t, ds[0].fleet.store.Compact(ctx, st.Store.Revision))
		cluster.Restart(0)
		require.Eventually(t, func() bool {
			want, err := ds[0].ListVIPs(ctx)
			require.NoError(t, err)
			got, err := ds[2].ListVIPs(ctx)
			require.NoError(t, err)
			return len(got) == 2 && vipsEqual(want, got)
		}, 20*time.Second, 10*time.Millisecond, "host 2 converges after the compaction")
		require.Eventually(t, agree(hosts[2].addr, false), 30*time.Second, 5*time.Millisecond)
		assert.Contains(t, answers(t, ds[2], 300), hosts[0].addr, "undrained on host 2 too")
	})
}

// vipsEqual compares desired state as two daemons report it (health and
// check times aside).
func vipsEqual(a, b []api.VIP) bool {
	key := func(vs []api.VIP) string {
		var s strings.Builder
		for _, v := range vs {
			fmt.Fprintf(&s, "%s %s;", v.Key, v.Mode)
			for _, be := range v.Backends {
				fmt.Fprintf(&s, "%s/%d/%v,", be.Addr, be.Weight, be.Drain)
			}
		}
		return s.String()
	}
	return key(a) == key(b)
}

// TestFleetFileRule: the first daemon seeds an empty prefix from its
// file; afterwards etcd wins at every start (a host restarted with a stale
// file does not revert the fleet) and a file's VIP changes reach the fleet
// only by `xlb reload` on a host, merged with the runtime changes by the
// single host's three-way rule. A daemon started while etcd is down
// forwards from its cache.
func TestFleetFileRule(t *testing.T) {
	requireKernel(t)
	cluster := etcdtest.Start(t)
	hosts, port := startHosts(t, 4)
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	ctx := api.WithForce(context.Background())
	ea := fleetEnv(t, hosts, port, cluster.Endpoints(), "/xlbtest/rule/")
	eb := fleetEnv(t, hosts, port, cluster.Endpoints(), "/xlbtest/rule/")
	da, stopA := ea.start(t)
	defer stopA()
	db, stopB := eb.start(t)
	backends := func(d *Daemon) map[netip.Addr]uint32 {
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		out := map[netip.Addr]uint32{}
		for _, b := range v.Backends {
			out[b.Addr] = b.Weight
		}
		return out
	}
	h1, h2, h3, h4 := hosts[0].addr, hosts[1].addr, hosts[2].addr, hosts[3].addr
	assert.Equal(t, map[netip.Addr]uint32{h1: 1, h2: 1, h3: 1}, backends(db), "seeded by the first daemon")

	// A runtime change through B, then a file change on A and a reload.
	require.NoError(t, db.AddBackend(ctx, vip, api.BackendSpec{Addr: h4}))
	text, err := os.ReadFile(ea.cfgPath)
	require.NoError(t, err)
	edited := strings.Replace(string(text), fmt.Sprintf("      - address: %s\n", h1), fmt.Sprintf("      - address: %s\n        weight: 5\n", h1), 1)
	edited = strings.Replace(edited, fmt.Sprintf("      - address: %s\n", h3), "", 1)
	require.NoError(t, os.WriteFile(ea.cfgPath, []byte(edited), 0o600))
	require.NoError(t, da.Reload(ctx))
	want := map[netip.Addr]uint32{h1: 5, h2: 1, h4: 1}
	assert.Equal(t, want, backends(da), "the file's changes, the runtime's addition kept")
	require.Eventually(t, func() bool { return fmt.Sprint(backends(db)) == fmt.Sprint(want) }, 30*time.Second, 5*time.Millisecond)

	// The prefix wiped behind xlb's back: the tables keep their state and
	// the state is written back.
	wiper, err := etcdstore.Open(etcdstore.Config{Endpoints: cluster.Endpoints(), Prefix: "/xlbtest/rule/"})
	require.NoError(t, err)
	defer wiper.Close()
	snap, err := wiper.Get(ctx)
	require.NoError(t, err)
	var wipe []etcdstore.Op
	for k, kv := range snap.KVs {
		wipe = append(wipe, etcdstore.Op{Key: k, Delete: true, ExpectRevision: kv.ModRevision})
	}
	_, err = wiper.Commit(ctx, wipe)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		snap, err := wiper.Get(ctx)
		return err == nil && len(snap.KVs) == 2
	}, 30*time.Second, 5*time.Millisecond, "vip and base written back")
	assert.Equal(t, want, backends(da))
	assert.Equal(t, want, backends(db))
	assert.Contains(t, answers(t, db, 300), h4)

	// B restarts with its old file: etcd wins.
	stopB()
	db, stopB = eb.start(t)
	assert.Equal(t, want, backends(db), "a stale file does not revert the fleet")

	// B restarts while etcd is down: its cache.
	stopB()
	cluster.Stop()
	db, stopB = eb.start(t)
	defer stopB()
	assert.Equal(t, want, backends(db), "started from the cached fleet state")
	st, err := db.Status(ctx)
	require.NoError(t, err)
	assert.False(t, st.Store.Up)
	assert.Contains(t, answers(t, db, 300), h4, "forwarding to the cached state")
	cluster.Restart()
	require.Eventually(t, func() bool {
		st, err := db.Status(ctx)
		return err == nil && st.Store.Up && st.Store.Revision > 0
	}, 20*time.Second, 10*time.Millisecond)
	assert.Equal(t, want, backends(db))
}
