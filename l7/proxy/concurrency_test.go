package proxy

import (
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentRequests drives parallel clients through every route while
// checkout servers flip up and down, so that `go test -race` sees the pooled
// per-request state, the director and the metrics under contention. Bounded:
// 8 clients × 100 requests.
func TestConcurrentRequests(t *testing.T) {
	servers := shopServers(t, nil)
	// The test is about shared state under contention, not about speed:
	// the shop's 300 ms timeouts would turn a slow moment of a loaded
	// machine (the race detector, other builds) into a 504 or a 408.
	slow := strings.NewReplacer("response: 300ms", "response: 30s", "dial: 200ms", "dial: 10s", "read_header_timeout: 300ms", "read_header_timeout: 30s")
	text := slow.Replace(shopConfig)
	require.NotContains(t, text, "300ms")
	tp := startProxy(t, text, servers)
	paths := []string{"/checkout/cart", "/browse/shoes", "/auth/session", "/nowhere"}

	stop := make(chan struct{})
	var flipper sync.WaitGroup
	flipper.Add(1)
	go func() {
		defer flipper.Done()
		for up := false; ; up = !up {
			select {
			case <-stop:
				tp.dir.SetStatus("checkout/c1", true)
				return
			default:
				tp.dir.SetStatus("checkout/c1", up)
				// Flip as often as the clients run, without taking a
				// CPU of its own from them.
				runtime.Gosched()
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(t)
			for i := range 100 {
				path := paths[(w+i)%len(paths)]
				req, err := http.NewRequest("GET", tp.url+path, nil)
				if !assert.NoError(t, err) {
					return
				}
				resp, err := c.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				want := http.StatusOK
				if strings.HasPrefix(path, "/nowhere") {
					want = http.StatusNotFound
				}
				assert.Equal(t, want, resp.StatusCode, path)
			}
		}()
	}
	wg.Wait()
	close(stop)
	flipper.Wait()

	for _, p := range tp.dir.Pools() {
		for _, b := range p.Backends {
			assert.Zero(t, b.InFlight(), "%s/%s in flight after all requests", p.Name, b.Name)
		}
	}
}
