package l4

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every slot of enum xlb_counter has a Go name, a kind and a label unique
// within its kind: a counter added in C without its Go entry fails here.
func TestCounterKinds(t *testing.T) {
	names := map[string]bool{}
	labels := map[CounterKind]map[string]bool{}
	verdicts := 0
	for _, c := range AllCounters() {
		name := c.String()
		require.NotEqual(t, fmt.Sprintf("counter%d", uint32(c)), name, "slot %d has no name in counterInfos", uint32(c))
		assert.False(t, names[name], "name %q twice", name)
		names[name] = true
		k := c.Kind()
		if labels[k] == nil {
			labels[k] = map[string]bool{}
		}
		assert.False(t, labels[k][c.Label()], "label %q twice in kind %s", c.Label(), k)
		labels[k][c.Label()] = true
		if k == KindVerdict {
			verdicts++
		}
	}
	assert.Equal(t, 5, verdicts, "one verdict counter per XDP action")

	tests := []struct {
		c     Counter
		kind  CounterKind
		label string
	}{
		{CounterNotVIP, KindReason, "not_vip"},
		{CounterTooBig, KindReason, "too_big"},
		{CounterConnHit, KindConn, "hit"},
		{CounterConnMissSYN, KindConn, "miss_syn"},
		{CounterConnHitOtherCPU, KindConn, "hit_other_cpu"},
		{CounterXDPAborted, KindVerdict, "aborted"},
		{CounterXDPTx, KindVerdict, "tx"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.kind, tt.c.Kind(), tt.c.String())
		assert.Equal(t, tt.label, tt.c.Label(), tt.c.String())
	}
	unknown := Counter(numCounters + 3)
	assert.Equal(t, KindReason, unknown.Kind())
	assert.Equal(t, unknown.String(), unknown.Label())
}

func TestCheckCPUs(t *testing.T) {
	tests := []struct {
		ncpu int
		ok   bool
	}{
		{1, true}, {2, true}, {maxCPUs, true},
		{maxCPUs + 1, false}, {4 * maxCPUs, false}, {0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.ncpu), func(t *testing.T) {
			err := checkCPUs(tt.ncpu)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			if tt.ncpu > maxCPUs {
				assert.ErrorIs(t, err, ErrUnsupportedHost)
				assert.ErrorContains(t, err, fmt.Sprintf("%d possible cpus", tt.ncpu))
				assert.ErrorContains(t, err, fmt.Sprintf("at most %d", maxCPUs))
			}
		})
	}
	assert.Equal(t, 128, maxCPUs, "XLB_MAX_CPUS, read from the generated object")
}
