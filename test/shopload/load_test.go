package shopload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLevelMovesLinearly(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var v level
	v.set(0.25, 0, t0)
	assert.InDelta(t, 0.25, v.at(t0.Add(time.Hour)), 1e-9)
	v.set(1, 10*time.Second, t0)
	tests := []struct {
		at   time.Duration
		want float64
	}{{0, 0.25}, {5 * time.Second, 0.625}, {10 * time.Second, 1}, {time.Minute, 1}}
	for _, tt := range tests {
		assert.InDelta(t, tt.want, v.at(t0.Add(tt.at)), 1e-9, "at %v", tt.at)
	}
	// A new target starts from where the ramp is.
	v.set(0.5, 2*time.Second, t0.Add(5*time.Second))
	assert.InDelta(t, 0.625, v.at(t0.Add(5*time.Second)), 1e-9)
	assert.InDelta(t, 0.5, v.at(t0.Add(7*time.Second)), 1e-9)
	v.set(3, 0, t0)
	assert.InDelta(t, 1, v.at(t0), 1e-9, "clamped to 1")
}

func TestLevelThinsArrivals(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{})
	// At a level of one in a million, 200 users/s for 1 s start none
	// (the chance of one is 2e-4); at level 1 they start many.
	low, err := Run(context.Background(), Config{Target: srv.URL, Rate: 200, Level: 1e-6, Duration: time.Second, Pages: 1, Seed: 4})
	require.NoError(t, err)
	assert.Zero(t, low.Users.Started)
	full, err := Run(context.Background(), Config{Target: srv.URL, Rate: 200, Level: 1, Duration: time.Second, Pages: 1, Seed: 4})
	require.NoError(t, err)
	assert.Positive(t, full.Users.Started)
}

func TestStartTotalsStop(t *testing.T) {
	shop := &fakeShop{status: map[string]int{"/checkout/cart": 503}}
	srv := newFakeShop(t, shop)
	l, err := Start(context.Background(), Config{Target: srv.URL, Rate: 100, Level: 0.5, Duration: 5 * time.Minute,
		Think: time.Millisecond, Pages: 1, Seed: 5})
	require.NoError(t, err)
	first := l.Totals()
	require.Eventually(t, func() bool { return l.Totals().Requests >= 50 }, 60*time.Second, 10*time.Millisecond)
	l.SetLevel(1, time.Second)
	mid := l.Totals()
	l.Stop()
	sum := l.Wait()
	last := l.Totals()

	assert.Equal(t, sum.Requests, last.Requests, "the summary and the totals agree")
	assert.Equal(t, sum.Errors, last.Errors)
	assert.Zero(t, sum.Users.Cut, "stopped arrivals let the running users finish")
	assert.Equal(t, sum.Users.Started, sum.Users.Finished)
	assert.Equal(t, sum.Users.Started, last.StickyUsers)
	assert.Equal(t, int(shop.requests.Load()), last.Requests)

	d := last.Sub(mid)
	assert.Equal(t, last.Requests-mid.Requests, d.Requests)
	assert.Equal(t, last.Errors[Cause5xx]-mid.Errors[Cause5xx], d.Errors[Cause5xx])
	assert.Equal(t, last.ErrorCount()-mid.ErrorCount(), d.ErrorCount())
	assert.Len(t, d.Failures, d.ErrorCount(), "each failure is listed")
	assert.Zero(t, first.Requests)
	require.NotEmpty(t, last.Failures)
	f := last.Failures[0]
	assert.Equal(t, RouteCart, f.Route)
	assert.Equal(t, Cause5xx, f.Cause)
	assert.NotEmpty(t, f.App, "a 5xx names who answered")
	assert.False(t, f.Start.After(f.End))
	assert.False(t, f.Broken)
	var apps int
	for _, n := range last.Apps {
		apps += n
	}
	assert.Equal(t, last.Requests, apps)
}

func TestMovedFromNamesTheFirstServer(t *testing.T) {
	srv := newFakeShop(t, &fakeShop{ignoreCookie: true})
	l, err := Start(context.Background(), Config{Target: srv.URL, Concurrency: 1, Users: 10, Pages: 1, Seed: 2})
	require.NoError(t, err)
	sum := l.Wait()
	tot := l.Totals()
	assert.Equal(t, 10, tot.StickyMoved)
	n := 0
	for _, v := range tot.MovedFrom {
		n += v
	}
	assert.Equal(t, 10, n)
	assert.Equal(t, tot.MovedFrom, sum.Sticky.MovedFrom)
}
