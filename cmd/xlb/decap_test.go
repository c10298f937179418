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
		{"no iface", []string{"decap"}, `required flag(s) "iface" not set`},
		{"bad mode", []string{"decap", "--iface", "lo", "--mode", "turbo"}, "invalid --mode"},
		{"bad addr", []string{"decap", "--iface", "lo", "--addr", "10.0.0.300"}, `invalid --addr "10.0.0.300"`},
		{"no such interface", []string{"decap", "--iface", "xlb-nosuch0"}, `find interface "xlb-nosuch0"`},
		{"no global address", []string{"decap", "--iface", "lo"}, `interface "lo" has no global address: pass --addr`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
