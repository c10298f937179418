package adminsock

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
)

// ErrUnreachable is wrapped by every client error that means nothing
// answered on the socket (no such file, connection refused); ErrPermission
// by those the socket's (or its directory's) permissions caused.
var (
	ErrUnreachable = errors.New("unreachable")
	ErrPermission  = errors.New("permission denied")
)

// The sentinels of xlb's admin APIs. A server tags an error with one (the
// message stays its own), StatusOf maps it to the HTTP status it answers
// with, and the client's StatusError unwraps back to it, so callers on both
// sides of the socket test errors with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrInvalid     = errors.New("invalid request")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("unavailable")
)

// StatusOf is the HTTP status a server answers err with: the code of its
// sentinel, 500 for an error that carries none.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// Peer names the program a Client talks to, for the errors an operator
// reads when it cannot.
type Peer struct {
	// Name is the program as operators know it: "xlb daemon".
	Name string
	// NotRunning is what to check when nothing answers:
	// "is `xlb daemon` running?".
	NotRunning string
	// RootGroup is the advice when the socket belongs to root's group,
	// where "join the group" is no advice to give; empty means "run the
	// command with sudo".
	RootGroup string
}

// StatusError is a non-2xx answer. Message is the server's own text (the
// "error" field of its JSON body), or the status and body when it sent
// none.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Unwrap maps the status code back to the sentinel the server used.
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

// Client calls a JSON API served on a unix socket (the one Listen makes).
// It is safe for concurrent use.
type Client struct {
	path string
	peer Peer
	hc   *http.Client
}

// NewClient returns a client for the server listening on socketPath;
// timeout bounds each call (0: only the context's).
func NewClient(socketPath string, timeout time.Duration, peer Peer) *Client {
	c := &Client{path: socketPath, peer: peer}
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

// Path is the socket the client dials.
func (c *Client) Path() string { return c.path }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Tag returns err tagged with the sentinel kind: errors.Is matches both,
// and the message is err's alone. The operator reads "vip 10.0.0.1:80/tcp:
// backend 10.0.1.1 already exists", not "...: conflict: ...".
func Tag(err, kind error) error { return kinded{err: err, kind: kind} }

// Errorf is Tag(fmt.Errorf(format, a...), kind); %w wraps as in fmt.Errorf.
func Errorf(kind error, format string, a ...any) error {
	return Tag(fmt.Errorf(format, a...), kind)
}

type kinded struct{ err, kind error }

func (e kinded) Error() string   { return e.err.Error() }
func (e kinded) Unwrap() []error { return []error{e.err, e.kind} }

// dialError turns a failed connect into an error that says what to do.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		hint := "run the command with sudo or join the socket's group"
		switch g := Group(c.path); g {
		case "":
		case "root", "0":
			hint = "run the command with sudo"
			if c.peer.RootGroup != "" {
				hint = c.peer.RootGroup
			}
		default:
			hint += fmt.Sprintf(" (sudo usermod -aG %s $USER, then log in again)", g)
		}
		return Errorf(ErrPermission, "cannot connect to %s at %s: %s (%w)", c.peer.Name, c.path, hint, err)
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTDIR):
		return Errorf(ErrUnreachable, "cannot reach %s at %s: %s (%w)", c.peer.Name, c.path, c.peer.NotRunning, err)
	}
	return fmt.Errorf("cannot reach %s at %s: %w", c.peer.Name, c.path, err)
}

// Do sends one request (in as its JSON body, nil for none) to path (with
// its query) and decodes a JSON answer into out (nil: the answer is
// discarded). A non-2xx answer is a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
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
		// The operator reads the dial message, not `Get "http://xlb/v1/…": …`.
		var ue *url.Error
		if errors.As(err, &ue) && (errors.Is(err, ErrUnreachable) || errors.Is(err, ErrPermission)) {
			return ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s answered %s: %s", c.peer.Name, resp.Status, bytes.TrimSpace(b))
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
