package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// seriesWith counts, per metric family, the series of g that carry
// label=value.
func seriesWith(t *testing.T, g prometheus.Gatherer, label, value string) map[string]int {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	got := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					got[mf.GetName()]++
				}
			}
		}
	}
	return got
}

// TestDeletedSeriesDisappearFromDaemon: on a running daemon (real data
// path), deleting a backend removes every series labelled with it, and
// deleting the VIP removes every series labelled with the VIP, from the
// registry /metrics serves; a deleted object never lingers as a stale line.
func TestDeletedSeriesDisappearFromDaemon(t *testing.T) {
	e := newEnv(t, 2)
	d, stop := e.start(t)
	defer stop()
	ctx := context.Background()
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	gone := e.hosts[1].addr.String()

	require.NotEmpty(t, seriesWith(t, d.Registry(), "vip", vip.String()), "the VIP has series while it exists")
	require.NotEmpty(t, seriesWith(t, d.Registry(), "backend", gone), "the backend has series while it exists")
	t.Logf("series of the VIP: %v; of the backend: %v", seriesWith(t, d.Registry(), "vip", vip.String()), seriesWith(t, d.Registry(), "backend", gone))

	require.NoError(t, d.DeleteBackend(ctx, vip, e.hosts[1].addr))
	require.Eventually(t, func() bool {
		return len(seriesWith(t, d.Registry(), "backend", gone)) == 0
	}, 30*time.Second, 50*time.Millisecond, "series of the deleted backend stay: %v", seriesWith(t, d.Registry(), "backend", gone))
	assert.NotEmpty(t, seriesWith(t, d.Registry(), "backend", e.hosts[0].addr.String()), "the remaining backend keeps its series")

	require.NoError(t, d.DeleteVIP(api.WithForce(ctx), vip), "the VIP still has an active backend")
	require.Eventually(t, func() bool {
		return len(seriesWith(t, d.Registry(), "vip", vip.String())) == 0
	}, 30*time.Second, 50*time.Millisecond, "series of the deleted VIP stay: %v", seriesWith(t, d.Registry(), "vip", vip.String()))
	assert.Empty(t, seriesWith(t, d.Registry(), "backend", e.hosts[0].addr.String()), "a backend of no VIP has no series")
}
