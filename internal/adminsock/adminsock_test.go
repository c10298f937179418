package adminsock

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "xlb")
	path := filepath.Join(dir, "proxy.sock")
	s, err := Listen(path, "", "admin socket")
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, SocketMode, fi.Mode().Perm())
	assert.NotZero(t, fi.Mode()&os.ModeSocket)
	di, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, SocketDirMode, di.Mode().Perm())
	assert.NotEmpty(t, Group(path))

	// A live socket is not taken over.
	go func() {
		if c, err := s.Accept(); err == nil {
			c.Close()
		}
	}()
	_, err = Listen(path, "", "admin socket")
	assert.ErrorIs(t, err, ErrInUse)

	// A stale one is.
	require.NoError(t, s.Close())
	s2, err := Listen(path, "", "admin socket")
	require.NoError(t, err)
	// The first owner's Remove leaves its successor's file alone.
	require.NoError(t, s.Remove())
	assert.FileExists(t, path)
	require.NoError(t, s2.Close())
	require.NoError(t, s2.Remove())
	assert.NoFileExists(t, path)
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := Listen(path, "", "admin socket")
	assert.ErrorContains(t, err, "admin socket path "+path+" exists and is not a socket")
	_, err = net.Dial("unix", path)
	assert.Error(t, err)
}
