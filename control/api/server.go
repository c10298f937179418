package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// Socket file modes: the socket is read-write for its owner and group only,
// and its directory is not world-traversable, so membership of the group is
// what grants control of the load balancer.
const (
	SocketMode    = adminsock.SocketMode
	SocketDirMode = adminsock.SocketDirMode
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
	path string
	ln   *adminsock.Socket
	srv  *http.Server
	log  *slog.Logger

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
	ln, err := adminsock.Listen(opts.Path, opts.Group, "api socket")
	if errors.Is(err, adminsock.ErrInUse) {
		return nil, Errorf(ErrConflict, "api socket %s: another xlb daemon is already listening on it", opts.Path)
	}
	if err != nil {
		return nil, err
	}
	s := &Server{
		path: opts.Path,
		ln:   ln,
		log:  opts.Log,
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
		if rmErr := s.ln.Remove(); rmErr != nil && err == nil {
			err = fmt.Errorf("remove api socket: %w", rmErr)
		}
		s.closeErr = err
	})
	return s.closeErr
}
