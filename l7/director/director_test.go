package director_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/sticky"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const (
	secretA = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=" // id 1
	secretB = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=" // id 2
)

// clock is a settable time source shared by the directors of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// headers is a HeaderView over plain maps.
type headers struct {
	h       map[string][]byte
	cookies map[string][]byte
}

func (v *headers) Peek(name string) []byte   { return v.h[name] }
func (v *headers) Cookie(name string) []byte { return v.cookies[name] }

func request(method, host, path string) *director.Request {
	return &director.Request{
		Method:     []byte(method),
		Host:       []byte(host),
		Path:       []byte(path),
		ClientAddr: netip.MustParseAddr("192.0.2.10"),
		Headers:    &headers{h: map[string][]byte{}, cookies: map[string][]byte{}},
	}
}

func withCookie(r *director.Request, name string, setCookie []byte) *director.Request {
	v, _, _ := strings.Cut(string(setCookie), ";")
	_, v, _ = strings.Cut(v, "=")
	r.Headers.(*headers).cookies[name] = []byte(v)
	return r
}

const testConfig = `
listeners: [{addr: ":8080"}]
sticky:
  keys: [{id: 1, secret: "` + secretA + `"}]
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse, methods: [GET]}, pool: browse}
  - {name: auth, match: {path_prefix: /auth}, pool: auth}
pools:
  - name: checkout
    servers:
      - {name: c1, addr: "127.0.0.1:9101"}
      - {name: c2, addr: "127.0.0.1:9102"}
      - {name: c3, addr: "127.0.0.1:9103"}
    health:
      passive: {consecutive_errors: 2, consecutive_5xx: 2, base_ejection: 10s, max_ejected_percent: 50}
    sticky: {cookie: xlb_co, max_age: 1h, drain_timeout: 10m}
  - name: browse
    policy: hash
    hash_key: path
    servers:
      - {name: b1, addr: "127.0.0.1:9201"}
      - {name: b2, addr: "127.0.0.1:9202"}
  - name: auth
    policy: least_conn
    servers:
      - {name: a1, addr: "127.0.0.1:9301"}
`

