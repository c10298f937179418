package failopen

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name             string
		policy           Policy
		passing, failing int
		want             bool
	}{
		{"off never opens", Policy{}, 0, 4, false},
		{"off with a threshold never opens", Policy{Below: 50}, 0, 4, false},
		{"unset: none passes", Policy{On: true}, 0, 4, true},
		{"unset: one passes", Policy{On: true}, 1, 3, false},
		{"nothing counted", Policy{On: true, Below: 50}, 0, 0, false},
		{"all pass", Policy{On: true, Below: 100}, 4, 0, false},
		{"50%: 1 of 4 passes", Policy{On: true, Below: 50}, 1, 3, true},
		{"50%: 2 of 4 pass is not below", Policy{On: true, Below: 50}, 2, 2, false},
		{"50%: 2 of 5 pass", Policy{On: true, Below: 50}, 2, 3, true},
		{"50%: 3 of 5 pass", Policy{On: true, Below: 50}, 3, 2, false},
		{"1%: 1 of 200 passes", Policy{On: true, Below: 1}, 1, 199, true},
		{"1%: 2 of 200 pass", Policy{On: true, Below: 1}, 2, 198, false},
		{"100%: one failing", Policy{On: true, Below: 100}, 9, 1, true},
		{"threshold: none passes", Policy{On: true, Below: 10}, 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.policy.Open(tt.passing, tt.failing))
		})
	}
}

func TestString(t *testing.T) {
	assert.Equal(t, "off", Policy{Below: 30}.String())
	assert.Equal(t, "when none passes", Policy{On: true}.String())
	assert.Equal(t, "below 30% passing", Policy{On: true, Below: 30}.String())
}
