package api

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// ErrDaemonUnreachable is wrapped by every client error that means nothing
// answered on the socket (no such file, connection refused).
var ErrDaemonUnreachable = adminsock.ErrUnreachable

// ErrPermission is wrapped by client errors caused by the socket's (or its
// directory's) permissions.
var ErrPermission = adminsock.ErrPermission

// StatusError is a non-2xx answer from the daemon. Its message is the
// daemon's own; it unwraps to the sentinel of its status code (ErrNotFound
// for 404, ...) so callers test it with errors.Is.
type StatusError = adminsock.StatusError

// daemonPeer is how errors name the daemon when its socket does not answer.
var daemonPeer = adminsock.Peer{
	Name:       "xlb daemon",
	NotRunning: "is `xlb daemon` running? start it with `systemctl start xlb-daemon` (or `xlb daemon --config FILE`), or name its socket with --socket",
	// Joining root's group is not advice to give anyone.
	RootGroup: "run the command with sudo, or set api.group in the daemon's config to an operators' group and join that",
}

// Client talks to the daemon over its unix socket. It implements Service.
// It is safe for concurrent use; Close releases idle connections.
type Client struct {
	sc *adminsock.Client
}

var _ Service = (*Client)(nil)

// NewClient returns a client for the daemon listening on socketPath. timeout
// bounds each call (0 = no bound beyond the context's).
func NewClient(socketPath string, timeout time.Duration) *Client {
	return &Client{sc: adminsock.NewClient(socketPath, timeout, daemonPeer)}
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.sc.Close()
	return nil
}

// do sends one request and decodes a JSON answer into out (nil = none).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if Forced(ctx) {
		path += "?" + forceParam + "=true"
	}
	return c.sc.Do(ctx, method, path, in, out)
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
