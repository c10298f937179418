package director_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/director"
)

// TestPoliciesUnderSkewedLatency drives real requests through the director
// to two real app servers, one answering at once and one after 20 ms. The
// slow server's requests pile up in flight, so the load-aware policies must
// send most traffic to the fast one; round robin, which ignores load, is
// the control and splits evenly.
func TestPoliciesUnderSkewedLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("drives real HTTP traffic")
	}
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(fast.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	t.Cleanup(slow.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	const workers, perWorker = 8, 40
	tests := []struct {
		policy  string
		minFast float64
		maxFast float64
	}{
		{"p2c", 0.7, 1},
		{"least_conn", 0.7, 1},
		{"round_robin", 0.4, 0.6},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			yaml := fmt.Sprintf(`
listeners: [{addr: ":8080"}]
routes: [{name: all, pool: app}]
pools:
  - name: app
    policy: %s
    servers:
      - {name: fast, addr: %q}
      - {name: slow, addr: %q}
`, tt.policy, fast.Listener.Addr().String(), slow.Listener.Addr().String())
			d := newDirector(t, yaml, &clock{now: t0})
			var mu sync.Mutex
			counts := map[string]int{}
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for range perWorker {
						var dec director.Decision
						d.Decide(request("GET", "h", "/"), &dec)
						if !assert.Equal(t, 0, dec.Status) {
							return
						}
						resp, err := client.Get("http://" + dec.Backend.Addr + "/")
						status := 0
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							status = resp.StatusCode
						}
						d.Done(&dec, director.Outcome{ConnectErr: err != nil, Status: status})
						mu.Lock()
						counts[dec.Backend.Name]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			total := counts["fast"] + counts["slow"]
			require.Equal(t, workers*perWorker, total)
			share := float64(counts["fast"]) / float64(total)
			t.Logf("%s: fast %d, slow %d (fast share %.2f)", tt.policy, counts["fast"], counts["slow"], share)
			assert.GreaterOrEqual(t, share, tt.minFast)
			assert.LessOrEqual(t, share, tt.maxFast)
			for _, b := range d.Backends() {
				assert.Equal(t, int64(0), b.InFlight(), "every request released")
			}
		})
	}
}
