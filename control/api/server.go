package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Socket file modes: the socket is read-write for its owner and group only,
// and its directory is not world-traversable, so membership of the group is
// what grants control of the load balancer.
const (
	SocketMode    os.FileMode = 0o660
	SocketDirMode os.FileMode = 0o750
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Path of the socket; "" = DefaultSocketPath.
	Path string
	// Group owning the socket (name or numeric gid); "" leaves the
	// creating process's group.
	Group string
	// Log receives API change events; nil discards them.
	Log *slog.Logger
}

// Server serves a Service on a unix socket.
type Server struct {
	path  string
	ln    net.Listener
	srv   *http.Server
	inode os.FileInfo // the socket file we created, to not remove a successor's
	log   *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// NewServer creates the socket (mode 0660, parent directory created 0750 if
// missing) and returns a server ready to Serve. A stale socket left by a dead
// daemon is replaced; a socket a live daemon answers on is an error.
func NewServer(svc Service, opts ServerOptions) (*Server, error) {
	if opts.Path == "" {
		opts.Path = DefaultSocketPath
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	gid := -1
	if opts.Group != "" {
		g, err := lookupGroup(opts.Group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	ln, err := listenUnix(opts.Path, gid)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(opts.Path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("stat api socket %s: %w", opts.Path, err)
	}
	s := &Server{
		path:  opts.Path,
		ln:    ln,
		inode: fi,
		log:   opts.Log,
		srv: &http.Server{
			Handler:           NewHandler(svc, opts.Log),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
		},
	}
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until ctx is cancelled (then it shuts down
// gracefully, letting in-flight requests finish for up to 5 s) or Close is
// called. It returns nil after a shutdown.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	})
	defer stop()
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve api on %s: %w", s.path, err)
}

// Close stops serving and removes the socket file, unless another daemon has
// already replaced it with its own.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.srv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		_ = s.ln.Close() // already closed by srv.Close when Serve ran
		if fi, statErr := os.Stat(s.path); statErr == nil && os.SameFile(fi, s.inode) {
			if rmErr := os.Remove(s.path); rmErr != nil && err == nil {
				err = fmt.Errorf("remove api socket: %w", rmErr)
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// listenUnix creates the socket without ever exposing it with looser
// permissions than SocketMode: it binds in a private 0700 directory next to
// the target, sets mode and group there, then renames it into place. That
// also replaces a stale socket atomically. (Setting the umask instead would
// race with every other goroutine creating files.)
func listenUnix(path string, gid int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, SocketDirMode); err != nil {
		return nil, fmt.Errorf("create api socket directory: %w", err)
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".xlb-sock-")
	if err != nil {
		return nil, fmt.Errorf("create api socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", tmpSock)
	if err != nil {
		return nil, fmt.Errorf("listen on api socket: %w", err)
	}
	// We remove the file ourselves in Close, at its final path.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmpSock, SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod api socket: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(tmpSock, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown api socket to gid %d: %w", gid, err)
		}
	}
	if err := os.Rename(tmpSock, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("move api socket into place: %w", err)
	}
	return ln, nil
}

// checkStale refuses to take over a path that is not a socket, or a socket
// that a live daemon answers on.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check api socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("api socket path %s exists and is not a socket: refusing to replace it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return Errorf(ErrConflict, "api socket %s: another xlb daemon is already listening on it", path)
	}
	return nil // stale: replaced by the rename
}

func lookupGroup(name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("look up api socket group %q: %w", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("look up api socket group %q: gid %q is not a number", name, g.Gid)
	}
	return gid, nil
}