func newDirector(t testing.TB, yaml string, clk *clock, opts ...director.Option) *director.Director {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	d, err := director.New(cfg, append([]director.Option{director.WithClock(clk.Now)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	return d
}

func decide(d *director.Director, r *director.Request) director.Decision {
	var dec director.Decision
	d.Decide(r, &dec)
	if dec.Backend != nil {
		d.Done(&dec, director.Outcome{Status: 200})
	}
	return dec
}

func TestDecideRouting(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantRoute          string
		wantPool           string
	}{
		{"checkout", "POST", "/checkout/pay", 0, "checkout", "checkout"},
		{"browse", "GET", "/browse/shoes", 0, "browse", "browse"},
		{"method not routed", "DELETE", "/browse/shoes", 404, "", ""},
		{"unknown path", "GET", "/admin", 404, "", ""},
		{"dot segments are cleaned first", "GET", "/browse/../auth/login", 0, "auth", "auth"},
		{"encoded dots too", "GET", "/browse/%2e%2e/auth/login", 0, "auth", "auth"},
		{"query ignored", "GET", "/auth?next=/checkout", 0, "auth", "auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := decide(d, request(tt.method, "shop.test", tt.path))
			assert.Equal(t, tt.wantStatus, dec.Status)
			if tt.wantStatus != 0 {
				assert.Nil(t, dec.Backend)
				assert.Nil(t, dec.Route)
				return
			}
			require.NotNil(t, dec.Backend)
			assert.Equal(t, tt.wantRoute, dec.Route.Name)
			assert.Equal(t, tt.wantPool, dec.Pool.Name)
			assert.Equal(t, tt.wantPool, dec.Backend.Pool)
			assert.Same(t, dec.Backend, d.Backends()[dec.Backend.ID])
		})
	}
}

func TestInFlightAccounting(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	var dec director.Decision
	d.Decide(request("GET", "h", "/auth"), &dec)
	require.NotNil(t, dec.Backend)
	assert.Equal(t, int64(1), dec.Backend.InFlight())
	d.Done(&dec, director.Outcome{Status: 200})
	d.Done(&dec, director.Outcome{Status: 200}) // second Done is a no-op
	assert.Equal(t, int64(0), dec.Backend.InFlight())
}

func TestNoHealthyBackend(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	d.SetStatus("auth/a1", false)
	dec := decide(d, request("GET", "h", "/auth"))
	assert.Equal(t, 503, dec.Status)
	assert.Nil(t, dec.Backend)
	assert.Equal(t, "auth", dec.Route.Name)
	assert.Equal(t, []director.EmptyRoute{{Route: "auth", Pool: "auth"}}, d.EmptyRoutes())
}

// failOpenConfig is testConfig with the checkout and browse pools failing
// open.
var failOpenConfig = strings.NewReplacer(
	"    sticky: {cookie: xlb_co", "      all_down: fail_open\n    sticky: {cookie: xlb_co",
	"    policy: hash\n", "    policy: hash\n    health: {all_down: fail_open}\n").Replace(testConfig)

// TestFailOpen: with all_down: fail_open, a pool whose every server not
// draining fails its checks sends new clients to all of them, keeps sticky
// clients where they are, and still reads as not healthy; a drained server
// stays out, and one server back ends it.
func TestFailOpen(t *testing.T) {
	require.Equal(t, 2, strings.Count(failOpenConfig, "all_down: fail_open"))
	clk := &clock{now: t0}
	d := newDirector(t, failOpenConfig, clk)
	idx, ok := d.PoolIndex("browse")
	require.True(t, ok)
	browse := d.Pools()[idx]
	d.SetStatus("browse/b1", false)
	d.SetStatus("browse/b2", false)
	require.True(t, browse.FailingOpen(t0))
	assert.False(t, browse.Healthy(t0))
	assert.Contains(t, d.EmptyRoutes(), director.EmptyRoute{Route: "browse", Pool: "browse", FailingOpen: true}, "failing open is not healthy")
	seen := map[string]int{}
	for i := range 40 {
		dec := decide(d, request("GET", "h", fmt.Sprintf("/browse/%d", i)))
		require.Zero(t, dec.Status)
		seen[dec.Backend.Name]++
	}
	assert.Len(t, seen, 2, "new clients go to every failing server: %v", seen)

	require.NoError(t, d.Drain("browse", "b2", t0.Add(time.Hour)))
	for i := range 10 {
		dec := decide(d, request("GET", "h", fmt.Sprintf("/browse/%d", i)))
		require.Zero(t, dec.Status)
		assert.Equal(t, "b1", dec.Backend.Name, "a drained server stays out")
	}
	d.SetStatus("browse/b2", true) // up but draining: still failing open over b1
	assert.True(t, browse.FailingOpen(t0))
	d.SetStatus("browse/b1", true)
	assert.False(t, browse.FailingOpen(t0))
	assert.True(t, browse.Healthy(t0))

	// A sticky client stays on its server while the pool fails open,
	// instead of being re-pinned on every request.
	server, cookie := pinned(t, d)
	for _, s := range []string{"c1", "c2", "c3"} {
		d.SetStatus("checkout/"+s, false)
	}
	for range 10 {
		dec := decide(d, withCookie(request("GET", "shop.test", "/checkout/cart"), "xlb_co", cookie))
		require.Zero(t, dec.Status)
		assert.Equal(t, server, dec.Backend.Name)
		assert.Equal(t, director.StickyHit, dec.Sticky)
	}
}

// TestFailOpenBelow: with fail_open_below: 50%, the checkout pool with 1
// of its 3 servers passing fails open: new clients go to all three rather
// than all to the one left, a sticky client stays on its failing server
// instead of joining everyone on the survivor, and the pool still serves
// (it has a passing server). At 2 of 3 it is an ordinary pool again.
func TestFailOpenBelow(t *testing.T) {
	cfg := strings.Replace(testConfig, "    sticky: {cookie: xlb_co", "      all_down: fail_open\n      fail_open_below: 50%\n    sticky: {cookie: xlb_co", 1)
	require.NotEqual(t, testConfig, cfg)
	d := newDirector(t, cfg, &clock{now: t0})
	idx, ok := d.PoolIndex("checkout")
	require.True(t, ok)
	checkout := d.Pools()[idx]

	// A client pinned to a server that is about to fail.
	server, cookie := pinned(t, d)
	others := slices.DeleteFunc([]string{"c1", "c2", "c3"}, func(s string) bool { return s == server })
	d.SetStatus("checkout/"+server, false)
	d.SetStatus("checkout/"+others[0], false)
	require.True(t, checkout.FailingOpen(t0), "1 of 3 passing is below 50%")
	assert.Equal(t, 1, checkout.View(t0).Passing())
	assert.Empty(t, d.EmptyRoutes(), "a server still passes: the route is not empty")
	assert.Equal(t, []director.PartlyOpenRoute{{Route: "checkout", Pool: "checkout", Passing: 1, Servers: 3}}, d.PartlyOpenRoutes())
	ok, _ = d.AllPoolsAvailable()
	assert.True(t, ok)

	seen := map[string]int{}
	for range 60 {
		dec := decide(d, request("GET", "shop.test", "/checkout"))
		require.Zero(t, dec.Status)
		seen[dec.Backend.Name]++
	}
	assert.Len(t, seen, 3, "new clients go to every server, not only the one passing: %v", seen)
	for range 5 {
		dec := decide(d, withCookie(request("GET", "shop.test", "/checkout/cart"), "xlb_co", cookie))
		require.Zero(t, dec.Status)
		assert.Equal(t, server, dec.Backend.Name, "the sticky client stays")
		assert.Equal(t, director.StickyHit, dec.Sticky)
	}

	// 2 of 3 pass: the failing one is out again, its client re-pinned.
	d.SetStatus("checkout/"+others[0], true)
	require.False(t, checkout.FailingOpen(t0))
	assert.Empty(t, d.PartlyOpenRoutes())
	dec := decide(d, withCookie(request("GET", "shop.test", "/checkout/cart"), "xlb_co", cookie))
	require.Zero(t, dec.Status)
	assert.NotEqual(t, server, dec.Backend.Name)
	assert.Equal(t, director.StickyRepinned, dec.Sticky)
	for range 30 {
		dec := decide(d, request("GET", "shop.test", "/checkout"))
		require.Zero(t, dec.Status)
		assert.NotEqual(t, server, dec.Backend.Name)
	}
}

func TestReadiness(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	ok, reason := d.AllPoolsAvailable()
	assert.True(t, ok)
	assert.Empty(t, reason)
	assert.Empty(t, d.EmptyRoutes())

	d.SetStatus("checkout/c1", false)
	d.SetStatus("checkout/c2", false)
	ok, _ = d.AllPoolsAvailable()
	assert.True(t, ok, "one checkout server left")

	d.SetStatus("checkout/c3", false)
	ok, reason = d.AllPoolsAvailable()
	assert.False(t, ok)
	assert.Equal(t, "route checkout: pool checkout has no available server", reason)
	assert.Equal(t, []director.EmptyRoute{{Route: "checkout", Pool: "checkout"}}, d.EmptyRoutes())

	d.SetStatus("checkout/c2", true)
	ok, _ = d.AllPoolsAvailable()
	assert.True(t, ok)
	d.SetStatus("unknown/x", false) // ignored
}

// pinned returns the checkout server a fresh client is pinned to, and the
// Set-Cookie value that pins it.
func pinned(t *testing.T, d *director.Director) (string, []byte) {
	t.Helper()
	dec := decide(d, request("GET", "shop.test", "/checkout"))
	require.Equal(t, 0, dec.Status)
	require.NotNil(t, dec.SetCookie)
	assert.Equal(t, director.StickyIssued, dec.Sticky)
	return dec.Backend.Name, append([]byte(nil), dec.SetCookie...)
}

func TestStickyLifeCycle(t *testing.T) {
	clk := &clock{now: t0}
	d1 := newDirector(t, testConfig, clk)
	d2 := newDirector(t, testConfig, clk) // another L7 host, same keys
	stats := d1.StickyStats(0)

	server, cookie := pinned(t, d1)
	assert.Contains(t, string(cookie), "xlb_co=")
	assert.Contains(t, string(cookie), "; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax")
	assert.NotContains(t, string(cookie), "Secure")
	assert.NotContains(t, string(cookie), "127.0.0.1", "the cookie never carries an address")
	assert.Equal(t, uint64(1), stats.Issued.Load())

	t.Run("honoured, by this host and another", func(t *testing.T) {
		for i := range 20 {
			d := []*director.Director{d1, d2}[i%2]
			dec := decide(d, withCookie(request("GET", "shop.test", "/checkout/cart"), "xlb_co", cookie))
			assert.Equal(t, server, dec.Backend.Name)
			assert.Equal(t, director.StickyHit, dec.Sticky)
			assert.Nil(t, dec.SetCookie, "a fresh cookie is not re-sent")
		}
		assert.Equal(t, uint64(10), stats.Hits.Load())
	})

	t.Run("refreshed past half its age", func(t *testing.T) {
		clk.Advance(31 * time.Minute)
		dec := decide(d1, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
		assert.Equal(t, server, dec.Backend.Name)
		require.NotNil(t, dec.SetCookie)
		cookie = append(cookie[:0], dec.SetCookie...)
	})

	t.Run("re-pinned when its server goes down", func(t *testing.T) {
		d1.SetStatus("checkout/"+server, false)
		dec := decide(d1, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
		assert.NotEqual(t, server, dec.Backend.Name)
		assert.Equal(t, director.StickyRepinned, dec.Sticky)
		require.NotNil(t, dec.SetCookie)
		assert.Equal(t, uint64(1), stats.Repins.Load())
		moved := dec.Backend.Name
		again := decide(d1, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", dec.SetCookie))
		assert.Equal(t, moved, again.Backend.Name, "the new pin sticks")
		d1.SetStatus("checkout/"+server, true)
	})
}

func TestStickyDrain(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	server, cookie := pinned(t, d)
	require.NoError(t, d.Drain("checkout", server, clk.Now().Add(10*time.Minute)))

	for range 30 {
		dec := decide(d, request("GET", "shop.test", "/checkout"))
		assert.NotEqual(t, server, dec.Backend.Name, "a draining server gets no new clients")
	}
	clk.Advance(9 * time.Minute)
	dec := decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
	assert.Equal(t, server, dec.Backend.Name, "its sticky clients stay until the deadline")
	assert.Equal(t, director.StickyHit, dec.Sticky)

	clk.Advance(time.Minute)
	dec = decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
	assert.NotEqual(t, server, dec.Backend.Name, "after the deadline they move")
	assert.Equal(t, director.StickyRepinned, dec.Sticky)

	assert.ErrorIs(t, d.Drain("checkout", "nope", time.Time{}), director.ErrUnknownServer)
}

func TestStickyRejectedCookies(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	_, cookie := pinned(t, d)
	value := func(c []byte) string {
		v, _, _ := strings.Cut(string(c), ";")
		return strings.TrimPrefix(v, "xlb_co=")
	}(cookie)
	tampered := []byte(value)
	// Swap one base64 character for another valid one: still well formed,
	// but a server-key byte changed under the signature.
	tampered[20] = 'A'
	if value[20] == 'A' {
		tampered[20] = 'B'
	}
	otherYAML := strings.Replace(testConfig, secretA, secretB, 1)
	_, foreignCookie := pinned(t, newDirector(t, otherYAML, clk))
	foreign := []byte(strings.TrimPrefix(strings.SplitN(string(foreignCookie), ";", 2)[0], "xlb_co="))
	// A validly signed cookie for a server this pool does not have.
	ring, err := sticky.NewRing([]sticky.Key{{ID: 1, Secret: []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")}})
	require.NoError(t, err)
	// Issued before the propagation grace: not a server on its way here.
	ghost := ring.AppendValue(nil, 12345, t0.Add(-config.DefaultPropagationGrace))

	tests := []struct {
		name   string
		value  []byte
		reason sticky.Reason
	}{
		{"garbage", []byte("hello"), sticky.ReasonMalformed},
		{"tampered", tampered, sticky.ReasonSignature},
		{"signed with another ring", foreign, sticky.ReasonSignature},
		{"unknown server", ghost, sticky.ReasonUnknownServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := d.StickyStats(0).Rejected[tt.reason].Load()
			r := request("GET", "shop.test", "/checkout")
			r.Headers.(*headers).cookies["xlb_co"] = tt.value
			dec := decide(d, r)
			assert.Equal(t, 0, dec.Status, "a bad cookie is never an error page")
			assert.Equal(t, director.StickyIssued, dec.Sticky)
			assert.NotNil(t, dec.SetCookie, "a fresh cookie replaces it")
			assert.Equal(t, before+1, d.StickyStats(0).Rejected[tt.reason].Load())
		})
	}

	t.Run("expired", func(t *testing.T) {
		clk.Advance(time.Hour + time.Second)
		r := withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie)
		dec := decide(d, r)
		assert.Equal(t, director.StickyIssued, dec.Sticky)
		assert.Equal(t, uint64(1), d.StickyStats(0).Rejected[sticky.ReasonExpired].Load())
	})
}

func TestStickyKeyRotation(t *testing.T) {
	clk := &clock{now: t0}
	old := newDirector(t, testConfig, clk)
	server, oldCookie := pinned(t, old)

	// Rotation: the new key is prepended; hosts get it one by one.
	rotated := strings.Replace(testConfig,
		`keys: [{id: 1, secret: "`+secretA+`"}]`,
		`keys: [{id: 2, secret: "`+secretB+`"}, {id: 1, secret: "`+secretA+`"}]`, 1)
	require.NotEqual(t, testConfig, rotated)
	d := newDirector(t, rotated, clk)
	dec := decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", oldCookie))
	assert.Equal(t, server, dec.Backend.Name, "nobody is logged out by the rotation")
	assert.Equal(t, director.StickyHit, dec.Sticky)

	_, newCookie := pinned(t, d)
	dec = decide(old, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", newCookie))
	assert.Equal(t, director.StickyIssued, dec.Sticky, "a host without the new key treats the cookie as absent")
	assert.Equal(t, uint64(1), old.StickyStats(0).Rejected[sticky.ReasonUnknownKey].Load())
}

func TestStickySecureOverTLS(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	r := request("GET", "shop.test", "/checkout")
	r.TLS = true
	dec := decide(d, r)
	assert.True(t, strings.HasSuffix(string(dec.SetCookie), "; Secure"))
}

func TestPassiveEjectionThroughDone(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	fail := func(name string) {
		for range 2 {
			for range 100 {
				var dec director.Decision
				d.Decide(request("GET", "shop.test", "/checkout"), &dec)
				if dec.Backend.Name == name {
					d.Done(&dec, director.Outcome{ConnectErr: true})
					break
				}
				d.Done(&dec, director.Outcome{Status: 200})
			}
		}
	}
	fail("c1")
	b := d.Pools()[0].ByName("c1")
	assert.True(t, b.Ejected(clk.Now()))
	assert.Equal(t, uint64(1), b.Ejections())
	fail("c2") // over the 50 % cap of three servers: refused
	assert.False(t, d.Pools()[0].ByName("c2").Ejected(clk.Now()))
	for range 30 {
		assert.NotEqual(t, "c1", decide(d, request("GET", "h", "/checkout")).Backend.Name)
	}
	clk.Advance(10 * time.Second)
	assert.False(t, b.Ejected(clk.Now()), "back after the base ejection time")
	assert.Len(t, d.Pools()[0].Available(clk.Now()), 3)
}

func TestSkippedOutcomeIsNotJudged(t *testing.T) {
	d := newDirector(t, testConfig, &clock{now: t0})
	for range 10 {
		var dec director.Decision
		d.Decide(request("GET", "h", "/auth"), &dec)
		d.Done(&dec, director.Outcome{Status: 413, Skipped: true})
		assert.Equal(t, int64(0), dec.Backend.InFlight())
	}
	assert.Equal(t, uint64(0), d.Pools()[2].Backends[0].Ejections())
}

func TestHashKeys(t *testing.T) {
	yaml := func(key string) string {
		return strings.Replace(testConfig, "hash_key: path", "hash_key: "+key, 1)
	}
	tests := []struct {
		name string
		key  string
		// two requests that must land on the same server
		a, b func() *director.Request
	}{
		{"path", "path",
			func() *director.Request { return request("GET", "h", "/browse/shoes") },
			func() *director.Request { return request("GET", "h", "/browse//shoes?x=1") }},
		{"header", `"header:X-User"`,
			func() *director.Request {
				r := request("GET", "h", "/browse/a")
				r.Headers.(*headers).h["X-User"] = []byte("alice")
				return r
			},
			func() *director.Request {
				r := request("GET", "h", "/browse/b")
				r.Headers.(*headers).h["X-User"] = []byte("alice")
				return r
			}},
		{"cookie", `"cookie:session"`,
			func() *director.Request {
				r := request("GET", "h", "/browse/a")
				r.Headers.(*headers).cookies["session"] = []byte("s-1")
				return r
			},
			func() *director.Request {
				r := request("GET", "h", "/browse/c")
				r.Headers.(*headers).cookies["session"] = []byte("s-1")
				return r
			}},
		{"client address", "client_addr",
			func() *director.Request { return request("GET", "h", "/browse/a") },
			func() *director.Request { return request("GET", "h", "/browse/z") }},
		{"missing header falls back to the client address", `"header:X-User"`,
			func() *director.Request { return request("GET", "h", "/browse/a") },
			func() *director.Request { return request("GET", "h", "/browse/q") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirector(t, yaml(tt.key), &clock{now: t0})
			for range 10 {
				assert.Equal(t, decide(d, tt.a()).Backend.Name, decide(d, tt.b()).Backend.Name)
			}
		})
	}
	// And different keys spread over both servers.
	d := newDirector(t, testConfig, &clock{now: t0})
	seen := map[string]bool{}
	for i := range 50 {
		seen[decide(d, request("GET", "h", fmt.Sprintf("/browse/item-%d", i))).Backend.Name] = true
	}
	assert.Len(t, seen, 2)
}

// TestActiveHealthReadiness runs real app servers and the director's own
// active checker: readiness follows the servers' health endpoints.
func TestActiveHealthReadiness(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	yaml := fmt.Sprintf(`
listeners: [{addr: ":8080"}]
routes: [{name: auth, pool: auth}]
pools:
  - name: auth
    servers: [{name: a1, addr: %q}]
    health:
      active: {path: /healthz, interval: 100ms, timeout: 100ms, rise: 2, fall: 2}
`, srv.Listener.Addr().String())
	d := newDirector(t, yaml, &clock{now: t0})
	require.NoError(t, d.Start(context.Background()))
	assert.Error(t, d.Start(context.Background()))

	ready := func() bool { ok, _ := d.AllPoolsAvailable(); return ok }
	require.True(t, ready())
	healthy.Store(false)
	require.Eventually(t, func() bool { return !ready() }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, 503, decide(d, request("GET", "h", "/")).Status)
	assert.False(t, d.Pools()[0].FailingOpen(time.Now()), "refusing is the default")
	healthy.Store(true)
	require.Eventually(t, ready, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, 0, decide(d, request("GET", "h", "/")).Status)
}

// TestTakeOverKeepsHealthChecks: the next generation receives the running
// checker's transitions for unchanged servers, keeps the state the previous
// one saw, and starts probing a server that is new.
func TestTakeOverKeepsHealthChecks(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := dead.Listener.Addr().String()
	dead.Close()
	text := `
listeners: [{addr: ":8080"}]
routes: [{name: auth, pool: auth}]
pools:
  - name: auth
    servers: [{name: a1, addr: %q}%s]
    health:
      active: {path: /healthz, interval: 20ms, timeout: 15ms, rise: 1, fall: 1}
`
	clk := &clock{now: t0}
	d1 := newDirector(t, fmt.Sprintf(text, srv.Listener.Addr().String(), ""), clk)
	require.NoError(t, d1.Start(t.Context()))
	healthy.Store(false)
	require.Eventually(t, func() bool { return len(d1.EmptyRoutes()) == 1 }, 30*time.Second, 5*time.Millisecond)

	d2 := newDirector(t, fmt.Sprintf(text, srv.Listener.Addr().String(), fmt.Sprintf(", {name: a2, addr: %q}", deadAddr)), clk,
		director.WithPrevious(d1))
	d2.TakeOver(d1)
	a1, a2 := d2.Pools()[0].ByName("a1"), d2.Pools()[0].ByName("a2")
	assert.False(t, a1.Up(), "a1's down state carried over")
	require.Eventually(t, func() bool { return !a2.Up() }, 30*time.Second, 5*time.Millisecond, "new server a2 is probed")
	healthy.Store(true)
	require.Eventually(t, a1.Up, 30*time.Second, 5*time.Millisecond, "transitions reach the new generation")
	assert.Empty(t, d2.EmptyRoutes())
	assert.NoError(t, d1.Close(), "the old generation has nothing left to stop")
}
