package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// ErrUnreachable is wrapped by client errors that mean nothing answered on
// the socket; ErrPermission by those the socket's permissions caused.
var (
	ErrUnreachable = adminsock.ErrUnreachable
	ErrPermission  = adminsock.ErrPermission
)

// StatusError is an error answer from the proxy; errors.Is matches the
// sentinel of its status code.
type StatusError = adminsock.StatusError

// proxyPeer is how errors name the proxy when its socket does not answer.
var proxyPeer = adminsock.Peer{
	Name:       "xlb proxy",
	NotRunning: "is `xlb proxy` running, and is this its admin.socket? start it with `systemctl start xlb-proxy` (or `xlb proxy --config FILE`), or name its admin.socket with --proxy",
}

// Client calls a proxy's admin API over its unix socket. It is safe for
// concurrent use.
type Client struct {
	sc *adminsock.Client
}

// NewClient returns a client for the proxy listening on socketPath;
// timeout bounds each call (0: only the context's).
func NewClient(socketPath string, timeout time.Duration) *Client {
	return &Client{sc: adminsock.NewClient(socketPath, timeout, proxyPeer)}
}

// Close releases idle connections.
func (c *Client) Close() { c.sc.Close() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.sc.Do(ctx, method, path, in, out)
}

func serverPath(pool, server string) string {
	return "/v1/pools/" + url.PathEscape(pool) + "/servers/" + url.PathEscape(server)
}

// Pools lists the pools.
func (c *Client) Pools(ctx context.Context) ([]Pool, error) {
	var out []Pool
	return out, c.do(ctx, http.MethodGet, "/v1/pools", nil, &out)
}

// Pool shows one pool.
func (c *Client) Pool(ctx context.Context, pool string) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodGet, "/v1/pools/"+url.PathEscape(pool), nil, &out)
}

// AddServers adds servers to a pool (all or none) and returns the pool.
func (c *Client) AddServers(ctx context.Context, pool string, servers []NewServer) (Pool, error) {
	var out Pool
	return out, c.do(ctx, http.MethodPost, "/v1/pools/"+url.PathEscape(pool)+"/servers", AddRequest{Servers: servers}, &out)
}

// Server shows one server; quiet is the sticky quiet period for Empty.
func (c *Client) Server(ctx context.Context, pool, server string, quiet time.Duration) (Server, error) {
	var out Server
	return out, c.do(ctx, http.MethodGet, serverPath(pool, server)+"?quiet="+quiet.String(), nil, &out)
}

// Drain drains a server.
func (c *Client) Drain(ctx context.Context, pool, server string, force bool) (Server, error) {
	var out Server
	return out, c.do(ctx, http.MethodPost, serverPath(pool, server)+"/drain", DrainRequest{Force: force}, &out)
}

// Undrain lets a drained server take new clients again.
func (c *Client) Undrain(ctx context.Context, pool, server string) (Server, error) {
	var out Server
	return out, c.do(ctx, http.MethodPost, serverPath(pool, server)+"/undrain", nil, &out)
}

// SetWeight changes a server's weight.
func (c *Client) SetWeight(ctx context.Context, pool, server string, weight int) (Server, error) {
	var out Server
	return out, c.do(ctx, http.MethodPut, serverPath(pool, server)+"/weight", WeightRequest{Weight: weight}, &out)
}

// DeleteServer removes a server and returns its pool.
func (c *Client) DeleteServer(ctx context.Context, pool, server string, force bool) (Pool, error) {
	var out Pool
	q := ""
	if force {
		q = "?force=true"
	}
	return out, c.do(ctx, http.MethodDelete, serverPath(pool, server)+q, nil, &out)
}

// Reload makes the proxy re-read its config file.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var out ReloadResult
	return out, c.do(ctx, http.MethodPost, "/v1/reload", nil, &out)
}

// WaitEmpty polls a draining server until it reports empty or ctx ends,
// calling progress (when set) with each answer.
func (c *Client) WaitEmpty(ctx context.Context, pool, server string, quiet, every time.Duration, progress func(Server)) (Server, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s, err := c.Server(ctx, pool, server, quiet)
		if err != nil {
			return s, err
		}
		if progress != nil {
			progress(s)
		}
		if s.State != "draining" {
			return s, errorf(ErrConflict, "server %s/%s is no longer draining (state %s)", pool, server, s.State)
		}
		if s.Empty {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("wait for %s/%s to be empty (%d in flight): %w", pool, server, s.InFlight, ctx.Err())
		case <-t.C:
		}
	}
}
