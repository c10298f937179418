package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// maxBodyBytes bounds a request body; the largest legitimate one is a VIPSpec
// with a few hundred backends.
const maxBodyBytes = 1 << 20

// Paths of the v1 API. A VIP is addressed as three path segments
// {addr}/{port}/{proto} (port * or 0 = any), because its text form contains
// a slash and IPv6 brackets that would need escaping.
const (
	pathVIPs    = "/v1/vips"
	pathVIP     = "/v1/vips/{addr}/{port}/{proto}"
	pathBackend = pathVIP + "/backends/{backend}"
	pathStatus  = "/v1/status"
	pathStats   = "/v1/stats"
	pathFlow    = "/v1/flow"
	pathReload  = "/v1/reload"
	pathBGP     = "/v1/bgp"
)

// errorBody is the JSON body of every non-2xx answer.
type errorBody struct {
	Error string `json:"error"`
}

// weightBody is the body of PUT .../weight.
type weightBody struct {
	Weight uint32 `json:"weight"`
}

// handler serves a Service over HTTP/JSON.
type handler struct {
	svc Service
	log *slog.Logger
}

// NewHandler returns the HTTP handler of the v1 API backed by svc. Mutating
// requests are logged at info level (they are operator-visible transitions);
// failures at warn.
func NewHandler(svc Service, log *slog.Logger) http.Handler {
	h := &handler{svc: svc, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathVIPs, h.listVIPs)
	mux.HandleFunc("POST "+pathVIPs, h.addVIP)
	mux.HandleFunc("GET "+pathVIP, h.getVIP)
	mux.HandleFunc("DELETE "+pathVIP, h.deleteVIP)
	mux.HandleFunc("GET "+pathVIP+"/backends", h.listBackends)
	mux.HandleFunc("POST "+pathVIP+"/backends", h.addBackend)
	mux.HandleFunc("DELETE "+pathBackend, h.deleteBackend)
	mux.HandleFunc("POST "+pathBackend+"/drain", h.drain(true))
	mux.HandleFunc("POST "+pathBackend+"/undrain", h.drain(false))
	mux.HandleFunc("PUT "+pathBackend+"/weight", h.setWeight)
	mux.HandleFunc("GET "+pathStatus, h.status)
	mux.HandleFunc("GET "+pathStats, h.stats)
	mux.HandleFunc("POST "+pathFlow, h.flow)
	mux.HandleFunc("POST "+pathReload, h.reload)
	mux.HandleFunc("GET "+pathBGP, h.bgp)
	// Anything else under / is an unknown path: answer in the API's error
	// shape rather than the mux's plain-text 404.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Most often a command for the proxy pointed at this socket.
		h.writeError(w, r, Errorf(ErrNotFound, "no such API path %s %s: this socket is the xlb daemon's API "+
			"(/v1/vips, /v1/status, /v1/stats, /v1/flow, /v1/reload, /v1/bgp); an xlb proxy's admin socket (its admin.socket) "+
			"is named with --proxy", r.Method, r.URL.Path))
	})
	return withForceFromQuery(mux)
}

func (h *handler) listVIPs(w http.ResponseWriter, r *http.Request) {
	vips, err := h.svc.ListVIPs(r.Context())
	if vips == nil {
		vips = []VIP{} // JSON [] rather than null
	}
	h.reply(w, r, http.StatusOK, vips, err)
}

func (h *handler) addVIP(w http.ResponseWriter, r *http.Request) {
	var spec VIPSpec
	if err := decodeBody(r, &spec); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := spec.Validate(); err != nil {
		h.writeError(w, r, invalid(fmt.Errorf("add vip: %w", err)))
		return
	}
	err := h.svc.AddVIP(r.Context(), spec)
	h.mutated(w, r, http.StatusCreated, err, "vip added", "vip", spec.Key)
}

func (h *handler) getVIP(w http.ResponseWriter, r *http.Request) {
	key, err := vipFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	vip, err := h.svc.GetVIP(r.Context(), key)
	h.reply(w, r, http.StatusOK, vip, err)
}

func (h *handler) deleteVIP(w http.ResponseWriter, r *http.Request) {
	key, err := vipFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	err = h.svc.DeleteVIP(r.Context(), key)
	h.mutated(w, r, http.StatusNoContent, err, "vip deleted", "vip", key)
}

func (h *handler) listBackends(w http.ResponseWriter, r *http.Request) {
	key, err := vipFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	vip, err := h.svc.GetVIP(r.Context(), key)
	if vip.Backends == nil {
		vip.Backends = []Backend{}
	}
	h.reply(w, r, http.StatusOK, vip.Backends, err)
}

func (h *handler) addBackend(w http.ResponseWriter, r *http.Request) {
	key, err := vipFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var spec BackendSpec
	if err := decodeBody(r, &spec); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := spec.Validate(); err != nil {
		h.writeError(w, r, invalid(fmt.Errorf("add backend: %w", err)))
		return
	}
	err = h.svc.AddBackend(r.Context(), key, spec)
	h.mutated(w, r, http.StatusCreated, err, "backend added", "vip", key, "backend", spec.Addr, "weight", spec.Weight, "drain", spec.Drain)
}

