package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs the whole command tree with args; stdout and stderr together.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := execute(args, &out, &out)
	return out.String(), err
}

func TestVersion(t *testing.T) {
	out, err := runCLI(t, "version")
	require.NoError(t, err)
	assert.Contains(t, out, "xlb dev")

	out, err = runCLI(t, "version", "-o", "json")
	require.NoError(t, err)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.Equal(t, "dev", v.Version)

	_, err = runCLI(t, "version", "-o", "yaml")
	assert.ErrorContains(t, err, `unknown output format "yaml"`)
}
