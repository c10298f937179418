package opsmetrics

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegisterAndObserve(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	start := time.Unix(1000, 0)
	c, err := Register(reg, "v1.2.3", start)
	require.NoError(t, err)

	want := func(ok, failed int, last float64, successful int) string {
		return strings.NewReplacer("GO", runtime.Version()).Replace(`
# HELP xlb_build_info Always 1; the labels say which xlb build runs (version, Go version).
# TYPE xlb_build_info gauge
xlb_build_info{goversion="GO",version="v1.2.3"} 1
# HELP xlb_config_reloads_total Configuration reloads (SIGHUP or the reload command), by result (ok, or error: the running configuration stayed).
# TYPE xlb_config_reloads_total counter
xlb_config_reloads_total{result="error"} ` + itoa(failed) + `
xlb_config_reloads_total{result="ok"} ` + itoa(ok) + `
# HELP xlb_config_last_reload_success_timestamp_seconds Unix time the running configuration was loaded (at start or by the last successful reload).
# TYPE xlb_config_last_reload_success_timestamp_seconds gauge
xlb_config_last_reload_success_timestamp_seconds ` + ftoa(last) + `
# HELP xlb_config_last_reload_successful 1 if the last reload succeeded (or none was tried since start), 0 if it failed and the file on disk is not what runs.
# TYPE xlb_config_last_reload_successful gauge
xlb_config_last_reload_successful ` + itoa(successful) + `
`)
	}
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want(0, 0, 1000, 1))))

	c.Observe(errors.New("bad file"), time.Unix(2000, 0))
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want(0, 1, 1000, 0))), "a failed reload keeps the last success time")

	c.Observe(nil, time.Unix(3000, 0))
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want(1, 1, 3000, 1))))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)

	_, err = Register(reg, "v1.2.3", start)
	assert.Error(t, err, "registering twice on one registry is refused")

	var none *Config
	assert.NotPanics(t, func() { none.Observe(nil, time.Now()) })
}

func itoa(n int) string { return ftoa(float64(n)) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