func (h *handler) deleteBackend(w http.ResponseWriter, r *http.Request) {
	key, be, err := backendFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	err = h.svc.DeleteBackend(r.Context(), key, be)
	h.mutated(w, r, http.StatusNoContent, err, "backend deleted", "vip", key, "backend", be)
}

func (h *handler) drain(drain bool) http.HandlerFunc {
	msg := "backend undrained"
	if drain {
		msg = "backend drained"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		key, be, err := backendFromPath(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		err = h.svc.SetBackendState(r.Context(), key, be, drain)
		h.mutated(w, r, http.StatusNoContent, err, msg, "vip", key, "backend", be)
	}
}

func (h *handler) setWeight(w http.ResponseWriter, r *http.Request) {
	key, be, err := backendFromPath(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var body weightBody
	if err := decodeBody(r, &body); err != nil {
		h.writeError(w, r, err)
		return
	}
	err = h.svc.SetBackendWeight(r.Context(), key, be, body.Weight)
	h.mutated(w, r, http.StatusNoContent, err, "backend weight set", "vip", key, "backend", be, "weight", body.Weight)
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.Status(r.Context())
	h.reply(w, r, http.StatusOK, st, err)
}

// bgp is the BGP part of the status on its own: `xlb bgp peers`.
func (h *handler) bgp(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.Status(r.Context())
	if err == nil && st.BGP == nil {
		err = Errorf(ErrNotFound, "bgp is not configured on this daemon (no bgp section in its config)")
	}
	h.reply(w, r, http.StatusOK, st.BGP, err)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	st, err := h.svc.Stats(r.Context())
	h.reply(w, r, http.StatusOK, st, err)
}

func (h *handler) flow(w http.ResponseWriter, r *http.Request) {
	var q FlowQuery
	if err := decodeBody(r, &q); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := q.VIP.Validate(); err != nil {
		h.writeError(w, r, invalid(fmt.Errorf("flow: %w", err)))
		return
	}
	if !q.Src.Addr().IsValid() {
		h.writeError(w, r, invalid(errors.New("flow: source address is missing")))
		return
	}
	if q.Src.Addr().Is4() != q.VIP.Addr.Is4() {
		h.writeError(w, r, invalid(fmt.Errorf("flow: source %s and vip %s are of different address families", q.Src, q.VIP)))
		return
	}
	ans, err := h.svc.Flow(r.Context(), q)
	h.reply(w, r, http.StatusOK, ans, err)
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	err := h.svc.Reload(r.Context())
	h.mutated(w, r, http.StatusNoContent, err, "config reloaded")
}

// vipFromPath parses the {addr}/{port}/{proto} segments.
func vipFromPath(r *http.Request) (VIPKey, error) {
	port := r.PathValue("port")
	if port == "0" {
		port = "*"
	}
	addr := r.PathValue("addr")
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	key, err := ParseVIPKey(addr + ":" + port + "/" + r.PathValue("proto"))
	if err != nil {
		return VIPKey{}, invalid(err)
	}
	return key, nil
}

func backendFromPath(r *http.Request) (VIPKey, netip.Addr, error) {
	key, err := vipFromPath(r)
	if err != nil {
		return VIPKey{}, netip.Addr{}, err
	}
	be, err := ParseBackendAddr(r.PathValue("backend"))
	if err != nil {
		return VIPKey{}, netip.Addr{}, invalid(err)
	}
	return key, be, nil
}

// vipPath is the client side of vipFromPath.
func vipPath(k VIPKey) string {
	port := "*"
	if k.Port != 0 {
		port = strconv.Itoa(int(k.Port))
	}
	return pathVIPs + "/" + k.Addr.String() + "/" + port + "/" + k.Proto
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	// Unknown fields are rejected so a typo in a hand-written curl request
	// (or a client newer than the daemon) fails loudly instead of being
	// silently ignored.
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(fmt.Errorf("decode request body: %w", err))
	}
	return nil
}

// mutated answers a mutating request and logs the change it made.
func (h *handler) mutated(w http.ResponseWriter, r *http.Request, code int, err error, msg string, attrs ...any) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.log.Info(msg, attrs...)
	w.WriteHeader(code)
}

func (h *handler) reply(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, code, v)
}

func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := adminsock.StatusOf(err)
	level := slog.LevelWarn
	if code < http.StatusInternalServerError {
		// A client mistake is not the daemon's problem; keep it out of warn.
		level = slog.LevelDebug
	}
	h.log.Log(r.Context(), level, "api request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	writeJSON(w, code, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The status line is out; an encode error can only be a broken
	// connection, which the client sees by itself.
	_ = json.NewEncoder(w).Encode(v)
}

// invalid tags a malformed request's error without changing its message,
// so the operator reads "invalid IP address", not "...: invalid request".
func invalid(err error) error { return adminsock.Tag(err, ErrInvalid) }
