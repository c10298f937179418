package metrics

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/health"
	"github.com/xlbproject/xlb/control/reconcile"
	"github.com/xlbproject/xlb/l4"
)

type fakeSource struct {
	st  l4.Stats
	ct  l4.ConnTableUsage
	err error
}

func (f *fakeSource) Stats() (l4.Stats, error) { return f.st, f.err }
func (f *fakeSource) ConnTableUsage() (l4.ConnTableUsage, error) {
	return f.ct, f.err
}
func (f *fakeSource) Backends() map[l4.BackendID]netip.Addr {
	return map[l4.BackendID]netip.Addr{1: netip.MustParseAddr("10.0.1.1"), 2: netip.MustParseAddr("10.0.1.2")}
}

func (f *fakeSource) AttachModes() map[string]l4.AttachMode {
	return map[string]l4.AttachMode{"eth0": l4.AttachNative, "eth1": l4.AttachGeneric, "eth2": l4.AttachAuto}
}

func source() *fakeSource {
	return &fakeSource{st: l4.Stats{
		Counters: map[l4.Counter]l4.Count{
			l4.CounterNoBackend: {Packets: 3, Bytes: 180},
			l4.CounterNotVIP:    {Packets: 10, Bytes: 600},
			l4.CounterConnHit:   {Packets: 90, Bytes: 5400},
			l4.CounterXDPTx:     {Packets: 100, Bytes: 6000},
		},
		VIPs: map[l4.VIP]l4.VIPCount{
			{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: l4.TCP}: {Packets: 103, Bytes: 6180, NewFlows: 10},
			{Addr: netip.MustParseAddr("2001:db8::10"), Port: 0, Proto: l4.UDP}:  {Packets: 1, Bytes: 80, NewFlows: 1},
		},
		Backends: map[l4.BackendID]l4.Count{1: {Packets: 60, Bytes: 3600}, 2: {Packets: 40, Bytes: 2400}, 9: {Packets: 5, Bytes: 300}},
	}, ct: l4.ConnTableUsage{Capacity: 262144, Entries: 1200, SampledSets: 1024}}
}

func view() []BackendView {
	return []BackendView{
		{VIP: "203.0.113.10:80/tcp", Backend: "10.0.1.1", Up: true, State: "active", Slots: 65537},
		{VIP: "203.0.113.10:80/tcp", Backend: "10.0.1.2", Up: false, State: "down"},
	}
}

