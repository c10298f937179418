package decap

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every slot of enum decap_counter is read and named exactly once: a
// counter added in C without its Go field fails here.
func TestSlots(t *testing.T) {
	var s Stats
	seen := map[decapDecapCounter]bool{}
	names := map[string]bool{}
	for _, sl := range s.slots() {
		assert.False(t, seen[sl.key], "slot %d twice", sl.key)
		assert.False(t, names[sl.name], "name %q twice", sl.name)
		seen[sl.key], names[sl.name] = true, true
		assert.Less(t, sl.key, decapDecapCounterDECAP_COUNTER_MAX)
	}
	assert.Len(t, seen, int(decapDecapCounterDECAP_COUNTER_MAX))
	assert.Len(t, s.Reasons(), int(decapDecapCounterDECAP_COUNTER_MAX))
}
