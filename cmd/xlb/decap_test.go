package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDecapValidation(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no iface", []string{"decap"}, "--iface is required"},
		{"cleanup without pin path", []string{"decap", "--cleanup"}, "--cleanup needs --pin-path"},
		{"bad mode", []string{"decap", "--iface", "lo", "--mode", "turbo"}, "invalid --mode"},
		{"bad addr", []string{"decap", "--iface", "lo", "--addr", "10.0.0.300"}, `invalid --addr "10.0.0.300"`},
		{"no such interface", []string{"decap", "--iface", "xlb-nosuch0"}, "no such interface \"xlb-nosuch0\" in this network namespace (see `ip link`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	// Said once, in words: not the interface twice nor Go's "route ip+net".
	code, _, stderr := runExit("decap", "--iface", "xlb-nosuch0")
	assert.Equal(t, 1, code)
	assert.Equal(t, "xlb: no such interface \"xlb-nosuch0\" in this network namespace (see `ip link`)\n", stderr)
}
