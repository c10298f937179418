// Package adminsock creates the unix sockets that xlb's daemon and proxy
// serve their admin APIs on. File permissions are the access control: the
// socket is 0660 in a directory that is 0750, so membership of the owning
// group is what grants control. Client is the CLI's side of the same
// sockets: JSON over HTTP, and errors that say what to do when the socket
// does not answer.
package adminsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Socket file modes.
const (
	SocketMode    os.FileMode = 0o660
	SocketDirMode os.FileMode = 0o750
)

// ErrInUse is wrapped by Listen's error when a live process already answers
// on the socket.
var ErrInUse = errors.New("socket in use")

// Socket is a listening admin socket.
type Socket struct {
	net.Listener
	path  string
	inode os.FileInfo // the file we created, to not remove a successor's
}

// Listen creates the socket at path (mode 0660, parent directory created
// 0750 if missing), owned by group (name or numeric gid; "" keeps the
// process's group). A stale socket left by a dead process is replaced; one
// a live process answers on is an error wrapping ErrInUse. what names the
// socket in errors ("api socket", "admin socket").
func Listen(path, group, what string) (*Socket, error) {
	gid := -1
	if group != "" {
		g, err := lookupGroup(group, what)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	ln, err := listenUnix(path, gid, what)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("stat %s %s: %w", what, path, err)
	}
	return &Socket{Listener: ln, path: path, inode: fi}, nil
}

// Path is the socket's path.
func (s *Socket) Path() string { return s.path }

// Remove deletes the socket file unless another process has replaced it
// with its own since Listen. Close the listener separately.
func (s *Socket) Remove() error {
	if fi, err := os.Stat(s.path); err == nil && os.SameFile(fi, s.inode) {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("remove socket %s: %w", s.path, err)
		}
	}
	return nil
}

// listenUnix creates the socket without ever exposing it with looser
// permissions than SocketMode: it binds in a private 0700 directory next to
// the target, sets mode and group there, then renames it into place. That
// also replaces a stale socket atomically. (Setting the umask instead would
// race with every other goroutine creating files.)
func listenUnix(path string, gid int, what string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, SocketDirMode); err != nil {
		return nil, fmt.Errorf("create %s directory: %w", what, err)
	}
	if err := checkStale(path, what); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".xlb-sock-")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", tmpSock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", what, err)
	}
	// The owner removes the file itself, at its final path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmpSock, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", what, err)
	}
	if gid >= 0 {
		if err := os.Chown(tmpSock, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown %s to gid %d: %w", what, gid, err)
		}
	}
	if err := os.Rename(tmpSock, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("move %s into place: %w", what, err)
	}
	return ln, nil
}

// checkStale refuses to take over a path that is not a socket, or a socket
// that a live process answers on.
func checkStale(path, what string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s %s: %w", what, path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s path %s exists and is not a socket: refusing to replace it", what, path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s %s: %w", what, path, ErrInUse)
	}
	return nil // stale: replaced by the rename
}

func lookupGroup(name, what string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("look up %s group %q: %w", what, name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("look up %s group %q: gid %q is not a number", what, name, g.Gid)
	}
	return gid, nil
}

// Group names the group owning the socket at path, or its directory when
// the socket itself cannot be stat'ed, or "" when neither can: the group a
// user must join to use it, for error messages.
func Group(path string) string {
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		gid := strconv.FormatUint(uint64(st.Gid), 10)
		if g, err := user.LookupGroupId(gid); err == nil {
			return g.Name
		}
		return gid
	}
	return ""
}
