package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSocketModes(t *testing.T) {
	_, path := startServer(t, &recorder{})
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|SocketMode, fi.Mode())
	di, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	assert.Equal(t, os.ModeDir|SocketDirMode, di.Mode())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary directory left behind")
}

func TestSocketGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	path := filepath.Join(t.TempDir(), "xlb.sock")
	srv, err := NewServer(&recorder{}, ServerOptions{Path: path, Group: "65534"})
	require.NoError(t, err)
	defer srv.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, uint32(65534), fi.Sys().(*syscall.Stat_t).Gid)
}

func TestDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close()) // the file stays, nobody listens: ECONNREFUSED

	tests := []struct{ name, path string }{
		{name: "no socket file", path: filepath.Join(dir, "missing.sock")},
		{name: "no directory", path: filepath.Join(dir, "nodir", "xlb.sock")},
		{name: "stale socket file", path: stale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(tt.path, time.Second)
			defer c.Close()
			_, err := c.ListVIPs(context.Background())
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrDaemonUnreachable)
			assert.True(t, strings.HasPrefix(err.Error(),
				"cannot reach xlb daemon at "+tt.path+": is `xlb daemon` running? start it with `systemctl start xlb-daemon` (or `xlb daemon --config FILE`), or name its socket with --socket ("), err.Error())
		})
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())

	c, _ := startServerAt(t, path)
	_, err = c.Status(context.Background())
	assert.NoError(t, err)
}

func TestLiveSocketNotStolen(t *testing.T) {
	c, path := startServer(t, &recorder{})
	_, err := NewServer(&recorder{}, ServerOptions{Path: path})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConflict)
	assert.ErrorContains(t, err, "another xlb daemon is already listening")
	_, err = c.Status(context.Background())
	assert.NoError(t, err, "the first daemon keeps serving")
}

func TestNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.sock")
	require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
	_, err := NewServer(&recorder{}, ServerOptions{Path: path})
	assert.ErrorContains(t, err, "is not a socket: refusing to replace it")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "precious", string(b))
}

func TestCloseKeepsSuccessorSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xlb.sock")
	old, err := NewServer(&recorder{}, ServerOptions{Path: path})
	require.NoError(t, err)
	// A successor replaces the socket (as after a crash of the old one
	// that left it unanswered); closing the old server must not remove it.
	require.NoError(t, os.Remove(path))
	c, _ := startServerAt(t, path)
	require.NoError(t, old.Close())
	_, err = c.Status(context.Background())
	assert.NoError(t, err)
}

func startServerAt(t *testing.T, path string) (*Client, *Server) {
	return serveAt(t, &recorder{}, path)
}

// helperSocketEnv makes the test binary act as a plain client: it calls
// Status on that socket and prints the error. TestPermissionDenied runs it
// as another user.
const helperSocketEnv = "XLB_API_TEST_CLIENT_SOCKET"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperSocketEnv); path != "" {
		c := NewClient(path, 5*time.Second)
		_, err := c.Status(context.Background())
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		// Without root we cannot become another user; an owner without
		// permission on the socket gets the same EACCES.
		_, path := startServer(t, &recorder{})
		require.NoError(t, os.Chmod(path, 0))
		c := NewClient(path, time.Second)
		defer c.Close()
		_, err := c.Status(context.Background())
		assert.ErrorIs(t, err, ErrPermission)
		assert.ErrorContains(t, err, "run the command with sudo or join the socket's group")
		return
	}
	// As root, run a client as uid/gid 65534 (nobody) against the real
	// 0750 directory / 0660 socket layout. The directory and the test
	// binary must be reachable by that user.
	base, err := os.MkdirTemp("", "xlb-api-perm-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	bin := filepath.Join(base, "api.test")
	copyFile(t, os.Args[0], bin, 0o755)
	path := filepath.Join(base, "run", "xlb.sock")
	startServerAt(t, path)

	tests := []struct {
		name  string
		setup func(t *testing.T)
		want  string
	}{
		{
			name: "directory not traversable",
			want: "cannot connect to xlb daemon at " + path + ": run the command with sudo, or set api.group in the daemon's config to an operators' group and join that",
		},
		{
			name: "socket not writable",
			setup: func(t *testing.T) {
				require.NoError(t, os.Chmod(filepath.Dir(path), 0o755))
				t.Cleanup(func() { os.Chmod(filepath.Dir(path), SocketDirMode) })
			},
			want: "cannot connect to xlb daemon at " + path + ": run the command with sudo, or set api.group in the daemon's config to an operators' group and join that",
		},
		{
			name: "socket owned by an operators' group",
			setup: func(t *testing.T) {
				require.NoError(t, os.Chmod(filepath.Dir(path), 0o755))
				require.NoError(t, os.Chown(path, -1, 1))
				t.Cleanup(func() {
					os.Chmod(filepath.Dir(path), SocketDirMode)
					os.Chown(path, -1, 0)
				})
			},
			want: "cannot connect to xlb daemon at " + path + ": run the command with sudo or join the socket's group (sudo usermod -aG " + groupName(1) + " $USER, then log in again)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			cmd := exec.Command(bin)
			cmd.Env = []string{helperSocketEnv + "=" + path}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, string(out))
			assert.True(t, strings.HasPrefix(string(out), tt.want), string(out))
			assert.Contains(t, string(out), "permission denied)")
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// groupName is the name of gid as the client will print it.
func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
