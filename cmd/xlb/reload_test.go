package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

func TestReloadCommand(t *testing.T) {
	st := api.Status{Time: clock, Version: "v0.1.0"}
	stJSON, err := json.MarshalIndent(st, "", "  ")
	require.NoError(t, err)
	runCLICases(t, func() *fakeDaemon { return &fakeDaemon{status: st} }, []cliCase{
		{name: "ok", args: []string{"reload"}, wantCalls: []call{{Method: "Reload"}}, wantOut: "config reloaded\n"},
		{name: "json prints the new status", args: []string{"reload", "-o", "json"},
			wantCalls: []call{{Method: "Reload"}, {Method: "Status"}}, wantOut: string(stJSON) + "\n"},
	})

	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{
			name:    "bad config",
			err:     api.Errorf(api.ErrInvalid, "/etc/xlb/xlb.yaml:12: unknown field \"wieght\""),
			wantErr: "config rejected, running state unchanged: /etc/xlb/xlb.yaml:12: unknown field \"wieght\"",
		},
		{
			// Only an invalid config is "rejected"; an internal failure is
			// reported as what it is.
			name:    "internal",
			err:     errors.New("persist state: no space left on device"),
			wantErr: "persist state: no space left on device",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := startDaemon(t, &fakeDaemon{err: tt.err})
			stdout, _, err := runXLB(t, path, "reload")
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
			assert.Empty(t, stdout)
		})
	}
}
