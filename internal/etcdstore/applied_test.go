package etcdstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAppliedWait(t *testing.T) {
	a := NewApplied()
	ctx := context.Background()
	assert.True(t, a.Wait(ctx, 0, time.Millisecond), "revision 0 is always applied")
	assert.False(t, a.Wait(ctx, 5, 10*time.Millisecond), "nothing applied: the timeout ends the wait")

	done := make(chan bool)
	go func() { done <- a.Wait(ctx, 5, time.Minute) }()
	a.Set(3) // not yet
	a.Set(7)
	assert.True(t, <-done)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.False(t, a.Wait(cctx, 8, time.Minute), "a cancelled context ends the wait")
}
