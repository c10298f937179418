package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
)

func TestBudgetFloorAndShare(t *testing.T) {
	// Floor: 2/s over 10 s = 20 retries; share: 20 % of requests.
	b := pool.NewBudget(config.RetryBudget{Percent: 20, MinPerSecond: 2, Window: 10 * time.Second})

	allowed := func(now time.Time, n int) int {
		k := 0
		for range n {
			if b.AllowRetry(now) {
				k++
			}
		}
		return k
	}
	// No requests at all: the floor still allows a few retries.
	assert.Equal(t, 20, allowed(t0, 50))
	assert.Equal(t, uint64(30), b.Exhausted())

	// 1000 requests in the window lift the cap to 200.
	for range 1000 {
		b.Request(t0.Add(time.Second))
	}
	assert.Equal(t, 180, allowed(t0.Add(time.Second), 500), "200 minus the 20 already spent")

	// Once the window has slid past all of it, the floor applies again.
	later := t0.Add(12 * time.Second)
	assert.Equal(t, 20, allowed(later, 50))
	assert.Equal(t, uint64(220), b.Retries())
}
