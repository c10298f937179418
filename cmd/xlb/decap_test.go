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
		{"no such interface", []string{"decap", "--iface", "xlb-nosuch0"}, `list addresses of "xlb-nosuch0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
