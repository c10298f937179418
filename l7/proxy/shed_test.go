package proxy

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/route"
)

func TestShedderOrder(t *testing.T) {
	routes := []*route.Route{
		{Name: "browse", Index: 0, Priority: config.PriorityLow.Rank()},
		{Name: "auth", Index: 1, Priority: config.PriorityNormal.Rank()},
		{Name: "checkout", Index: 2, Priority: config.PriorityCritical.Rank()},
	}
	pol := newShedPolicy(config.Shedding{MaxInFlight: 20, Low: 50, Normal: 75, Critical: 100, RetryAfter: 1500 * time.Millisecond})
	assert.Equal(t, "2", string(pol.retryAfter), "rounded up to whole seconds")
	var s shedder

	// Fill up with each class in turn: low stops at 10, normal at 15,
	// critical at 20.
	admitted := map[string]int{}
	for _, r := range routes {
		for range 30 {
			if s.admit(&pol, r) {
				admitted[r.Name]++
			}
		}
	}
	assert.Equal(t, map[string]int{"browse": 10, "auth": 5, "checkout": 5}, admitted)
	assert.Equal(t, int64(20), s.InFlight())

	// Done frees room for the highest classes first: with 19 in flight a
	// low request is still refused, a critical one admitted.
	s.done()
	assert.False(t, s.admit(&pol, routes[0]))
	assert.False(t, s.admit(&pol, routes[1]))
	assert.True(t, s.admit(&pol, routes[2]))
}

// shedConfig: browse (low) and checkout (critical) on their own pools;
// the proxy sheds above 20 requests in flight, low from 10 (50 %).
const shedConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
shedding: {max_inflight: 20, low: 50, normal: 75, critical: 100, retry_after: 2s}
routes:
  - {name: browse, match: {path_prefix: /browse}, pool: browse, priority: low}
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout, priority: critical}
pools:
  - name: browse
    servers: [{name: b1, addr: "{b1}"}, {name: b2, addr: "{b2}"}]
  - name: checkout
    servers: [{name: c1, addr: "{c1}"}]
`

func TestPriorityShedding(t *testing.T) {
	// Slow browse servers: every browse request sits in flight for 20 ms,
	// so 30 concurrent browse clients want 30 slots. Checkout answers at
	// once.
	var browseBusy, browsePeak atomic.Int64
	slow := func(w http.ResponseWriter, _ *http.Request) {
		n := browseBusy.Add(1)
		defer browseBusy.Add(-1)
		for {
			p := browsePeak.Load()
			if n <= p || browsePeak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	servers := map[string]*appServer{
		"b1": newAppServer(t, "b1", slow),
		"b2": newAppServer(t, "b2", slow),
		"c1": newAppServer(t, "c1", nil),
	}
	tp := startProxy(t, shedConfig, servers)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	type tally struct{ ok, shed, other atomic.Int64 }
	var browse, checkout tally
	var retryAfterMissing atomic.Int64
	run := func(path string, tl *tally, workers, each int, wg *sync.WaitGroup) {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					resp, err := c.Get(tp.url + path)
					if err != nil {
						tl.other.Add(1)
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						tl.ok.Add(1)
					case http.StatusServiceUnavailable:
						tl.shed.Add(1)
						if resp.Header.Get("Retry-After") != "2" {
							retryAfterMissing.Add(1)
						}
					default:
						tl.other.Add(1)
					}
				}
			}()
		}
	}
	var wg sync.WaitGroup
	const browseWorkers, browseEach = 30, 20
	const checkoutWorkers, checkoutEach = 5, 60
	run("/browse/shoes", &browse, browseWorkers, browseEach, &wg)
	run("/checkout/pay", &checkout, checkoutWorkers, checkoutEach, &wg)
	wg.Wait()

	total := float64(checkoutWorkers * checkoutEach)
	t.Logf("browse: %d ok, %d shed; checkout: %d ok, %d shed, %d other; browse peak in flight at the servers %d",
		browse.ok.Load(), browse.shed.Load(), checkout.ok.Load(), checkout.shed.Load(), checkout.other.Load(), browsePeak.Load())
	assert.GreaterOrEqual(t, float64(checkout.ok.Load())/total, 0.99, "checkout success rate")
	assert.Zero(t, checkout.shed.Load(), "critical is never shed while low holds at most half the ceiling")
	assert.Positive(t, browse.shed.Load(), "the overload is shed from browse")
	assert.Equal(t, int64(browseWorkers*browseEach), browse.ok.Load()+browse.shed.Load(), "browse: every request answered 200 or 503")
	assert.LessOrEqual(t, browsePeak.Load(), int64(10), "browse never holds more than its ceiling in flight")
	assert.Zero(t, retryAfterMissing.Load(), "every shed 503 carries Retry-After")

	assert.Equal(t, float64(browse.shed.Load()), metricValue(t, tp.reg, "xlb_l7_shed_total", map[string]string{"route": "browse", "priority": "low"}))
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_shed_total", map[string]string{"route": "checkout", "priority": "critical"}))
	assert.Equal(t, float64(browse.shed.Load()), metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "browse", "cause": "shed"}))
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_shed_inflight_requests", nil))
}
