package director_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/director"
)

func TestRedispatchTriesEachServerOnceAndRepins(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	r := request("POST", "shop.test", "/checkout/pay")
	var dec director.Decision
	d.Decide(r, &dec)
	require.Equal(t, 0, dec.Status)

	assert.False(t, d.Redispatch(r, &dec), "Done must end the failed try first")

	seen := map[string]bool{dec.Backend.Name: true}
	inflight := func() (n int64) {
		for _, b := range dec.Pool.Backends {
			n += b.InFlight()
		}
		return n
	}
	var lastName string
	var lastCookie []byte
	for range 2 {
		d.Done(&dec, director.Outcome{ConnectErr: true})
		require.True(t, d.Redispatch(r, &dec))
		assert.False(t, seen[dec.Backend.Name], "%s tried twice", dec.Backend.Name)
		seen[dec.Backend.Name] = true
		assert.Equal(t, director.StickyRepinned, dec.Sticky)
		require.NotNil(t, dec.SetCookie, "the client is re-pinned to the new server")
		assert.Equal(t, int64(1), inflight(), "one try in flight at a time")
		lastName, lastCookie = dec.Backend.Name, append(lastCookie[:0], dec.SetCookie...)
	}
	d.Done(&dec, director.Outcome{ConnectErr: true})
	assert.False(t, d.Redispatch(r, &dec), "every server of the pool has been tried")
	assert.Nil(t, dec.Backend)
	assert.Zero(t, inflight())
	assert.Equal(t, uint64(2), d.StickyStats(0).Repins.Load())

	// The re-pin cookie names the server it moved to: a later request
	// sticks to it.
	again := decide(d, withCookie(request("POST", "shop.test", "/checkout/pay"), "xlb_co", lastCookie))
	assert.Equal(t, lastName, again.Backend.Name)
	assert.Equal(t, director.StickyHit, again.Sticky)
}

func TestRedispatchSkipsUnavailable(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	r := request("GET", "shop.test", "/auth/x") // one server only
	var dec director.Decision
	d.Decide(r, &dec)
	require.Equal(t, "a1", dec.Backend.Name)
	d.Done(&dec, director.Outcome{ConnectErr: true})
	assert.False(t, d.Redispatch(r, &dec), "a pool of one has nowhere else to go")
}

func TestRedispatchOnHashPool(t *testing.T) {
	clk := &clock{now: t0}
	d := newDirector(t, testConfig, clk)
	r := request("GET", "shop.test", "/browse/shoes") // hash on path, b1 and b2
	first := decide(d, r).Backend.Name

	var dec director.Decision
	d.Decide(r, &dec)
	require.Equal(t, first, dec.Backend.Name)
	d.Done(&dec, director.Outcome{ConnectErr: true})
	require.True(t, d.Redispatch(r, &dec))
	assert.NotEqual(t, first, dec.Backend.Name, "the retry goes to the other server")
	d.Done(&dec, director.Outcome{Status: 200})

	// The pool's own hashing is untouched: the path still maps to its
	// server.
	for range 5 {
		assert.Equal(t, first, decide(d, request("GET", "shop.test", "/browse/shoes")).Backend.Name)
	}
}
