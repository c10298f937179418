package shopload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goBuild builds pkg into dir and returns the binary.
func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	require.NoError(t, err)
	bin := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command(goBin, "build", "-o", bin, pkg).CombinedOutput()
	require.NoError(t, err, "build %s: %s", pkg, out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// start runs a process until the test ends; its output goes to the test
// log on failure.
func start(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 3 * time.Second
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out.String())
		}
	})
}

func TestDemoAppHeaders(t *testing.T) {
	app := goBuild(t, t.TempDir(), "github.com/xlbproject/xlb/test/demo/app")
	addr := freeAddr(t)
	start(t, app, "-listen", addr, "-name", "app-1")
	target := "http://" + addr
	require.Eventually(t, func() bool { return get(target+"/healthz") == nil }, 30*time.Second, 50*time.Millisecond)

	sum, err := Run(context.Background(), Config{Target: target, Concurrency: 4, Users: 20, Seed: 10})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"app-1": 20 * 7}, sum.AppServers)
	assert.Equal(t, map[string]int{"127.0.0.1": 20 * 7}, sum.L7Hosts)
	assert.Empty(t, sum.Errors)
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// The shop as the demo builds it, on loopback: a real `xlb proxy` with the
// sticky checkout pool in front of demo app servers.
func TestThroughXLBProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds xlb")
	}
	dir := t.TempDir()
	app := goBuild(t, dir, "github.com/xlbproject/xlb/test/demo/app")
	xlb := goBuild(t, dir, "github.com/xlbproject/xlb/cmd/xlb")

	servers := map[string][]string{}
	for _, s := range []struct {
		pool string
		n    int
	}{{"checkout", 3}, {"browse", 2}, {"auth", 1}} {
		for i := 1; i <= s.n; i++ {
			name, addr := fmt.Sprintf("%s-%d", s.pool, i), freeAddr(t)
			start(t, app, "-listen", addr, "-name", name)
			servers[s.pool] = append(servers[s.pool], fmt.Sprintf("      - {name: %s, addr: %q}", name, addr))
		}
	}
	listen := freeAddr(t)
	cfg := fmt.Sprintf(`listeners:
  - name: http
    addr: %q
admin:
  addr: %q
  socket: %q
access_log:
  enabled: false
sticky:
  keys:
    - id: 1
      secret: "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse}, pool: browse}
  - {name: products, match: {path_prefix: /products}, pool: browse}
  - {name: auth, match: {path_prefix: /auth}, pool: auth}
pools:
  - name: checkout
    policy: p2c
    servers:
%s
    sticky: {cookie: xlb_checkout, max_age: 1h}
  - name: browse
    policy: round_robin
    servers:
%s
  - name: auth
    policy: least_conn
    servers:
%s
`, listen, freeAddr(t), filepath.Join(dir, "admin.sock"),
		strings.Join(servers["checkout"], "\n"), strings.Join(servers["browse"], "\n"), strings.Join(servers["auth"], "\n"))
	cfgPath := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	start(t, xlb, "proxy", "--config", cfgPath)
	target := "http://" + listen
	require.Eventually(t, func() bool {
		return get(target+"/checkout/ping") == nil && get(target+"/browse") == nil && get(target+"/auth") == nil
	}, 20*time.Second, 100*time.Millisecond, "proxy and app servers up")

	sum, err := Run(context.Background(), Config{Target: target, Rate: 200, Users: 100, Duration: 20 * time.Second,
		Think: 2 * time.Millisecond, Reopen: 2, Seed: 11})
	require.NoError(t, err)
	var out strings.Builder
	require.NoError(t, sum.WriteText(&out))
	t.Logf("through xlb proxy:\n%s", out.String())

	assert.Equal(t, Users{Started: 100, Finished: 100}, sum.Users)
	assert.Equal(t, 100*7, sum.Requests)
	assert.Empty(t, sum.Errors)
	assert.Zero(t, sum.Conns.Broken)
	assert.Equal(t, 100, sum.Sticky.Users)
	assert.Equal(t, 100, sum.Sticky.Kept, "every user kept its checkout server: %v", sum.Sticky.Examples)
	total := 0
	for _, n := range sum.AppServers {
		total += n
	}
	assert.Equal(t, sum.Requests, total, "every answer named its app server")
	assert.Equal(t, map[string]int{"127.0.0.1": sum.Requests}, sum.L7Hosts)
	// Each route reached only its own pool.
	for route, pool := range map[string]string{RouteCart: "checkout", RouteCheckout: "checkout", RouteBrowse: "browse",
		RouteProducts: "browse", RouteAuth: "auth"} {
		for app := range sum.AppByRoute[route] {
			assert.True(t, strings.HasPrefix(app, pool+"-"), "%s answered by %s", route, app)
		}
	}
}
