package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/statuspage"
)

// statsSequence answers Stats from a list, one snapshot per call, so the
// handler sees counters advance as on a live daemon.
type statsSequence struct {
	*recorder
	seq []Stats
}

func (s *statsSequence) Stats(context.Context) (Stats, error) {
	if s.err != nil {
		return Stats{}, s.err
	}
	st := s.seq[0]
	if len(s.seq) > 1 {
		s.seq = s.seq[1:]
	}
	return st, nil
}

func liveFixture(t *testing.T) (*statsSequence, VIPKey) {
	t.Helper()
	key, err := ParseVIPKey("192.0.2.10:80/tcp")
	require.NoError(t, err)
	a, b, c := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.1.0.3")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	checked := t0.Add(-time.Second)
	status := Status{
		Time: t0, Version: "v-test", StartTime: t0.Add(-time.Hour), LastReconcile: t0,
		Interfaces: []Interface{{Name: "eth0", Mode: AttachNative, ConfiguredMode: "auto", Attached: true, MTU: 1500},
			{Name: "eth1", ConfiguredMode: "native", Error: "no native XDP"}},
		NextHops: NextHops{Mode: NextHopFIB, Hosts: []NextHop{{Backend: a, Iface: "eth0", MAC: "02:00:00:00:00:01", State: "reachable", Resolved: true},
			{Backend: c, State: "no route"}}},
		VIPs: []VIP{{Key: key, Mode: ModeIPIP, TableSize: 7, Backends: []Backend{
			{Addr: a, Weight: 1, State: StateActive, Healthy: true, TableSlots: 7, LastCheck: checked},
			{Addr: b, Weight: 2, Drain: true, State: StateDraining, Healthy: true, LastCheck: checked},
			{Addr: c, Weight: 1, State: StateDown, LastCheck: checked, LastError: "connect: connection refused"},
		}}},
		Conntrack: ConntrackUsage{Entries: 1200, Capacity: 262144, SampledSets: 1024},
	}
	snap := func(at time.Time, pkts, bytes, flows, hits uint64) Stats {
		return Stats{Time: at, ConntrackHits: hits, ConntrackMisses: flows,
			Reasons: map[string]uint64{"tx": pkts, "no_backend": pkts / 10, "not_vip": 0},
			VIPs: []VIPStats{{Key: key, Counter: Counter{Packets: pkts, Bytes: bytes}, NewFlows: flows,
				Backends: []BackendStats{{Addr: a, Counter: Counter{Packets: pkts, Bytes: bytes}}, {Addr: b}, {Addr: c}}}}}
	}
	seq := []Stats{
		snap(t0, 1000, 100_000, 10, 990),
		snap(t0.Add(2*time.Second), 3000, 300_000, 30, 2970),
	}
	return &statsSequence{recorder: &recorder{status: status}, seq: seq}, key
}

func getLive(t *testing.T, h http.Handler) (int, LiveStatus, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, statuspage.APIPath, nil))
	var st LiveStatus
	if rec.Code == http.StatusOK {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	}
	return rec.Code, st, rec.Body.String()
}

// TestLiveStatusJoinsStatusAndRates checks /api/status on the daemon side:
// the first answer has the state but no rates yet; the next one has the
// rates of the two Stats snapshots (2 s apart), joined to each VIP and
// backend, plus the summary the page shows at the top.
func TestLiveStatusJoinsStatusAndRates(t *testing.T) {
	svc, key := liveFixture(t)
	h := LiveHandler(svc)

	code, first, body := getLive(t, h)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "edge", first.Kind)
	assert.Zero(t, first.RateSeconds)
	assert.Zero(t, first.VIPs[0].PPS)

	code, st, body := getLive(t, h)
	require.Equal(t, http.StatusOK, code, body)
	assert.InDelta(t, 2, st.RateSeconds, 1e-9)
	assert.Equal(t, "v-test", st.Daemon.Version)
	assert.Equal(t, LiveSummary{VIPs: 1, Backends: 3, Active: 1, Draining: 1, Down: 1, InterfacesDetached: 1, NextHopsUnresolved: 1}, st.Summary)
	require.Len(t, st.VIPs, 1)
	v := st.VIPs[0]
	assert.Equal(t, key, v.Key)
	assert.InDelta(t, 1000, v.PPS, 1e-9)
	assert.InDelta(t, 800_000, v.BPS, 1e-9)
	assert.InDelta(t, 10, v.NewFlowsPS, 1e-9)
	assert.Equal(t, [3]int{1, 1, 1}, [3]int{v.Active, v.Draining, v.Down})
	require.Len(t, v.Backends, 3)
	assert.InDelta(t, 1000, v.Backends[0].PPS, 1e-9)
	assert.InDelta(t, 1.0, v.Backends[0].TableShare, 1e-9)
	assert.Zero(t, v.Backends[1].TableShare)
	assert.Equal(t, StateDraining, v.Backends[1].State)
	assert.True(t, v.Backends[1].Drain)
	assert.Equal(t, "connect: connection refused", v.Backends[2].LastError)
	assert.Equal(t, []LiveReason{{Reason: "no_backend", Packets: 300, PerSecond: 100}, {Reason: "tx", Packets: 3000, PerSecond: 1000}}, st.Reasons,
		"reasons sorted, never-seen ones left out")
	assert.Equal(t, LiveConntrack{Hits: 2970, Misses: 30, HitsPerSecond: 990, MissesPerSecond: 10, Entries: 1200, Capacity: 262144}, st.Conntrack)
	assert.Len(t, st.Interfaces, 2)
	assert.Equal(t, NextHopFIB, st.NextHops.Mode)
}

// TestLiveStatusFailingOpen: a VIP failing open is counted as such, not as
// one whose traffic is dropped.
func TestLiveStatusFailingOpen(t *testing.T) {
	svc, _ := liveFixture(t)
	v := &svc.status.VIPs[0]
	v.Backends[0].State, v.Backends[0].Healthy = StateDown, false
	v.FailingOpen = true
	code, st, body := getLive(t, LiveHandler(svc))
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, 1, st.Summary.VIPsFailingOpen)
	assert.Zero(t, st.Summary.VIPsWithoutBackend)
	assert.True(t, st.VIPs[0].FailingOpen)

	v.FailingOpen = false
	_, st, _ = getLive(t, LiveHandler(svc))
	assert.Zero(t, st.Summary.VIPsFailingOpen)
	assert.Equal(t, 1, st.Summary.VIPsWithoutBackend)
}

// TestLiveStatusUnavailable checks that a daemon that cannot answer gives
// the page a JSON error to show, not a half-filled document.
func TestLiveStatusUnavailable(t *testing.T) {
	svc, _ := liveFixture(t)
	svc.err = Errorf(ErrUnavailable, "read counters: map gone")
	code, _, body := getLive(t, LiveHandler(svc))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	assert.Contains(t, e.Error, "map gone")
	assert.True(t, errors.Is(svc.err, ErrUnavailable))
}
