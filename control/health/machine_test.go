package health

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMachine(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // '+' success, '-' failure
		want       string // state after each result: 'U' up, 'D' down
		changes    int
	}{
		{"first success is up", 2, 2, "+", "U", 1},
		{"first failure is down", 2, 2, "-", "D", 1},
		{"fall after two", 2, 2, "+--", "UUD", 2},
		{"rise after two", 2, 2, "-++", "DDU", 2},
		{"flapping never changes", 2, 2, "+-+-+-+-", "UUUUUUUU", 1},
		{"flapping while down", 2, 2, "-+-+-+", "DDDDDD", 1},
		{"streak resets", 3, 3, "+--+--+---", "UUUUUUUUUD", 2},
		{"rise 1 fall 1 follows", 1, 1, "+-+-", "UDUD", 4},
		{"zero counts behave as one", 0, 0, "+-", "UD", 2},
		{"slow rise", 5, 1, "-++++-+++++", "DDDDDDDDDDU", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Machine{Rise: tt.rise, Fall: tt.fall}
			assert.False(t, m.Known())
			var got []byte
			changes := 0
			for _, r := range tt.results {
				if m.Observe(r == '+') {
					changes++
				}
				if m.Up() {
					got = append(got, 'U')
				} else {
					got = append(got, 'D')
				}
			}
			assert.Equal(t, tt.want, string(got))
			assert.Equal(t, tt.changes, changes)
			assert.True(t, m.Known())
		})
	}
}
