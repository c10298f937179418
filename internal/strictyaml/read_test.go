package strictyaml

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "x.yaml")
	require.NoError(t, os.WriteFile(good, []byte("a: 1\n"), 0o600))
	data, err := ReadFile(good)
	require.NoError(t, err)
	assert.Equal(t, "a: 1\n", string(data))

	missing := filepath.Join(dir, "none.yaml")
	_, err = ReadFile(missing)
	assert.EqualError(t, err, "config file "+missing+" does not exist")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	_, err = ReadFile(dir)
	assert.EqualError(t, err, dir+" is a directory, not a config file")
}
