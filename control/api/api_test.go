package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/adminsock"
)

var (
	k4   = VIPKey{netip.MustParseAddr("10.0.0.1"), 80, ProtoTCP}
	k6   = VIPKey{netip.MustParseAddr("2001:db8::1"), 443, ProtoTCP}
	kAny = VIPKey{netip.MustParseAddr("10.0.0.1"), 0, ProtoUDP}
	be1  = netip.MustParseAddr("10.0.1.1")
	be6  = netip.MustParseAddr("2001:db8::11")
	t0   = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

func sampleVIPs() []VIP {
	return []VIP{
		{Key: k4, Mode: ModeIPIP, TableSize: 65537, Backends: []Backend{
			{Addr: be1, Weight: 1, State: StateActive, Healthy: true, TableSlots: 65537, LastCheck: t0, LastTransition: t0.Add(-time.Hour)},
		}},
		{Key: k6, Mode: ModeL2DSR, TableSize: 251, Backends: []Backend{
			{Addr: be6, Weight: 3, Drain: true, State: StateDraining, Healthy: false, LastError: "connect: connection refused"},
		}},
	}
}

// startServer serves svc on a fresh socket in a temp dir and returns a
// client for it.
func startServer(t *testing.T, svc Service) (*Client, string) {
	return startServerB(t, svc)
}

func startServerB(t testing.TB, svc Service) (*Client, string) {
	path := filepath.Join(t.TempDir(), "run", "xlb.sock")
	c, _ := serveAt(t, svc, path)
	return c, path
}

// serveAt serves svc on path until the test ends and returns a client of it.
func serveAt(t testing.TB, svc Service, path string) (*Client, *Server) {
	t.Helper()
	srv, err := NewServer(svc, ServerOptions{Path: path, Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		assert.NoError(t, srv.Close())
	})
	c := NewClient(path, 10*time.Second)
	t.Cleanup(func() { c.Close() })
	return c, srv
}

// TestRoundTrip checks that every Service method travels through client,
// socket and handler unchanged in both directions.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{
		vips: sampleVIPs(),
		status: Status{Version: "v1.2.3", StartTime: t0, ConfigPath: "/etc/xlb/xlb.yaml",
			Interfaces: []Interface{{Name: "eth0", Mode: "native", Attached: true}},
			Adopted:    true, LastReconcile: t0, VIPs: sampleVIPs()},
		stats: Stats{Time: t0, VIPs: []VIPStats{{Key: k4, Counter: Counter{Packets: 10, Bytes: 1000}, NewFlows: 2,
			Backends: []BackendStats{{Addr: be1, Counter: Counter{Packets: 10, Bytes: 1000}}}}},
			Reasons: map[string]uint64{"no_backend": 3}, ConntrackHits: 8, ConntrackMisses: 2},
		flow: FlowAnswer{Backend: be1, Via: ViaMaglev, Slot: 1234, Hash: 0xdeadbeef},
	}
	c, _ := startServer(t, rec)
	spec := VIPSpec{Key: kAny, Mode: ModeIPIP, TableSize: 251, Backends: []BackendSpec{{Addr: be1, Weight: 2}}}
	q := FlowQuery{Src: netip.MustParseAddrPort("192.0.2.7:40000"), VIP: kAny, DstPort: 53}

	tests := []struct {
		name     string
		do       func() (any, error)
		want     any
		wantCall call
	}{
		{name: "list vips", do: func() (any, error) { return c.ListVIPs(ctx) }, want: sampleVIPs(), wantCall: call{Method: "ListVIPs"}},
		{name: "get vip v4", do: func() (any, error) { return c.GetVIP(ctx, k4) }, want: sampleVIPs()[0], wantCall: call{"GetVIP", []any{k4}}},
		{name: "get vip v6", do: func() (any, error) { return c.GetVIP(ctx, k6) }, want: sampleVIPs()[1], wantCall: call{"GetVIP", []any{k6}}},
		{name: "add vip", do: func() (any, error) { return nil, c.AddVIP(ctx, spec) }, wantCall: call{"AddVIP", []any{spec}}},
		{name: "delete any-port vip", do: func() (any, error) { return nil, c.DeleteVIP(ctx, kAny) }, wantCall: call{"DeleteVIP", []any{kAny}}},
		{name: "add backend", do: func() (any, error) { return nil, c.AddBackend(ctx, k6, BackendSpec{Addr: be6, Weight: 5, Drain: true}) },
			wantCall: call{"AddBackend", []any{k6, BackendSpec{Addr: be6, Weight: 5, Drain: true}}}},
		{name: "delete backend", do: func() (any, error) { return nil, c.DeleteBackend(ctx, k6, be6) }, wantCall: call{"DeleteBackend", []any{k6, be6}}},
		{name: "drain", do: func() (any, error) { return nil, c.SetBackendState(ctx, k4, be1, true) }, wantCall: call{"SetBackendState", []any{k4, be1, true}}},
		{name: "undrain", do: func() (any, error) { return nil, c.SetBackendState(ctx, k4, be1, false) }, wantCall: call{"SetBackendState", []any{k4, be1, false}}},
		{name: "weight", do: func() (any, error) { return nil, c.SetBackendWeight(ctx, k4, be1, 7) }, wantCall: call{"SetBackendWeight", []any{k4, be1, uint32(7)}}},
		{name: "status", do: func() (any, error) { return c.Status(ctx) }, want: rec.status, wantCall: call{Method: "Status"}},
		{name: "stats", do: func() (any, error) { return c.Stats(ctx) }, want: rec.stats, wantCall: call{Method: "Stats"}},
		{name: "flow", do: func() (any, error) { return c.Flow(ctx, q) }, want: rec.flow, wantCall: call{"Flow", []any{q}}},
		{name: "reload", do: func() (any, error) { return nil, c.Reload(ctx) }, wantCall: call{Method: "Reload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.Calls())
			got, err := tt.do()
			require.NoError(t, err)
			if tt.want != nil {
				assert.Equal(t, tt.want, got)
			}
			calls := rec.Calls()[before:]
			require.Len(t, calls, 1)
			assert.Equal(t, tt.wantCall, calls[0])
		})
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	_, path := startServer(t, &recorder{vips: []VIP{{Key: k4}}})
	for _, p := range []string{"/v1/vips", "/v1/vips/10.0.0.1/80/tcp/backends"} {
		code, body := rawRequest(t, path, http.MethodGet, p, "")
		assert.Equal(t, http.StatusOK, code, p)
		if p == "/v1/vips" {
			continue
		}
		assert.Equal(t, "[]\n", body, p)
	}
	_, path = startServer(t, &recorder{})
	_, body := rawRequest(t, path, http.MethodGet, "/v1/vips", "")
	assert.Equal(t, "[]\n", body)
}

