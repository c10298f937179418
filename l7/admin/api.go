package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// The admin API, JSON over HTTP on the admin unix socket. Paths are
// versioned; a change that breaks clients gets /v2.
//
//	GET    /v1/pools                               list pools
//	GET    /v1/pools/{pool}                        one pool
//	POST   /v1/pools/{pool}/servers                add servers {"servers":[{"name","addr","weight"}]}
//	GET    /v1/pools/{pool}/servers/{server}       one server (?quiet=5s for drain emptiness)
//	POST   /v1/pools/{pool}/servers/{server}/drain    {"force": bool}
//	POST   /v1/pools/{pool}/servers/{server}/undrain
//	PUT    /v1/pools/{pool}/servers/{server}/weight   {"weight": N}
//	DELETE /v1/pools/{pool}/servers/{server}       (?force=true)
//	POST   /v1/reload                              re-read the config file

// DefaultQuiet is how long no pinned client must have come back before a
// draining server of a sticky pool counts as empty.
const DefaultQuiet = 5 * time.Second

// maxBodyBytes bounds a request body: 24 servers are a few kilobytes.
const maxBodyBytes = 1 << 20

type errorBody struct {
	Error string `json:"error"`
}

// AddRequest is the body of POST /v1/pools/{pool}/servers.
type AddRequest struct {
	Servers []NewServer `json:"servers"`
}

// DrainRequest is the body of POST .../drain.
type DrainRequest struct {
	Force bool `json:"force"`
}

// WeightRequest is the body of PUT .../weight.
type WeightRequest struct {
	Weight int `json:"weight"`
}

// Handler serves the admin API of m.
func Handler(m *Manager, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{m: m, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pools", func(w http.ResponseWriter, r *http.Request) {
		q, err := quiet(r)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, m.Pools(q))
	})
	mux.HandleFunc("GET /v1/pools/{pool}", func(w http.ResponseWriter, r *http.Request) {
		q, err := quiet(r)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.reply(w)(m.Pool(r.PathValue("pool"), q))
	})
	mux.HandleFunc("POST /v1/pools/{pool}/servers", func(w http.ResponseWriter, r *http.Request) {
		var req AddRequest
		if !h.decode(w, r, &req) {
			return
		}
		pool := r.PathValue("pool")
		if err := m.AddServers(pool, req.Servers); err != nil {
			h.fail(w, err)
			return
		}
		h.reply(w)(m.Pool(pool, DefaultQuiet))
	})
	mux.HandleFunc("GET /v1/pools/{pool}/servers/{server}", func(w http.ResponseWriter, r *http.Request) {
		q, err := quiet(r)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.reply(w)(m.Server(r.PathValue("pool"), r.PathValue("server"), q))
	})
	drain := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req DrainRequest
			if on && !h.decode(w, r, &req) {
				return
			}
			pool, server := r.PathValue("pool"), r.PathValue("server")
			if err := m.SetDrain(pool, server, on, req.Force); err != nil {
				h.fail(w, err)
				return
			}
			h.reply(w)(m.Server(pool, server, DefaultQuiet))
		}
	}
	mux.HandleFunc("POST /v1/pools/{pool}/servers/{server}/drain", drain(true))
	mux.HandleFunc("POST /v1/pools/{pool}/servers/{server}/undrain", drain(false))
	mux.HandleFunc("PUT /v1/pools/{pool}/servers/{server}/weight", func(w http.ResponseWriter, r *http.Request) {
		var req WeightRequest
		if !h.decode(w, r, &req) {
			return
		}
		pool, server := r.PathValue("pool"), r.PathValue("server")
		if err := m.SetWeight(pool, server, req.Weight); err != nil {
			h.fail(w, err)
			return
		}
		h.reply(w)(m.Server(pool, server, DefaultQuiet))
	})
	mux.HandleFunc("DELETE /v1/pools/{pool}/servers/{server}", func(w http.ResponseWriter, r *http.Request) {
		force := r.URL.Query().Get("force") == "true"
		pool := r.PathValue("pool")
		if err := m.DeleteServer(pool, r.PathValue("server"), force); err != nil {
			h.fail(w, err)
			return
		}
		h.reply(w)(m.Pool(pool, DefaultQuiet))
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, _ *http.Request) {
		h.reply(w)(m.Reload())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Most often a command for the daemon pointed at this socket.
		h.fail(w, errorf(ErrNotFound, "no such API path %s %s: this socket is an xlb proxy's admin API (/v1/pools, /v1/reload); "+
			"the xlb daemon's API socket (its api.socket) is named with --socket", r.Method, r.URL.Path))
	})
	return mux
}

type handler struct {
	m   *Manager
	log *slog.Logger
}

func quiet(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("quiet")
	if s == "" {
		return DefaultQuiet, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errorf(ErrInvalid, "quiet %q is not a duration such as 5s", s)
	}
	return d, nil
}

func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, errorf(ErrInvalid, "request body: %v", err))
		return false
	}
	return true
}

// reply returns a function writing a (value, error) result.
func (h *handler) reply(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, v)
	}
}

func (h *handler) ok(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Debug("write admin answer", "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	code := adminsock.StatusOf(err)
	if code == http.StatusInternalServerError {
		h.log.Error("admin request failed", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}

// SocketServer serves the admin API on its unix socket.
type SocketServer struct {
	sock *adminsock.Socket
	srv  *http.Server
	log  *slog.Logger
}

// Listen creates the admin socket at path (0660 in a 0750 directory,
// owned by group when set). It fails when another proxy answers on it.
// It needs no Manager: a proxy opens its socket first of all, so that a
// second one started beside it stops before it does anything.
func Listen(path, group string, log *slog.Logger) (*SocketServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sock, err := adminsock.Listen(path, group, "admin socket")
	if errors.Is(err, adminsock.ErrInUse) {
		return nil, errorf(ErrConflict, "admin socket %s: another xlb proxy is already listening on it (set admin.socket to run a second one)", path)
	}
	if err != nil {
		return nil, err
	}
	return &SocketServer{sock: sock, log: log, srv: &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Path is the socket's path.
func (s *SocketServer) Path() string { return s.sock.Path() }

// Serve answers for m until ctx is done, then shuts down (in-flight calls
// get 5 s). Connections made before Serve wait in the socket's backlog.
func (s *SocketServer) Serve(ctx context.Context, m *Manager) error {
	s.srv.Handler = Handler(m, s.log)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	})
	defer stop()
	if err := s.srv.Serve(s.sock); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin socket %s: %w", s.sock.Path(), err)
	}
	return nil
}

// Close stops serving and removes the socket file.
func (s *SocketServer) Close() error {
	err := s.srv.Close()
	_ = s.sock.Close()
	if rerr := s.sock.Remove(); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
