package admin

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/opsmetrics"
)

// gathered reads an unlabelled gauge, or the counter child whose one label is result.
func gathered(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != result) {
				continue
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s{result=%q} not exported", name, result)
	return 0
}

func TestReloadMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	reg := prometheus.NewPedanticRegistry()
	start := time.Now()
	c, err := opsmetrics.Register(reg, "test", start)
	require.NoError(t, err)
	f.m.RecordReloads(c)
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.LastReloadSuccess, ""))

	writeConfig(t, path, ", weight: 3")
	_, err = f.m.Reload()
	require.NoError(t, err)
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.Reloads, "ok"))
	assert.Equal(t, 0.0, gathered(t, reg, opsmetrics.Reloads, "error"))
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.LastReloadSuccess, ""))
	okAt := gathered(t, reg, opsmetrics.LastSuccess, "")
	assert.GreaterOrEqual(t, okAt, float64(start.Unix()))

	require.NoError(t, os.WriteFile(path, []byte("listeners: [{adr: x}]\n"), 0o600))
	_, err = f.m.Reload()
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.Reloads, "ok"))
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.Reloads, "error"))
	assert.Equal(t, 0.0, gathered(t, reg, opsmetrics.LastReloadSuccess, ""), "the running config is not the file's")
	assert.Equal(t, okAt, gathered(t, reg, opsmetrics.LastSuccess, ""), "a failed reload keeps the time of the last good one")

	writeConfig(t, path, "")
	_, err = f.m.Reload()
	require.NoError(t, err)
	assert.Equal(t, 2.0, gathered(t, reg, opsmetrics.Reloads, "ok"))
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.LastReloadSuccess, ""))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// A reload whose file was applied but whose runtime state could not be
// saved returns an error, yet counts as a good reload: the file runs.
func TestReloadMetricsStateNotSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	reg := prometheus.NewPedanticRegistry()
	c, err := opsmetrics.Register(reg, "test", time.Now())
	require.NoError(t, err)
	f.m.RecordReloads(c)
	require.NoError(t, f.m.SetWeight("checkout", "c2", 7))

	// The file now sets c2's weight, so the override goes and the state
	// must be saved, which cannot succeed under /dev/null.
	f.m.statePath = "/dev/null/proxy.state.json"
	writeConfig(t, path, ", weight: 3")
	_, err = f.m.Reload()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config reloaded, but")
	assert.Equal(t, 3, servers(t, f, "checkout")["c2"].Weight, "the file runs")
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.Reloads, "ok"))
	assert.Equal(t, 0.0, gathered(t, reg, opsmetrics.Reloads, "error"))
	assert.Equal(t, 1.0, gathered(t, reg, opsmetrics.LastReloadSuccess, ""))
}
