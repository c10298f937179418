package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// passiveConfig: round robin (deterministic order) over a good server and a
// bad one; two failures in a row eject.
const passiveConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
routes: [{name: r, match: {path_prefix: /}, pool: p, max_body_bytes: 4}]
pools:
  - name: p
    policy: round_robin
    health: {passive: {consecutive_errors: 2, consecutive_5xx: 2, max_ejected_percent: 50}}
    servers:
      - {name: good, addr: "{good}"}
      - {name: bad, addr: "{bad}"}
`

func TestPassiveEjectionThroughTheEngine(t *testing.T) {
	refused := refusedAddr(t)

	tests := []struct {
		name string
		bad  func(t *testing.T) string // address of the failing server
		// wantBad is how many answers the client sees fail: a refused
		// connection is redispatched to the good server, so none.
		wantBad int
	}{
		{"5xx", func(t *testing.T) string {
			return newAppServer(t, "bad", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			}).addr()
		}, 2},
		{"connect errors", func(*testing.T) string { return refused }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := newAppServer(t, "good", nil)
			text := strings.NewReplacer("{good}", good.addr(), "{bad}", tt.bad(t)).Replace(passiveConfig)
			tp := startProxy(t, text, nil)
			c := client(t)

			// Round robin alternates servers per decision. With the good
			// server first, the POST (refused for its body in the handler,
			// never sent) is decided for the bad server between its two
			// failures: it must not reset the failure streak. It is in
			// absolute form because origin-form requests are refused from
			// their Content-Length before any decision.
			var bad int
			for _, method := range []string{"GET", "GET", "GET", "POST", "GET", "GET"} {
				if method == "POST" {
					out := rawExchange(t, tp.addr, "POST http://shop/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 8\r\n\r\ntoo long")
					require.Equal(t, http.StatusRequestEntityTooLarge, statusOf(t, out))
					continue
				}
				resp, _ := do(t, c, method, tp.url+"/x", nil, nil)
				if resp.StatusCode >= 500 {
					bad++
				}
			}
			assert.Equal(t, tt.wantBad, bad, "failed answers before ejection")
			for range 6 {
				resp, _ := do(t, c, "GET", tp.url+"/x", nil, nil)
				assert.Equal(t, http.StatusOK, resp.StatusCode, "ejected server still chosen")
			}
			const want = `
# HELP xlb_l7_ejections_total Passive-health ejections of an app server (consecutive connect errors or 5xx).
# TYPE xlb_l7_ejections_total counter
xlb_l7_ejections_total{pool="p",server="bad"} 1
xlb_l7_ejections_total{pool="p",server="good"} 0
# HELP xlb_l7_inflight_requests Requests currently forwarded to the pool's app servers.
# TYPE xlb_l7_inflight_requests gauge
xlb_l7_inflight_requests{pool="p"} 0
`
			assert.NoError(t, testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "xlb_l7_ejections_total", "xlb_l7_inflight_requests"))
		})
	}
}
