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

// TestVersionFlag: `xlb --version` prints what `xlb version` does; it was
// an unknown flag.
func TestVersionFlag(t *testing.T) {
	want, err := runCLI(t, "version")
	require.NoError(t, err)
	code, stdout, stderr := runExit("--version")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, want, stdout)
	assert.Empty(t, stderr)
	assert.Regexp(t, `^xlb dev \(go[^,]+, [a-z0-9]+/[a-z0-9]+\)\n$`, stdout)
}
