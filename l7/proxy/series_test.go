package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seriesConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
routes:
  - {name: shop, match: {path_prefix: /shop}, pool: web}
  - {name: old, match: {path_prefix: /old}, pool: legacy}
pools:
  - name: web
    policy: round_robin
    servers:
      - {name: w1, addr: "{w1}"}
      - {name: w2, addr: "{w2}"}
  - name: legacy
    servers:
      - {name: l1, addr: "{l1}"}
`

// labelled lists the series of g (name and labels) that carry label=value.
func labelled(t *testing.T, g prometheus.Gatherer, label, value string) []string {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					out = append(out, mf.GetName())
				}
			}
		}
	}
	return out
}

// A server, a pool and a route removed by a config swap take every series
// of theirs with them; those that stay keep counting from where they were.
func TestRemovedSeriesDisappear(t *testing.T) {
	servers := map[string]*appServer{}
	for _, n := range []string{"w1", "w2", "l1"} {
		servers[n] = newAppServer(t, n, func(http.ResponseWriter, *http.Request) {})
	}
	tp := startProxy(t, seriesConfig, servers)
	c := client(t)
	for range 4 {
		resp, _ := do(t, c, "GET", tp.url+"/shop/a", nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	resp, _ := do(t, c, "GET", tp.url+"/old/a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{"xlb_l7_requests_total", "xlb_l7_request_duration_seconds", "xlb_l7_server_up", "xlb_l7_ejections_total"} {
		require.Contains(t, labelled(t, tp.reg, "server", "w2"), want)
	}
	require.Contains(t, labelled(t, tp.reg, "route", "old"), "xlb_l7_terminations_total")
	require.Contains(t, labelled(t, tp.reg, "route", "old"), "xlb_l7_route_request_duration_seconds")
	require.Contains(t, labelled(t, tp.reg, "pool", "legacy"), "xlb_l7_retries_total")
	w1Before := metricValue(t, tp.reg, "xlb_l7_requests_total", map[string]string{"route": "shop", "server": "w1", "code_class": "2xx"})
	require.Equal(t, 2.0, w1Before)

	next := strings.Replace(seriesConfig, `      - {name: w2, addr: "{w2}"}`+"\n", "", 1)
	next = strings.Replace(next, `  - {name: old, match: {path_prefix: /old}, pool: legacy}`+"\n", "", 1)
	next = next[:strings.Index(next, "  - name: legacy")]
	_, err := tp.Apply(parseShop(t, next, servers))
	require.NoError(t, err)

	assert.Empty(t, labelled(t, tp.reg, "server", "w2"), "removed server")
	assert.Empty(t, labelled(t, tp.reg, "route", "old"), "removed route")
	assert.Empty(t, labelled(t, tp.reg, "pool", "legacy"), "removed pool")
	assert.Equal(t, w1Before, metricValue(t, tp.reg, "xlb_l7_requests_total", map[string]string{"route": "shop", "server": "w1", "code_class": "2xx"}),
		"a server that stays keeps its counts")
	resp, _ = do(t, c, "GET", tp.url+"/shop/a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, w1Before+1, metricValue(t, tp.reg, "xlb_l7_requests_total", map[string]string{"route": "shop", "server": "w1", "code_class": "2xx"}))

	// Putting the server back starts its series again.
	_, err = tp.Apply(parseShop(t, seriesConfig, servers))
	require.NoError(t, err)
	assert.Contains(t, labelled(t, tp.reg, "server", "w2"), "xlb_l7_requests_total")
}