func TestCollector(t *testing.T) {
	c := NewCollector(source(), view)
	want := `
# HELP xlb_backend_table_slots Entries of the VIP's Maglev table pointing at the backend.
# TYPE xlb_backend_table_slots gauge
xlb_backend_table_slots{backend="10.0.1.1",vip="203.0.113.10:80/tcp"} 65537
xlb_backend_table_slots{backend="10.0.1.2",vip="203.0.113.10:80/tcp"} 0
# HELP xlb_backend_up 1 while the L7 host passes its health checks (its /ready says its pools can serve).
# TYPE xlb_backend_up gauge
xlb_backend_up{backend="10.0.1.1",vip="203.0.113.10:80/tcp"} 1
xlb_backend_up{backend="10.0.1.2",vip="203.0.113.10:80/tcp"} 0
# HELP xlb_l4_attached 1 for each interface the XDP balancer is attached to, by the mode it runs in: native, generic (several times slower) or unknown.
# TYPE xlb_l4_attached gauge
xlb_l4_attached{iface="eth0",mode="native"} 1
xlb_l4_attached{iface="eth1",mode="generic"} 1
xlb_l4_attached{iface="eth2",mode="unknown"} 1
# HELP xlb_l4_backend_packets_total Packets forwarded to an L7 host.
# TYPE xlb_l4_backend_packets_total counter
xlb_l4_backend_packets_total{backend="10.0.1.1"} 60
xlb_l4_backend_packets_total{backend="10.0.1.2"} 40
# HELP xlb_l4_conntrack_capacity Connection-table entries in all: conntrack_entries entries per CPU times the CPUs.
# TYPE xlb_l4_conntrack_capacity gauge
xlb_l4_conntrack_capacity 262144
# HELP xlb_l4_conntrack_entries Connection-table ways holding a flow (estimated from a sample of 1024 sets in a larger table): entries are replaced, never removed, so ended flows count until replaced.
# TYPE xlb_l4_conntrack_entries gauge
xlb_l4_conntrack_entries 1200
# HELP xlb_l4_conntrack_total Connection table lookups by result (hit, hit_other_cpu, miss_syn, miss_non_syn, expired, insert_skipped: a new flow past dataplane.new_flow_rate_limit, forwarded without an entry).
# TYPE xlb_l4_conntrack_total counter
xlb_l4_conntrack_total{result="hit"} 90
# HELP xlb_l4_reason_packets_total Packets by why the balancer passed or dropped them (not_vip, no_backend, malformed, encap_fail, too_big, fragment).
# TYPE xlb_l4_reason_packets_total counter
xlb_l4_reason_packets_total{reason="no_backend"} 3
xlb_l4_reason_packets_total{reason="not_vip"} 10
# HELP xlb_l4_vip_new_flows_total Flows of a VIP that took a Maglev decision (connection entries created).
# TYPE xlb_l4_vip_new_flows_total counter
xlb_l4_vip_new_flows_total{vip="203.0.113.10:80/tcp"} 10
xlb_l4_vip_new_flows_total{vip="[2001:db8::10]:*/udp"} 1
# HELP xlb_l4_vip_packets_total Packets received for a VIP by the XDP balancer.
# TYPE xlb_l4_vip_packets_total counter
xlb_l4_vip_packets_total{vip="203.0.113.10:80/tcp"} 103
xlb_l4_vip_packets_total{vip="[2001:db8::10]:*/udp"} 1
# HELP xlb_l4_xdp_actions_total XDP verdicts of the balancer (aborted, drop, pass, tx, redirect).
# TYPE xlb_l4_xdp_actions_total counter
xlb_l4_xdp_actions_total{action="tx"} 100
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"xlb_backend_table_slots", "xlb_backend_up", "xlb_l4_attached", "xlb_l4_backend_packets_total", "xlb_l4_conntrack_total", "xlb_l4_conntrack_entries", "xlb_l4_conntrack_capacity",
		"xlb_l4_reason_packets_total", "xlb_l4_vip_new_flows_total", "xlb_l4_vip_packets_total", "xlb_l4_xdp_actions_total"))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)

	// Deleted backend 9 is not exported (its address is gone).
	n := testutil.CollectAndCount(c, "xlb_l4_backend_bytes_total")
	assert.Equal(t, 2, n)
	// Every backend has one state series per state, exactly one of them 1.
	assert.Equal(t, 6, testutil.CollectAndCount(c, "xlb_backend_state"))
}

func TestCollectorReadError(t *testing.T) {
	src := source()
	src.err = errors.New("map gone")
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(src, nil)))
	_, err := reg.Gather()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "map gone")
}

func TestEventMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, source(), view)
	require.NoError(t, err)

	tgt := health.Target{Addr: netip.MustParseAddr("10.0.1.1"), Port: 9901}
	m.ObserveCheck(tgt, 2*time.Millisecond, nil)
	m.ObserveCheck(tgt, 150*time.Millisecond, errors.New("timeout"))
	m.ObserveTransition(tgt.Addr, false)
	key := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: "tcp"}
	rep := reconcile.Report{Duration: 3 * time.Millisecond, Rebuilds: 1, VIPs: []reconcile.VIPResult{{Key: key, Rebuilt: true, Duration: 2 * time.Millisecond}}}
	m.ObserveReconcile(rep, nil, time.Unix(1700000000, 500000000))
	m.ObserveReconcile(reconcile.Report{}, errors.New("x"), time.Unix(1700000001, 0))

	want := `
# HELP xlb_health_transitions_total Health state changes of L7 hosts, by new state (up or down).
# TYPE xlb_health_transitions_total counter
xlb_health_transitions_total{backend="10.0.1.1",to="down"} 1
# HELP xlb_last_reconcile_timestamp_seconds Unix time of the last successful reconcile; time() minus it is the time since.
# TYPE xlb_last_reconcile_timestamp_seconds gauge
xlb_last_reconcile_timestamp_seconds 1.7000000005e+09
# HELP xlb_reconcile_total Reconcile runs (desired state x health -> data path), by result (ok or error).
# TYPE xlb_reconcile_total counter
xlb_reconcile_total{result="error"} 1
xlb_reconcile_total{result="ok"} 1
# HELP xlb_table_rebuilds_total Maglev tables built and installed, by VIP.
# TYPE xlb_table_rebuilds_total counter
xlb_table_rebuilds_total{vip="203.0.113.10:80/tcp"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"xlb_health_transitions_total", "xlb_last_reconcile_timestamp_seconds", "xlb_reconcile_total", "xlb_table_rebuilds_total"))
	assert.Equal(t, 2, testutil.CollectAndCount(m.checkDuration))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// Deleting a VIP or a backend deletes its event-fed series; one that stays
// keeps its own.
func TestRetainDropsDeletedSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg, nil, nil)
	require.NoError(t, err)
	k1 := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: "tcp"}
	k2 := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.11"), Port: 80, Proto: "tcp"}
	b1, b2 := netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.1.2")
	m.Retain([]string{k1.String(), k2.String()}, []string{b1.String(), b2.String()})
	for _, b := range []netip.Addr{b1, b2} {
		m.ObserveCheck(health.Target{Addr: b, Port: 9901}, time.Millisecond, nil)
		m.ObserveTransition(b, true)
	}
	m.ObserveReconcile(reconcile.Report{VIPs: []reconcile.VIPResult{{Key: k1, Rebuilt: true}, {Key: k2, Rebuilt: true}}}, nil, time.Now())
	require.Equal(t, 2, testutil.CollectAndCount(m.checkDuration))
	require.Equal(t, 2, testutil.CollectAndCount(m.healthTransitions))
	require.Equal(t, 2, testutil.CollectAndCount(m.rebuilds))

	m.Retain([]string{k1.String()}, []string{b1.String()})
	want := `
# HELP xlb_health_transitions_total Health state changes of L7 hosts, by new state (up or down).
# TYPE xlb_health_transitions_total counter
xlb_health_transitions_total{backend="10.0.1.1",to="up"} 1
# HELP xlb_table_rebuilds_total Maglev tables built and installed, by VIP.
# TYPE xlb_table_rebuilds_total counter
xlb_table_rebuilds_total{vip="203.0.113.10:80/tcp"} 1
`
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "xlb_health_transitions_total", "xlb_table_rebuilds_total"))
	assert.Equal(t, 1, testutil.CollectAndCount(m.checkDuration))

	// A check of the deleted backend that was in flight is not recorded.
	m.ObserveCheck(health.Target{Addr: b2, Port: 9901}, time.Millisecond, nil)
	m.ObserveTransition(b2, false)
	m.ObserveReconcile(reconcile.Report{VIPs: []reconcile.VIPResult{{Key: k2, Rebuilt: true}}}, nil, time.Now())
	assert.Equal(t, 1, testutil.CollectAndCount(m.checkDuration))
	assert.Equal(t, 1, testutil.CollectAndCount(m.healthTransitions))
	assert.Equal(t, 1, testutil.CollectAndCount(m.rebuilds))
}
