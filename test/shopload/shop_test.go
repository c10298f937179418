package shopload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeShop answers like the demo behind xlb: two L7 hosts in turn, the
// checkout pool sticky through a cookie (unless ignoreCookie), the other
// routes round robin over the browse pool. It counts what it answered per
// app server and per L7 host, to compare with what the users report.
type fakeShop struct {
	ignoreCookie bool
	status       map[string]int // path prefix → status to answer

	mu       sync.Mutex
	n        int
	apps     map[string]int
	l7s      map[string]int
	conns    atomic.Int64
	requests atomic.Int64
}

func newFakeShop(t *testing.T, s *fakeShop) *httptest.Server {
	s.apps, s.l7s = map[string]int{}, map[string]int{}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func (s *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.n++
	l7 := fmt.Sprintf("l7-%d", s.n%2)
	var app string
	if strings.HasPrefix(r.URL.Path, "/checkout") {
		if c, err := r.Cookie("xlb_checkout"); err == nil && !s.ignoreCookie {
			app = c.Value
		} else {
			app = fmt.Sprintf("checkout-%d", s.n%3)
			http.SetCookie(w, &http.Cookie{Name: "xlb_checkout", Value: app, Path: "/"})
		}
	} else {
		app = fmt.Sprintf("browse-%d", s.n%2)
	}
	s.apps[app]++
	s.l7s[l7]++
	s.mu.Unlock()
	w.Header().Set("X-App", app)
	w.Header().Set("X-Via", l7)
	for prefix, code := range s.status {
		if strings.HasPrefix(r.URL.Path, prefix) {
			w.WriteHeader(code)
		}
	}
	fmt.Fprintf(w, "app=%s path=%s\n", app, r.URL.Path)
}

func sumRoutes(s *Summary) (total int) {
	for _, r := range s.Routes {
		total += r.Requests
	}
	return total
}

func TestCountsAddUp(t *testing.T) {
	shop := &fakeShop{}
	srv := newFakeShop(t, shop)
	sum, err := Run(context.Background(), Config{
		Target: srv.URL, Rate: 400, Users: 60, Duration: 10 * time.Second,
		Think: time.Millisecond, Reopen: 2, Seed: 1,
	})
	require.NoError(t, err)
	t.Logf("%d users at %.0f users/s (configured 400), %d requests", sum.Users.Started, sum.ArrivalRate, sum.Requests)

	assert.Equal(t, Users{Started: 60, Finished: 60}, sum.Users)
	// Each shopper: browse, 3 products, auth, cart, checkout.
	assert.Equal(t, 60*7, sum.Requests)
	assert.Equal(t, sum.Requests, sumRoutes(sum))
	assert.Equal(t, int(shop.requests.Load()), sum.Requests)
	shop.mu.Lock()
	assert.Equal(t, shop.apps, sum.AppServers, "per app server, as the servers counted")
	assert.Equal(t, shop.l7s, sum.L7Hosts, "per L7 host, as the servers counted")
	shop.mu.Unlock()
	byRoute := 0
	for _, m := range sum.AppByRoute {
		for _, n := range m {
			byRoute += n
		}
	}
	assert.Equal(t, sum.Requests, byRoute)
	assert.Empty(t, sum.Errors)
	for _, r := range sum.Routes {
		assert.Equal(t, r.Requests, r.OK, r.Route)
	}
	assert.Equal(t, Sticky{Routes: []string{RouteCart, RouteCheckout}, Users: 60, Kept: 60}, sum.Sticky)
	// Reopen 2 over 7 requests: a new connection for requests 0, 2, 4, 6.
	assert.Equal(t, 60*4, sum.Conns.Opened)
	assert.Equal(t, int(shop.conns.Load()), sum.Conns.Opened)
	assert.Zero(t, sum.Conns.Broken)

	var out strings.Builder
	require.NoError(t, sum.WriteText(&out))
	assert.Contains(t, out.String(), "sticky (/checkout/cart, /checkout): 60 users, 60 kept their server, 0 moved")
}

func TestStickyBrokenIsReported(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{ignoreCookie: true})
	// One user at a time, so the server's round robin gives every user's
	// cart and checkout requests different servers.
	sum, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: 1, Users: 10, Pages: 1, Seed: 2})
	require.NoError(t, err)
	assert.Equal(t, 10, sum.Sticky.Users)
	assert.Equal(t, 10, sum.Sticky.Moved)
	assert.Zero(t, sum.Sticky.Kept)
	require.NotEmpty(t, sum.Sticky.Examples)
	assert.Contains(t, sum.Sticky.Examples[0], "→")
}