// TestServiceErrors checks the sentinel → status → sentinel mapping and that
// the daemon's message reaches the caller unchanged.
func TestServiceErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantIs   error
	}{
		{name: "not found", err: Errorf(ErrNotFound, "vip 10.0.0.9:80/tcp not found"), wantCode: 404, wantIs: ErrNotFound},
		{name: "invalid", err: Errorf(ErrInvalid, "vip 10.0.0.1:80/tcp: table size 100 must be a prime"), wantCode: 400, wantIs: ErrInvalid},
		{name: "conflict", err: Errorf(ErrConflict, "vip 10.0.0.1:80/tcp: backend 10.0.1.1 already exists"), wantCode: 409, wantIs: ErrConflict},
		{name: "unavailable", err: Errorf(ErrUnavailable, "persist state: %w", errors.New("disk full")), wantCode: 503, wantIs: ErrUnavailable},
		{name: "sentinel wrapped the old way", err: fmt.Errorf("data path not attached yet: %w", ErrUnavailable), wantCode: 503, wantIs: ErrUnavailable},
		{name: "internal", err: errors.New("persist state: disk full"), wantCode: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := startServer(t, &recorder{err: tt.err})
			err := c.DeleteVIP(context.Background(), k4)
			require.Error(t, err)
			assert.Equal(t, tt.err.Error(), err.Error())
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.wantCode, se.Code)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func rawRequest(t *testing.T, socket, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://xlb"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestHandlerRejects checks requests the handler refuses before the
// service sees them.
func TestHandlerRejects(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{name: "invalid vip address in path", method: "GET", path: "/v1/vips/10.0.0.300/80/tcp", wantCode: 400, wantBody: `invalid IP address \"10.0.0.300\"`},
		{name: "invalid port in path", method: "DELETE", path: "/v1/vips/10.0.0.1/http/tcp", wantCode: 400, wantBody: `port \"http\" is not a number`},
		{name: "invalid proto in path", method: "GET", path: "/v1/vips/10.0.0.1/80/sctp", wantCode: 400, wantBody: `protocol \"sctp\": use tcp or udp`},
		{name: "invalid backend in path", method: "POST", path: "/v1/vips/10.0.0.1/80/tcp/backends/10.0.1/drain", wantCode: 400, wantBody: `invalid IP address \"10.0.1\"`},
		{name: "invalid backend in body", method: "POST", path: "/v1/vips/10.0.0.1/80/tcp/backends", body: `{"addr":"10.0.1.x"}`, wantCode: 400, wantBody: "decode request body"},
		{name: "missing backend in body", method: "POST", path: "/v1/vips/10.0.0.1/80/tcp/backends", body: `{"weight":2}`, wantCode: 400, wantBody: "add backend: backend address: address is missing"},
		{name: "unknown field", method: "POST", path: "/v1/vips", body: `{"key":"10.0.0.1:80/tcp","size":7}`, wantCode: 400, wantBody: `unknown field \"size\"`},
		{name: "bad vip spec", method: "POST", path: "/v1/vips", body: `{"key":"10.0.0.1:80/tcp","mode":"gre"}`, wantCode: 400, wantBody: `forwarding mode \"gre\"`},
		{name: "empty body", method: "POST", path: "/v1/vips", wantCode: 400, wantBody: "decode request body: EOF"},
		{name: "flow family mismatch", method: "POST", path: "/v1/flow", body: `{"src":"[2001:db8::7]:1","vip":"10.0.0.1:80/tcp"}`, wantCode: 400, wantBody: "different address families"},
		{name: "unknown path", method: "GET", path: "/v2/vips", wantCode: 404, wantBody: "no such API path GET /v2/vips"},
		{name: "wrong method", method: "PATCH", path: "/v1/status", wantCode: 404, wantBody: "no such API path PATCH /v1/status"},
	}
	rec := &recorder{}
	_, path := startServer(t, rec)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := rawRequest(t, path, tt.method, tt.path, tt.body)
			assert.Equal(t, tt.wantCode, code)
			assert.Contains(t, body, tt.wantBody)
		})
	}
	assert.Empty(t, rec.Calls(), "the service must not see rejected requests")
}

func TestErrorf(t *testing.T) {
	cause := errors.New("disk full")
	tests := []struct {
		name    string
		err     error
		wantMsg string
		wantIs  []error
	}{
		{"plain", Errorf(ErrConflict, "vip %s: backend %s already exists", "10.0.0.1:80/tcp", "10.0.1.1"),
			"vip 10.0.0.1:80/tcp: backend 10.0.1.1 already exists", []error{ErrConflict}},
		{"wraps its cause", Errorf(ErrUnavailable, "persist state: %w", cause), "persist state: disk full", []error{ErrUnavailable, cause}},
		{"wrapped again", fmt.Errorf("vip %s: %w", "10.0.0.1:80/tcp", Errorf(ErrInvalid, "backend %s: weight 70000 is above the maximum 65535", "10.0.1.1")),
			"vip 10.0.0.1:80/tcp: backend 10.0.1.1: weight 70000 is above the maximum 65535", []error{ErrInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantMsg, tt.err.Error())
			for _, want := range tt.wantIs {
				assert.ErrorIs(t, tt.err, want)
			}
			assert.Equal(t, http.StatusText(adminsock.StatusOf(tt.err)), http.StatusText(adminsock.StatusOf(tt.wantIs[0])))
		})
	}
}
