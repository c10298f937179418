package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
)

func TestProxyCmdValidation(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("listeners:\n  - name: http\n    adress: x\n"), 0o600))

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"config required", nil, "--config is required"},
		{"bad log level", []string{"--config", bad, "--log-level", "loud"}, `invalid --log-level "loud"`},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")},
			"nope.yaml does not exist: write it from the example (/etc/xlb/proxy.yaml.example once xlb is installed, l7/example.yaml in the source) or name another with --config"},
		{"check of a missing file", []string{"--check", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, "l7/example.yaml in the source"},
		{"config error names file and line", []string{"--config", bad}, bad + ":3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newProxyCmd()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestProxyCmdServesAndStops(t *testing.T) {
	app := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "app")
	})}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = app.Serve(appLn) }()
	t.Cleanup(func() { _ = app.Close() })

	listen, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(t.TempDir(), "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
routes: [{name: all, match: {path_prefix: /}, pool: app}]
pools: [{name: app, servers: [{name: a1, addr: %q}]}]
`, listen, admin, filepath.Join(t.TempDir(), "proxy.sock"), appLn.Addr().String())), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newProxyCmd()
	var out logbuf.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--config", cfgPath})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()

	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool {
		resp, err := c.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "proxy never became ready: %s", out.String())
	resp, err := c.Get("http://" + listen + "/anything")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = c.Get("http://" + admin + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("xlb proxy did not stop after cancel")
	}
	assert.Contains(t, out.String(), `"msg":"proxy stopped"`)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestProxyListenErrors: a listener the proxy cannot open is named by its
// config key with the next step: a port another process holds, and the
// VIP's address before it is on loopback (an L7 host's first setup step).
// 192.0.2.0/24 is documentation space: the bind fails locally. The
// listeners are opened before the health checks start: the pool's app
// server sees no probe from a proxy that could not start.
func TestProxyListenErrors(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	var probes atomic.Int64
	app := namedApp(t, "a1", &probes)
	tests := []struct {
		name, listen, admin, want string
	}{
		{"port in use", held.Addr().String(), freePort(t), "listen on tcp " + held.Addr().String() + " (listeners[0].addr): another process already listens there"},
		{"admin port in use", freePort(t), held.Addr().String(), "(admin.addr): another process already listens there"},
		{"vip not on loopback", "192.0.2.123:18080", freePort(t), "192.0.2.123 is not an address of this host (`ip addr` lists them); a VIP goes on loopback first (ip addr add 192.0.2.123/32 dev lo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "proxy.yaml")
			require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
routes: [{name: all, match: {path_prefix: /}, pool: app}]
pools: [{name: app, health: {active: {path: /health, interval: 1s, timeout: 500ms}}, servers: [{name: a1, addr: %q}]}]
`, tt.listen, tt.admin, filepath.Join(t.TempDir(), "proxy.sock"), app)), 0o600))
			_, err := proxyCmdFails(t, cfgPath)
			assert.Contains(t, err.Error(), tt.want)
			assert.Zero(t, probes.Load(), "health probes of a proxy that could not listen")
		})
	}
}

// TestSecondProxySameSocket: a second xlb proxy started with the admin
// socket of a running one stops at the socket, saying so, before it
// starts anything: its pool's app server sees no health probe. It used to
// start its health checks first.
func TestSecondProxySameSocket(t *testing.T) {
	var firstHits, secondConns atomic.Int64
	firstApp := namedApp(t, "a1", &firstHits)
	// The second proxy's app servers count connections, not requests: a
	// probe that got as far as connecting counts too.
	var second []string
	for i := range 8 {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				secondConns.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		second = append(second, fmt.Sprintf("{name: b%d, addr: %q}", i, srv.Listener.Addr().String()))
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "proxy.sock")
	write := func(name, servers string) (path, adminAddr string) {
		path, adminAddr = filepath.Join(dir, name+".yaml"), freePort(t)
		require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q, state_file: %q}
shutdown: {drain_delay: 100ms}
routes: [{name: all, match: {path_prefix: /}, pool: app}]
pools: [{name: app, health: {active: {path: /health, interval: 1s, timeout: 500ms}}, servers: [%s]}]
`, freePort(t), adminAddr, sock, filepath.Join(dir, name+".state.json"), servers)), 0o600))
		return path, adminAddr
	}
	firstCfg, firstAdmin := write("first", fmt.Sprintf("{name: a1, addr: %q}", firstApp))
	runProxyCmd(t, firstCfg, firstAdmin)
	secondCfg, _ := write("second", strings.Join(second, ", "))

	out, err := proxyCmdFails(t, secondCfg)
	assert.Equal(t, "admin socket "+sock+": another xlb proxy is already listening on it (set admin.socket to run a second one)", err.Error())
	assert.Zero(t, secondConns.Load(), "health probes of the second proxy")
	assert.NotContains(t, out, "health", "the second proxy's log")
	// The first one still answers on the socket.
	assert.Contains(t, cli(t, "pool", "list", "--proxy", sock), "app ")
	require.Eventually(t, func() bool { return firstHits.Load() > 0 }, 30*time.Second, 10*time.Millisecond,
		"the first proxy probes its own app server: the counting works")
}

// proxyCmdFails runs xlb proxy --config cfgPath, which must fail (within
// 30 s), and returns what it printed and its error.
func proxyCmdFails(t *testing.T, cfgPath string) (string, error) {
	t.Helper()
	cmd := newProxyCmd()
	var out logbuf.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--config", cfgPath})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	require.Error(t, err, out.String())
	return out.String(), err
}
