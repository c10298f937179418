package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDaemonFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad log format", []string{"daemon", "--log-format", "yaml"}, `invalid --log-format "yaml": one of text, json`},
		{"bad log level", []string{"daemon", "--log-level", "loud"}, `invalid --log-level "loud"`},
		{"missing config", []string{"daemon", "--config", "/nonexistent/xlb.yaml"}, "load config: read config: "},
		{"cleanup with missing config", []string{"daemon", "--cleanup", "--config", "/nonexistent/xlb.yaml"}, "read config: "},
		{"arguments", []string{"daemon", "extra"}, `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestDaemonCleanup removes the pin directory the config names (here a
// plain directory standing in for one on bpffs) and nothing else.
func TestDaemonCleanup(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(dir, "pins")
	require.NoError(t, os.Mkdir(pins, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(pins, "xlb_ingress"), nil, 0o600))
	cfg := filepath.Join(dir, "xlb.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("interfaces:\n  - name: eth0\nbpf:\n  pin_path: %s\n", pins)), 0o600))
	out, err := runCLI(t, "daemon", "--cleanup", "--config", cfg, "--log-format", "json")
	require.NoError(t, err)
	assert.Contains(t, out, "removed "+pins)
	_, err = os.Stat(pins)
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(cfg)
	assert.NoError(t, err)
}
