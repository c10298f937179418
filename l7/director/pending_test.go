package director_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/sticky"
)

// withC9 is testConfig with a fourth checkout server, c9.
var withC9 = strings.Replace(testConfig,
	`      - {name: c3, addr: "127.0.0.1:9103"}`,
	"      - {name: c3, addr: \"127.0.0.1:9103\"}\n      - {name: c9, addr: \"127.0.0.1:9109\"}", 1)

// pinnedTo asks d for new clients until one is pinned to server and
// returns that client's cookie.
func pinnedTo(t *testing.T, d *director.Director, server string) []byte {
	t.Helper()
	for range 200 {
		dec := decide(d, request("GET", "shop.test", "/checkout"))
		if dec.Backend != nil && dec.Backend.Name == server {
			require.NotNil(t, dec.SetCookie)
			return append([]byte(nil), dec.SetCookie...)
		}
	}
	t.Fatalf("no client pinned to %s in 200 tries", server)
	return nil
}

// A server added on one L7 host and not yet on another: the other serves
// the client on a stand-in and keeps its cookie, and the client is back on
// its server once that host has it too.
func TestStickyServerNotYetHere(t *testing.T) {
	clk := &clock{now: t0}
	a := newDirector(t, withC9, clk)     // has c9 already
	b := newDirector(t, testConfig, clk) // gets it next
	cookie := pinnedTo(t, a, "c9")
	stats := b.StickyStats(0)

	var stand string
	for i := range 10 {
		dec := decide(b, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
		require.Equal(t, 0, dec.Status)
		assert.Equal(t, director.StickyPending, dec.Sticky)
		assert.Nil(t, dec.SetCookie, "the cookie naming c9 is kept")
		if i == 0 {
			stand = dec.Backend.Name
		}
		assert.Equal(t, stand, dec.Backend.Name, "one stand-in for every request of the client")
	}
	assert.Equal(t, uint64(10), stats.Pending.Load())
	assert.Zero(t, stats.Issued.Load()+stats.Repins.Load()+stats.Rejected[sticky.ReasonUnknownServer].Load())

	clk.Advance(30 * time.Second)
	b = newDirector(t, withC9, clk, director.WithPrevious(b)) // c9 reaches b
	dec := decide(b, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
	assert.Equal(t, "c9", dec.Backend.Name, "back on its server")
	assert.Equal(t, director.StickyHit, dec.Sticky)
	assert.Nil(t, dec.SetCookie)
}

func TestStickyUnknownServerRepinned(t *testing.T) {
	clk := &clock{now: t0}
	a := newDirector(t, withC9, clk)
	off := strings.Replace(testConfig, "drain_timeout: 10m}", "drain_timeout: 10m, propagation_grace: 0s}", 1)
	require.NotEqual(t, testConfig, off)

	repinned := func(t *testing.T, d *director.Director, cookie []byte) {
		t.Helper()
		before := d.StickyStats(0).Rejected[sticky.ReasonUnknownServer].Load()
		dec := decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
		require.Equal(t, 0, dec.Status)
		assert.Equal(t, director.StickyIssued, dec.Sticky)
		require.NotNil(t, dec.SetCookie, "a cookie naming a server it still has replaces it")
		assert.NotEqual(t, "c9", dec.Backend.Name)
		assert.Equal(t, before+1, d.StickyStats(0).Rejected[sticky.ReasonUnknownServer].Load())
		assert.Zero(t, d.StickyStats(0).Pending.Load())
	}

	t.Run("after the grace", func(t *testing.T) {
		cookie := pinnedTo(t, a, "c9")
		b := newDirector(t, testConfig, clk)
		clk.Advance(time.Minute)
		repinned(t, b, cookie)
	})
	t.Run("grace off", func(t *testing.T) {
		repinned(t, newDirector(t, off, clk), pinnedTo(t, a, "c9"))
	})
	t.Run("deleted on this host", func(t *testing.T) {
		cookie := pinnedTo(t, a, "c9")
		d := newDirector(t, testConfig, clk, director.WithPrevious(a))
		repinned(t, d, cookie)
		// Still gone two reloads later, and back when it is added again.
		d = newDirector(t, testConfig, clk, director.WithPrevious(d))
		clk.Advance(30 * time.Minute)
		d = newDirector(t, testConfig, clk, director.WithPrevious(d))
		repinned(t, d, pinnedTo(t, a, "c9"))
		d = newDirector(t, withC9, clk, director.WithPrevious(d))
		cookie = pinnedTo(t, a, "c9")
		dec := decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", cookie))
		assert.Equal(t, "c9", dec.Backend.Name)
		assert.Equal(t, director.StickyHit, dec.Sticky)
	})
	t.Run("deleted here longer ago than the max age", func(t *testing.T) {
		d := newDirector(t, testConfig, clk, director.WithPrevious(a))
		clk.Advance(time.Hour)
		d = newDirector(t, testConfig, clk, director.WithPrevious(d))
		// Forgotten: a fresh cookie naming it (some host still has it) is
		// taken for one on its way.
		dec := decide(d, withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", pinnedTo(t, a, "c9")))
		assert.Equal(t, director.StickyPending, dec.Sticky)
	})
}

// A stand-in that fails is redispatched without re-pinning: the cookie
// names another server, not the one that failed.
func TestRedispatchOfStandInKeepsCookie(t *testing.T) {
	clk := &clock{now: t0}
	a := newDirector(t, withC9, clk)
	b := newDirector(t, testConfig, clk)
	r := withCookie(request("POST", "shop.test", "/checkout/pay"), "xlb_co", pinnedTo(t, a, "c9"))
	var dec director.Decision
	b.Decide(r, &dec)
	require.Equal(t, director.StickyPending, dec.Sticky)
	first := dec.Backend.Name
	b.Done(&dec, director.Outcome{ConnectErr: true})
	require.True(t, b.Redispatch(r, &dec))
	assert.NotEqual(t, first, dec.Backend.Name)
	assert.Equal(t, director.StickyPending, dec.Sticky)
	assert.Nil(t, dec.SetCookie)
	assert.Zero(t, b.StickyStats(0).Repins.Load())
	b.Done(&dec, director.Outcome{Status: 200})
}

// The stand-in path allocates nothing either: during a rollout it serves
// every client of the servers still being added.
func TestStandInNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomises sync.Pool, so allocation counts are meaningless")
	}
	clk := &clock{now: t0}
	a := newDirector(t, withC9, clk)
	b := newDirector(t, testConfig, clk, director.WithPrevious(newDirector(t, testConfig, clk)))
	r := withCookie(request("GET", "shop.test", "/checkout"), "xlb_co", pinnedTo(t, a, "c9"))
	var dec director.Decision
	allocs := testing.AllocsPerRun(1000, func() {
		b.Decide(r, &dec)
		if dec.Sticky != director.StickyPending {
			t.Fatalf("not served by a stand-in: %v", dec.Sticky)
		}
		b.Done(&dec, director.Outcome{Status: 200})
	})
	assert.Zero(t, allocs)
}
