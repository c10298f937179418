package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	require.NoError(t, Write(path, []byte("one"), Options{}))
	var seen []byte
	require.NoError(t, Write(path, []byte("two"), Options{BeforeRename: func(tmp string) {
		var err error
		seen, err = os.ReadFile(path)
		require.NoError(t, err)
		assert.FileExists(t, tmp)
	}}))
	assert.Equal(t, "one", string(seen), "the old content stays until the rename")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	left, err := filepath.Glob(TempPattern(path))
	require.NoError(t, err)
	assert.Empty(t, left)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestWriteFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, os.Mkdir(path, 0o700)) // a directory is in the way
	err := Write(path, []byte("x"), Options{})
	require.Error(t, err)
	left, _ := filepath.Glob(TempPattern(path))
	assert.Empty(t, left)
}
