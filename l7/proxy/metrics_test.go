package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// metricsConfig has one sticky route and one server so that the expected
// exposition stays short.
const metricsConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
sticky:
  keys:
    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}
routes:
  - name: shop
    match: {path_prefix: /shop}
    pool: web
    max_body_bytes: 10
pools:
  - name: web
    sticky: {cookie: s}
    servers:
      - {name: w1, addr: "{w1}"}
`

func TestMetrics(t *testing.T) {
	w1 := newAppServer(t, "w1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/shop/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	tp := startProxy(t, metricsConfig, map[string]*appServer{"w1": w1})
	c := client(t)

	resp, _ := do(t, c, "GET", tp.url+"/shop/a", nil, nil) // new pin
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	do(t, c, "GET", tp.url+"/shop/b", nil, map[string]string{"Cookie": cookie})                                   // hit
	do(t, c, "GET", tp.url+"/shop/fail", nil, map[string]string{"Cookie": cookie})                                // hit, 5xx
	do(t, c, "GET", tp.url+"/shop/c", nil, map[string]string{"Cookie": "s=forged"})                               // rejected, new pin
	do(t, c, "POST", tp.url+"/shop/big", strings.NewReader("more than ten bytes"), nil)                           // 413 by the route, new pin
	do(t, c, "GET", tp.url+"/elsewhere", nil, nil)                                                                // 404
	rawExchange(t, tp.addr, "POST /shop/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") // 400 by the parser

	const want = `
