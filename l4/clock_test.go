package l4

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJiffies(t *testing.T) {
	tests := []struct {
		d    time.Duration
		hz   uint64
		want uint64
	}{
		{30 * time.Second, 250, 7500},
		{30 * time.Second, 1000, 30000},
		{time.Nanosecond, 250, 0},
		{3999 * time.Microsecond, 250, 0},
		{4 * time.Millisecond, 250, 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, jiffies(tt.d, tt.hz), "%v at HZ=%d", tt.d, tt.hz)
	}
}

func TestKernelHZ(t *testing.T) {
	requireRoot(t)
	hz, err := kernelHZ()
	require.NoError(t, err)
	assert.Contains(t, []uint64{100, 250, 300, 1000}, hz)
}