func TestHTTPErrorsByRoute(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{status: map[string]int{"/checkout": 503, "/auth": 403}})
	sum, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: 3, Users: 9, Seed: 3})
	require.NoError(t, err)
	for _, r := range sum.Routes {
		switch r.Route {
		case RouteCheckout, RouteCart:
			assert.Equal(t, map[string]int{Cause5xx: 9}, r.Errors, r.Route)
		case RouteAuth:
			assert.Equal(t, map[string]int{Cause4xx: 9}, r.Errors, r.Route)
		default:
			assert.Empty(t, r.Errors, r.Route)
			assert.Equal(t, r.Requests, r.OK, r.Route)
		}
	}
	assert.Equal(t, map[string]int{Cause5xx: 18, Cause4xx: 9}, sum.Errors)
	assert.Zero(t, sum.Conns.Broken, "an HTTP error is an answer, not a broken connection")
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	sum, err := Run(context.Background(), Config{Target: "http://" + addr, Concurrency: 2, Users: 4, Seed: 4})
	require.NoError(t, err)
	assert.Equal(t, 4*7, sum.Requests)
	assert.Equal(t, map[string]int{CauseRefused: 4 * 7}, sum.Errors)
	assert.Zero(t, sum.Conns.Opened)
	assert.Zero(t, sum.Conns.Broken)
}

// resetServer accepts connections, reads a little of the request and
// resets the connection (SO_LINGER 0), like a host that died mid-flow.
func resetServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 1)
				_, _ = c.Read(buf)
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestReset(t *testing.T) {
	addr := resetServer(t)
	sum, err := Run(context.Background(), Config{Target: "http://" + addr, Flow: FlowGet, Pages: 2, Concurrency: 2, Users: 6, Seed: 5})
	require.NoError(t, err)
	assert.Equal(t, 12, sum.Requests)
	assert.Equal(t, map[string]int{CauseReset: 12}, sum.Errors)
	assert.Equal(t, 12, sum.Conns.Opened)
	assert.Equal(t, 12, sum.Conns.Broken)
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	sum, err := Run(context.Background(), Config{Target: srv.URL, Flow: FlowGet, Pages: 1, Concurrency: 3, Users: 3,
		Timeout: 50 * time.Millisecond, Seed: 6})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{CauseTimeout: 3}, sum.Errors)
}

// A server that never answers must not keep the run going: users still in
// flight at Duration+Grace are cut and counted.
func TestBoundedStop(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	sum, err := Run(context.Background(), Config{Target: srv.URL, Rate: 100, MaxActive: 5, Duration: 300 * time.Millisecond,
		Grace: 200 * time.Millisecond, Timeout: time.Minute, Seed: 7})
	require.NoError(t, err)
	t.Logf("stopped after %s: %+v", time.Since(start), sum.Users)
	assert.Equal(t, 5, sum.Users.Started, "MaxActive caps running users")
	assert.Equal(t, 5, sum.Users.Cut)
	assert.Positive(t, sum.Users.Dropped, "arrivals over the cap are dropped, not queued")
	assert.Equal(t, map[string]int{CauseCanceled: 5}, sum.Errors)
	assert.Zero(t, sum.Conns.Broken, "a request cut by the end of the run is not a broken connection")
}

func TestOpenLoopRate(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{})
	var lines []string
	sum, err := Run(context.Background(), Config{Target: srv.URL, Rate: 200, Duration: 2 * time.Second,
		RampUp: 500 * time.Millisecond, RampDown: 500 * time.Millisecond, Flow: FlowGet, Pages: 1, Seed: 8,
		Progress: func(s Snapshot) { lines = append(lines, s.String()) }})
	require.NoError(t, err)
	// Expected users: 200/s × (2s − 0.5s ramp-up/2 − 0.5s ramp-down/2) = 300.
	t.Logf("started %d users over %.2fs, %.0f users/s; expected about 300 users, 150 users/s on average", sum.Users.Started, sum.ArrivalSeconds, sum.ArrivalRate)
	for _, l := range lines {
		t.Log(l)
	}
	assert.Equal(t, sum.Users.Started, sum.Users.Finished)
	assert.Equal(t, sum.Users.Started, sum.Requests)
	assert.NotEmpty(t, lines, "a progress line per second")
}

func TestConfigRejected(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no target":     {Rate: 1, Users: 1},
		"https":         {Target: "https://x", Rate: 1, Users: 1},
		"no rate":       {Target: "http://x", Users: 1},
		"both loops":    {Target: "http://x", Rate: 1, Concurrency: 1, Users: 1},
		"unbounded":     {Target: "http://x", Rate: 1},
		"ramps too big": {Target: "http://x", Rate: 1, Duration: time.Second, RampUp: time.Second, RampDown: time.Second},
		"bad flow":      {Target: "http://x", Rate: 1, Users: 1, Flow: "buy"},
	} {
		_, err := Run(context.Background(), cfg)
		assert.Error(t, err, name)
	}
}

// The dial hook is what every connection goes through (test/topo's
// Host.DialContext runs the users from inside a namespace).
func TestDialHook(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{})
	var dials atomic.Int64
	sum, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: 2, Users: 4, Seed: 9,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	require.NoError(t, err)
	assert.Equal(t, 4, int(dials.Load()), "one keep-alive connection per user")
	assert.Equal(t, 4, sum.Conns.Opened)
}

func TestRoutesInFlowOrder(t *testing.T) {
	assert.Equal(t, []string{RouteBrowse, RouteProducts, RouteAuth, RouteCart, RouteCheckout, "/a", "/z"},
		routeOrder(map[string]int{"/z": 0, RouteCheckout: 0, RouteAuth: 0, "/a": 0, RouteBrowse: 0, RouteCart: 0, RouteProducts: 0}))
}