# HELP xlb_l7_requests_total HTTP requests answered, by route, pool, app server (empty when the proxy answered itself) and status class.
# TYPE xlb_l7_requests_total counter
xlb_l7_requests_total{code_class="1xx",pool="",route="",server=""} 0
xlb_l7_requests_total{code_class="2xx",pool="",route="",server=""} 0
xlb_l7_requests_total{code_class="3xx",pool="",route="",server=""} 0
xlb_l7_requests_total{code_class="4xx",pool="",route="",server=""} 2
xlb_l7_requests_total{code_class="5xx",pool="",route="",server=""} 0
xlb_l7_requests_total{code_class="1xx",pool="web",route="shop",server=""} 0
xlb_l7_requests_total{code_class="2xx",pool="web",route="shop",server=""} 0
xlb_l7_requests_total{code_class="3xx",pool="web",route="shop",server=""} 0
xlb_l7_requests_total{code_class="4xx",pool="web",route="shop",server=""} 1
xlb_l7_requests_total{code_class="5xx",pool="web",route="shop",server=""} 0
xlb_l7_requests_total{code_class="1xx",pool="web",route="shop",server="w1"} 0
xlb_l7_requests_total{code_class="2xx",pool="web",route="shop",server="w1"} 3
xlb_l7_requests_total{code_class="3xx",pool="web",route="shop",server="w1"} 0
xlb_l7_requests_total{code_class="4xx",pool="web",route="shop",server="w1"} 0
xlb_l7_requests_total{code_class="5xx",pool="web",route="shop",server="w1"} 1
# HELP xlb_l7_inflight_requests Requests currently forwarded to the pool's app servers.
# TYPE xlb_l7_inflight_requests gauge
xlb_l7_inflight_requests{pool="web"} 0
# HELP xlb_l7_server_up 1 when the app server passes active health checks and is not ejected, else 0.
# TYPE xlb_l7_server_up gauge
xlb_l7_server_up{pool="web",server="w1"} 1
# HELP xlb_l7_ejections_total Passive-health ejections of an app server (consecutive connect errors or 5xx).
# TYPE xlb_l7_ejections_total counter
xlb_l7_ejections_total{pool="web",server="w1"} 0
# HELP xlb_l7_sticky_total Sticky-session decisions: hit (cookie honoured), new (no usable cookie, pinned), repin (pinned server unusable, moved), pending (recent cookie naming a server this host does not have yet: served by a stand-in, cookie kept), rejected (tampered, expired or unknown cookie, treated as absent).
# TYPE xlb_l7_sticky_total counter
xlb_l7_sticky_total{pool="web",result="hit"} 2
xlb_l7_sticky_total{pool="web",result="new"} 3
xlb_l7_sticky_total{pool="web",result="pending"} 0
xlb_l7_sticky_total{pool="web",result="rejected"} 1
xlb_l7_sticky_total{pool="web",result="repin"} 0
# HELP xlb_l7_ready 1 while /ready answers 200 (the host can serve), else 0.
# TYPE xlb_l7_ready gauge
xlb_l7_ready 1
`
	assert.NoError(t, testutil.GatherAndCompare(tp.reg, strings.NewReader(want),
		"xlb_l7_requests_total", "xlb_l7_inflight_requests", "xlb_l7_server_up",
		"xlb_l7_ejections_total", "xlb_l7_sticky_total", "xlb_l7_ready"))

	n, err := testutil.GatherAndCount(tp.reg, "xlb_l7_request_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one latency histogram per server")
	mfs, err := tp.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		switch mf.GetName() {
		case "xlb_l7_request_duration_seconds", "xlb_l7_route_request_duration_seconds":
			require.Len(t, mf.GetMetric(), 1, "one histogram per server, one per route: %s", mf.GetName())
			assert.Equal(t, uint64(4), mf.GetMetric()[0].GetHistogram().GetSampleCount(), "the four requests w1 answered: %s", mf.GetName())
		}
	}
	n, err = testutil.GatherAndCount(tp.reg, "xlb_l7_route_request_duration_seconds")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one latency histogram per route")

	problems, err := testutil.GatherAndLint(tp.reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
	for _, c := range []prometheus.Collector{tp.metrics, newStateCollector(tp.Proxy)} {
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		assert.Empty(t, problems)
	}
	assert.Equal(t, 3.0, testutil.ToFloat64(tp.gen.Load().metrics.upstream[0][0][1]), "2xx from w1")

	// Every request has a termination cause: the four answered by w1 (a
	// 5xx from the server is still a normal end), 413 by the route, 404
	// and 400 by the proxy before any route.
	assert.Equal(t, 4.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "shop", "cause": "ok"}))
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "shop", "cause": "rejected"}))
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "", "cause": "rejected"}))
	n, err = testutil.GatherAndCount(tp.reg, "xlb_l7_terminations_total")
	require.NoError(t, err)
	assert.Equal(t, 2*int(numCauses), n, "every cause of every route (and of none) is exported from the start")
	problems, err = testutil.CollectAndLint(tp.traffic)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

func TestNoRequestMetrics(t *testing.T) {
	w1 := newAppServer(t, "w1", nil)
	tp := startProxy(t, metricsConfig, map[string]*appServer{"w1": w1}, func(o *Options) { o.NoRequestMetrics = true })
	resp, _ := do(t, client(t), "GET", tp.url+"/shop/a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n, err := testutil.GatherAndCount(tp.reg, "xlb_l7_requests_total", "xlb_l7_request_duration_seconds")
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = testutil.GatherAndCount(tp.reg, "xlb_l7_server_up")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "state metrics stay")
}

// TestMetricNamespace: every proxy metric is xlb_l7_*, a prefix the
// control daemon never uses, so both can be scraped into one Prometheus
// without two meanings for one name (the daemon's xlb_backend_up is per
// L7 host, labelled vip and backend).
func TestMetricNamespace(t *testing.T) {
	w1 := newAppServer(t, "w1", nil)
	tp := startProxy(t, metricsConfig, map[string]*appServer{"w1": w1})
	resp, _ := do(t, client(t), "GET", tp.url+"/shop/a", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	mfs, err := tp.reg.Gather()
	require.NoError(t, err)
	require.NotEmpty(t, mfs)
	for _, mf := range mfs {
		assert.True(t, strings.HasPrefix(mf.GetName(), "xlb_l7_"), "%s is outside xlb_l7_", mf.GetName())
	}
}
