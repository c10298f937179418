package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/statuspage"
)

// TestLiveStatusFromRealDaemon serves the status page's JSON from a real
// daemon on the real data path: the VIP, its backends with their state,
// health and table share, and the interface and next-hop views. (Rates
// from real traffic are checked end to end in test/e2e.)
func TestLiveStatusFromRealDaemon(t *testing.T) {
	e := newEnv(t, 3)
	d, stop := e.start(t)
	defer stop()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	require.NoError(t, d.SetBackendState(context.Background(), vip, e.hosts[1].addr, true))

	h := api.LiveHandler(d)
	get := func() api.LiveStatus {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, statuspage.APIPath, nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var st api.LiveStatus
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		return st
	}
	get()
	st := get()
	assert.Equal(t, statuspage.KindEdge, st.Kind)
	assert.Equal(t, "test", st.Daemon.Version)
	assert.Positive(t, st.RateSeconds)
	assert.Equal(t, [5]int{1, 3, 2, 1, 0}, [5]int{st.Summary.VIPs, st.Summary.Backends, st.Summary.Active, st.Summary.Draining, st.Summary.Down})
	require.Len(t, st.Interfaces, 1)
	assert.Equal(t, "lo", st.Interfaces[0].Name)
	assert.Equal(t, len(st.NextHops.Hosts) > 0, st.NextHops.Mode == api.NextHopFIB)
	require.Len(t, st.VIPs, 1)
	v := st.VIPs[0]
	assert.Equal(t, vip, v.Key)
	assert.Equal(t, uint32(65537), v.TableSize)
	require.Len(t, v.Backends, 3)
	var share float64
	for _, b := range v.Backends {
		share += b.TableShare
	}
	assert.InDelta(t, 1.0, share, 1e-9, "the active backends hold the whole table")
	assert.Equal(t, api.StateDraining, v.Backends[1].State)
	assert.Zero(t, v.Backends[1].TableShare)
	for _, b := range v.Backends {
		assert.True(t, b.Healthy, "%s", b.Addr)
		assert.False(t, b.LastCheck.IsZero(), "%s", b.Addr)
	}
	assert.NotNil(t, st.Reasons)
}
