package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// ErrDaemonUnreachable is wrapped by every client error that means nothing
// answered on the socket (no such file, connection refused).
var ErrDaemonUnreachable = errors.New("daemon unreachable")

// ErrPermission is wrapped by client errors caused by the socket's (or its
// directory's) permissions.
var ErrPermission = errors.New("permission denied")

// StatusError is a non-2xx answer from the daemon. Its message is the
// daemon's own; Unwrap yields the sentinel for the status code (ErrNotFound
// for 404, ...) so callers test it with errors.Is.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Unwrap maps the status code back to the sentinel the daemon used.
func (e *StatusError) Unwrap() error {
	switch e.Code {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusConflict:
		return ErrConflict
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// Client talks to the daemon over its unix socket. It implements Service.
// It is safe for concurrent use; Close releases idle connections.
type Client struct {
	path string
	hc   *http.Client
}

var _ Service = (*Client)(nil)

// NewClient returns a client for the daemon listening on socketPath. timeout
// bounds each call (0 = no bound beyond the context's).
func NewClient(socketPath string, timeout time.Duration) *Client {
	c := &Client{path: socketPath}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, c.dialError(err)
			}
			return conn, nil
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	c.hc = &http.Client{Transport: tr, Timeout: timeout}
	return c
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// dialError turns a failed connect into an error that says what to do.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		hint := "run the command with sudo or join the socket's group"
		switch g := adminsock.Group(c.path); g {
		case "":
		case "root", "0":
			// Joining root's group is not advice to give anyone.
			hint = "run the command with sudo, or set api.group in the daemon's config to an operators' group and join that"
		default:
			hint += fmt.Sprintf(" (sudo usermod -aG %s $USER, then log in again)", g)
		}
		return kindError{err: fmt.Errorf("cannot connect to xlb daemon at %s: %s (%w)", c.path, hint, err), kind: ErrPermission}
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTDIR):
		return kindError{err: fmt.Errorf("cannot reach xlb daemon at %s: is `xlb daemon` running? (%w)", c.path, err), kind: ErrDaemonUnreachable}
	}
	return fmt.Errorf("cannot reach xlb daemon at %s: %w", c.path, err)
}

// do sends one request and decodes a JSON answer into out (nil = none).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	if Forced(ctx) {
		path += "?" + forceParam + "=true"
	}
	// The host is ignored by the unix dialer but must be a valid name.
	req, err := http.NewRequestWithContext(ctx, method, "http://xlb"+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Unwrap *url.Error so the operator reads our dial message, not
		// `Get "http://xlb/v1/vips": ...`.
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && (errors.Is(err, ErrDaemonUnreachable) || errors.Is(err, ErrPermission)) {
			return ue.Unwrap()
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("daemon answered %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return &StatusError{Code: resp.StatusCode, Message: eb.Error}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

func backendPath(k VIPKey, b netip.Addr) string {
	return vipPath(k) + "/backends/" + b.String()
}

// ListVIPs implements Service.
func (c *Client) ListVIPs(ctx context.Context) ([]VIP, error) {
	var v []VIP
	return v, c.do(ctx, http.MethodGet, pathVIPs, nil, &v)
}

// GetVIP implements Service.
func (c *Client) GetVIP(ctx context.Context, key VIPKey) (VIP, error) {
	var v VIP
	return v, c.do(ctx, http.MethodGet, vipPath(key), nil, &v)
}

// AddVIP implements Service.
func (c *Client) AddVIP(ctx context.Context, spec VIPSpec) error {
	return c.do(ctx, http.MethodPost, pathVIPs, spec, nil)
}

// DeleteVIP implements Service.
func (c *Client) DeleteVIP(ctx context.Context, key VIPKey) error {
	return c.do(ctx, http.MethodDelete, vipPath(key), nil, nil)
}

// AddBackend implements Service.
func (c *Client) AddBackend(ctx context.Context, vip VIPKey, spec BackendSpec) error {
	return c.do(ctx, http.MethodPost, vipPath(vip)+"/backends", spec, nil)
}

// DeleteBackend implements Service.
func (c *Client) DeleteBackend(ctx context.Context, vip VIPKey, backend netip.Addr) error {
	return c.do(ctx, http.MethodDelete, backendPath(vip, backend), nil, nil)
}

// SetBackendState implements Service.
func (c *Client) SetBackendState(ctx context.Context, vip VIPKey, backend netip.Addr, drain bool) error {
	action := "/undrain"
	if drain {
		action = "/drain"
	}
	return c.do(ctx, http.MethodPost, backendPath(vip, backend)+action, nil, nil)
}

// SetBackendWeight implements Service.
func (c *Client) SetBackendWeight(ctx context.Context, vip VIPKey, backend netip.Addr, weight uint32) error {
	return c.do(ctx, http.MethodPut, backendPath(vip, backend)+"/weight", weightBody{Weight: weight}, nil)
}

// Status implements Service.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, pathStatus, nil, &s)
}

// BGP is the daemon's BGP speaker (GET /v1/bgp); ErrNotFound when BGP is
// not configured.
func (c *Client) BGP(ctx context.Context) (BGPStatus, error) {
	var s BGPStatus
	return s, c.do(ctx, http.MethodGet, pathBGP, nil, &s)
}

// Stats implements Service.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, http.MethodGet, pathStats, nil, &s)
}

// Flow implements Service.
func (c *Client) Flow(ctx context.Context, q FlowQuery) (FlowAnswer, error) {
	var a FlowAnswer
	return a, c.do(ctx, http.MethodPost, pathFlow, q, &a)
}

// Reload implements Service.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, pathReload, nil, nil)
}
