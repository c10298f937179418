package promcheck

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExported(t *testing.T) {
	d, err := Daemon()
	require.NoError(t, err)
	assert.Equal(t, []string{"vip", "backend"}, d["xlb_backend_up"])
	assert.Contains(t, d, "xlb_build_info")
	p, err := Proxy()
	require.NoError(t, err)
	assert.Equal(t, []string{"route", "pool", "server", "code_class"}, p["xlb_l7_requests_total"])
	assert.Contains(t, p, "xlb_l7_sticky_total", "the sticky collector describes itself")
	assert.Contains(t, p, "xlb_config_reloads_total")
	u := Union(d, p)
	assert.Contains(t, d, "xlb_bgp_peer_up")
	assert.Equal(t, []string{"prefix"}, p["xlb_store_up"])
	assert.Len(t, u, len(d)+len(p)-6, "the build, reload and store metrics are common")
}

func TestCheck(t *testing.T) {
	e := Exported{"xlb_a_total": {"pool"}, "xlb_h_seconds": {"server"}}
	used, problems := e.Check(`sum by (pool) (rate(xlb_a_total{pool="x", job="j"}[5m])) / histogram_quantile(0.5, rate(xlb_h_seconds_bucket{le="1"}[5m]))`)
	assert.Empty(t, problems)
	assert.Equal(t, []string{"xlb_a_total", "xlb_h_seconds"}, used)
	_, problems = e.Check(`rate(xlb_b_total[5m]) + xlb_a_total{route="r"} + (xlb_h_seconds_count`)
	assert.Equal(t, []string{"unbalanced ()", "xlb_b_total is not exported", `xlb_a_total has no label "route"`}, problems)
}
