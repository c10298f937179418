package logbuf

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	log := slog.New(slog.NewTextHandler(&b, nil))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { log.Info("pool failing open", "pool", "checkout") })
	}
	wg.Wait()
	log.Info("pool failing open ended")
	assert.Equal(t, 4, b.Count("pool failing open"), "whole messages only")
	assert.Equal(t, 1, b.Count("pool failing open ended"))
	assert.Contains(t, b.String(), "pool=checkout")
}
