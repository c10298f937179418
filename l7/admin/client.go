package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/internal/adminsock"
)

// ErrUnreachable is wrapped by client errors that mean nothing answered on
// the socket; ErrPermission by those the socket's permissions caused.
var (
	ErrUnreachable = errors.New("proxy unreachable")
	ErrPermission  = errors.New("permission denied")
)

// StatusError is an error answer from the proxy; errors.Is matches the
// sentinel of its status code.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Unwrap maps the status code back to the sentinel.
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

// Client calls a proxy's admin API over its unix socket. It is safe for
// concurrent use.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the proxy listening on socketPath;
// timeout bounds each call (0: only the context's).
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
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		hint := "run the command with sudo or join the socket's group"
		if g := adminsock.Group(c.path); g != "" && g != "root" && g != "0" {
			hint += fmt.Sprintf(" (sudo usermod -aG %s $USER, then log in again)", g)
		}
		return kindError{err: fmt.Errorf("cannot connect to xlb proxy at %s: %s (%w)", c.path, hint, err), kind: ErrPermission}
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTDIR):
		return kindError{err: fmt.Errorf("cannot reach xlb proxy at %s: is `xlb proxy` running, and is this its admin.socket? (pass it with --proxy) (%w)", c.path, err), kind: ErrUnreachable}
	}
	return fmt.Errorf("cannot reach xlb proxy at %s: %w", c.path, err)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://xlb-proxy"+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && (errors.Is(err, ErrUnreachable) || errors.Is(err, ErrPermission)) {
			return ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb errorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("proxy answered %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return &StatusError{Code: resp.StatusCode, Message: eb.Error}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
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
