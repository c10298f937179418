package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/xlbproject/xlb/l7/admin"
)

// shopApp is one real app server of the flash-sale test: it answers with
// its name and counts its requests; /checkout/slow waits for release.
type shopApp struct {
	name    string
	addr    string
	hits    atomic.Int64
	release chan struct{}
	slowIn  chan struct{}
}

func newShopApp(t *testing.T, name string) *shopApp {
	t.Helper()
	a := &shopApp{name: name, release: make(chan struct{}), slowIn: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if r.URL.Path == "/checkout/slow" {
			a.slowIn <- struct{}{}
			<-a.release
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	a.addr = srv.Listener.Addr().String()
	return a
}

// runProxyCmd runs `xlb proxy` in-process until the test ends or stop.
func runProxyCmd(t *testing.T, cfgPath, adminAddr string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newProxyCmd()
	var out logbuf.Buffer
	cmd.SetOut(io.Discard)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--config", cfgPath})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()
	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool { return statusOf(c, "http://"+adminAddr+"/ready") == http.StatusOK },
		20*time.Second, 20*time.Millisecond, "proxy never became ready: %s", out.String())
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			assert.NoError(t, err, out.String())
		case <-time.After(20 * time.Second):
			t.Error("proxy did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// cli runs one xlb command line in-process and requires exit status 0.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runExit(args...)
	require.Equal(t, 0, code, "xlb %s: %s", strings.Join(args, " "), stderr)
	return stdout
}

// TestFlashSaleGrowPool grows checkout from 8 to 32 servers through the CLI
// while clients keep sending: no request fails, every new server gets
// traffic, and sticky clients keep their servers. Then a server is drained
// with --wait: its in-flight request completes, and only then does the
// command report it empty. The runtime changes survive a restart.
func TestFlashSaleGrowPool(t *testing.T) {
	apps := make([]*shopApp, 32)
	for i := range apps {
		apps[i] = newShopApp(t, fmt.Sprintf("c%d", i+1))
	}
	dir := t.TempDir()
	listen, adminAddr, sock := freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	var servers strings.Builder
	for _, a := range apps[:8] {
		fmt.Fprintf(&servers, "      - {name: %s, addr: %q}\n", a.name, a.addr)
	}
	cfgPath := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 100ms}
sticky:
  keys: [{id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}]
routes: [{name: checkout, match: {path_prefix: /checkout}, pool: checkout}]
pools:
  - name: checkout
    sticky: {cookie: xlb_checkout, drain_timeout: 1m}
    servers:
%s`, listen, adminAddr, sock, servers.String())), 0o600))
	stop := runProxyCmd(t, cfgPath, adminAddr)
	base := "http://" + listen

	// Sticky clients, each pinned to a server before the change.
	type pinned struct {
		cookie, server string
	}
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path, cookie string) (string, string) {
		req, err := http.NewRequest("GET", base+path, nil)
		require.NoError(t, err)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b), strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	}
	var clients []pinned
	for range 16 {
		name, cookie := get("/checkout/cart", "")
		require.NotEmpty(t, cookie)
		clients = append(clients, pinned{cookie, name})
	}

	load := startLoad(t, base+"/checkout/browse", 4, 500000)
	// One command per server for some, then one command for the rest.
	for _, a := range apps[8:20] {
		out := cli(t, "pool", "server", "add", "checkout", a.name, a.addr, "--proxy", sock)
		assert.Contains(t, out, "1 server added to pool checkout")
	}
	args := []string{"pool", "server", "add", "checkout", "--proxy", sock}
	for _, a := range apps[20:] {
		args = append(args, a.name+"="+a.addr)
	}
	assert.Contains(t, cli(t, args...), "12 servers added to pool checkout; it has 32, 32 taking new clients")
	for _, a := range apps[8:] {
		require.Eventually(t, func() bool { return a.hits.Load() > 0 }, 20*time.Second, 5*time.Millisecond, "%s got no traffic", a.name)
	}
	for _, p := range clients {
		got, _ := get("/checkout/pay", p.cookie)
		assert.Equal(t, p.server, got, "sticky client moved")
	}
	res := load.finish()
	t.Logf("load while adding 24 servers: %s", res)
	assert.Zero(t, load.failed.Load(), res)

	var pool admin.Pool
	require.NoError(t, json.Unmarshal([]byte(cli(t, "pool", "show", "checkout", "-o", "json", "--proxy", sock)), &pool))
	require.Len(t, pool.Servers, 32)
	assert.Equal(t, 32, pool.Available)
	assert.True(t, pool.Servers[31].Runtime)
	assert.False(t, pool.Servers[0].Runtime)

	// Drain c1 while one of its requests is in flight.
	c1 := apps[0]
	var c1cookie string
	for _, p := range clients {
		if p.server == "c1" {
			c1cookie = p.cookie
		}
	}
	for i := 0; i < 200 && c1cookie == ""; i++ { // a new client until one is pinned to c1
		if name, ck := get("/checkout/x", ""); name == "c1" {
			c1cookie = ck
		}
	}
	require.NotEmpty(t, c1cookie, "no client was pinned to c1")
	slow := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/checkout/slow", nil)
		req.Header.Set("Cookie", c1cookie)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	select {
	case <-c1.slowIn:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached c1 (cookie not pinned to c1)")
	}
	type result struct {
		code           int
		stdout, stderr string
	}
	drained := make(chan result, 1)
	go func() {
		code, out, errs := runExit("pool", "server", "drain", "checkout", "c1", "--wait", "--quiet", "200ms", "--timeout", "20s", "--proxy", sock)
		drained <- result{code, out, errs}
	}()
	client := admin.NewClient(sock, 5*time.Second)
	defer client.Close()
	require.Eventually(t, func() bool {
		s, err := client.Server(t.Context(), "checkout", "c1", 200*time.Millisecond)
		return err == nil && s.State == "draining" && s.InFlight == 1 && !s.Empty
	}, 30*time.Second, 5*time.Millisecond)
	select {
	case r := <-drained:
		t.Fatalf("drain --wait returned with a request in flight: %+v", r)
	default:
	}
	close(c1.release)
	assert.Equal(t, "200 c1", <-slow, "the in-flight request completes")
	r := <-drained
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "server c1 of pool checkout drained and empty\n", r.stdout)

	// Refusals that name the fix, and a typo never exits 0.
	code, _, stderr := runExit("pool", "server", "add", "checkout", "c2", apps[1].addr, "--proxy", sock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "server c2 already exists")
	code, _, stderr = runExit("pool", "server", "drain", "nosuch", "c2", "--proxy", sock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "pool nosuch does not exist (list pools with `xlb pool list`)")
	code, _, _ = runExit("pool", "server", "drian", "checkout", "c2", "--proxy", sock)
	assert.Equal(t, 1, code)

	// Restart: the state file brings the 24 servers and the drain back.
	stop()
	_ = runProxyCmd(t, cfgPath, adminAddr)
	require.NoError(t, json.Unmarshal([]byte(cli(t, "pool", "show", "checkout", "-o", "json", "--proxy", sock)), &pool))
	assert.Len(t, pool.Servers, 32)
	assert.Equal(t, "draining", pool.Servers[0].State)
	assert.Equal(t, 31, pool.Available)
}

// TestPoolCommands walks the other pool commands against a running proxy:
// table output, weight, the last-server refusal and --force, undrain, del,
// and errors that name the fix.
func TestPoolCommands(t *testing.T) {
	a, b := newShopApp(t, "w1"), newShopApp(t, "w2")
	dir := t.TempDir()
	listen, adminAddr, sock := freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	cfgPath := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 100ms}
routes: [{name: web, pool: web}]
pools:
  - name: web
    servers: [{name: w1, addr: %q}, {name: w2, addr: %q}]
`, listen, adminAddr, sock, a.addr, b.addr)), 0o600))
	runProxyCmd(t, cfgPath, adminAddr)
	p := []string{"--proxy", sock}

	assert.Equal(t, "POOL  POLICY  STICKY  ROUTES  AVAILABLE  SERVERS\nweb   p2c     false   web     2          2\n",
		cli(t, append([]string{"pool", "list"}, p...)...))

	// Pools and servers complete from the running proxy, never as files.
	for _, tt := range []struct {
		proxy string
		args  []string
		want  string
	}{
		{sock, []string{"pool", "show"}, "web\n:4\n"},
		{sock, []string{"pool", "server", "drain"}, "web\n:4\n"},
		{sock, []string{"pool", "server", "weight", "web"}, "w1\nw2\n:4\n"},
		{sock, []string{"pool", "server", "del", "web", "w1"}, ":4\n"},
		{filepath.Join(dir, "none.sock"), []string{"pool", "show"}, ":4\n"},
	} {
		args := append(append(append([]string{"__complete"}, tt.args...), "--proxy", tt.proxy), "")
		assert.Equal(t, tt.want, cli(t, args...), "%v", tt.args)
	}
	assert.Equal(t, "server w2 of pool web now has weight 3\n", cli(t, append([]string{"pool", "server", "weight", "web", "w2", "3"}, p...)...))
	assert.Equal(t, "server w1 of pool web draining (0 in flight)\n", cli(t, append([]string{"pool", "server", "drain", "web", "w1"}, p...)...))
	show := cli(t, append([]string{"pool", "show", "web"}, p...)...)
	assert.Contains(t, show, "pool web  policy p2c  sticky false  routes web  available 1 of 2\n")
	assert.Contains(t, show, "w1      "+a.addr+"  1       draining (empty)  0          runtime\n")
	assert.Contains(t, show, "w2      "+b.addr+"  3       up                0          runtime\n")

	code, _, stderr := runExit(append([]string{"pool", "server", "drain", "web", "w2"}, p...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "it is the last server of pool web that takes new clients; its routes would answer 503 (add another server first, or use --force)")
	code, _, stderr = runExit(append([]string{"pool", "server", "del", "web", "w2"}, p...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "use --force")
	code, _, stderr = runExit(append([]string{"pool", "server", "weight", "web", "w2", "heavy"}, p...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `invalid WEIGHT "heavy"`)
	code, _, stderr = runExit(append([]string{"pool", "server", "add", "web", "w3"}, p...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `invalid server "w3": give NAME ADDR for one server, or NAME=ADDR for each of several`)
	// The same app server under a second name is refused: it would double
	// its share of the pool's traffic.
	code, stdout, stderr := runExit(append([]string{"pool", "server", "add", "web", "w3", a.addr}, p...)...)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "add to pool web: server w1 already has addr "+a.addr)
	code, _, stderr = runExit(append([]string{"pool", "server", "add", "web", "w3=" + a.addr, "w4=" + a.addr}, p...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "add to pool web: server w1 already has addr "+a.addr)
	code, _, stderr = runExit(append([]string{"pool", "show", "nope", "-o", "json"}, p...)...)
	assert.Equal(t, 1, code)
	assert.JSONEq(t, `{"error": "pool nope does not exist (list pools with `+"`xlb pool list`"+`)"}`, stderr)
	code, _, stderr = runExit("pool", "list", "--proxy", filepath.Join(dir, "nothing.sock"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "is `xlb proxy` running, and is this its admin.socket?")
	assert.Contains(t, stderr, "start it with `systemctl start xlb-proxy`", "how to start it")

	assert.Equal(t, "server w1 of pool web takes new clients (up)\n", cli(t, append([]string{"pool", "server", "undrain", "web", "w1"}, p...)...))
	assert.Equal(t, "server w2 deleted from pool web; it has 1, 1 taking new clients\n", cli(t, append([]string{"pool", "server", "del", "web", "w2"}, p...)...))
	resp, err := http.Get("http://" + listen + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "w1", string(body))
}

// TestPrintPoolsFailingOpen: a pool failing open says so where an empty
// one says its routes answer 503; pool show reads its rule.
func TestPrintPoolsFailingOpen(t *testing.T) {
	var out strings.Builder
	require.NoError(t, printPools(&out, []admin.Pool{
		{Name: "web", Policy: "p2c", Routes: []string{"web"}, Available: 1, FailingOpen: true, Servers: make([]admin.Server, 3)},
		{Name: "api", Policy: "p2c", Routes: []string{"api"}, Servers: make([]admin.Server, 1)},
	}))
	assert.Equal(t, ""+
		"POOL  POLICY  STICKY  ROUTES  AVAILABLE                                         SERVERS\n"+
		"web   p2c     false   web     1 (FAIL-OPEN: sent to every server not draining)  3\n"+
		"api   p2c     false   api     0 (routes answer 503)                             1\n", out.String())

	out.Reset()
	require.NoError(t, printPool(&out, admin.Pool{Name: "web", Policy: "p2c", Routes: []string{"web"}, Available: 1, FailingOpen: true,
		FailOpen: &admin.FailOpen{Below: 50}, Problem: "failing open: 1 of 3 servers pass their health checks, new clients go to every server not draining"}))
	assert.Equal(t, ""+
		"pool web  policy p2c  sticky false  routes web  available 1 of 0\n"+
		"fail open while fewer than 50% of the servers not draining pass (health.fail_open_below)\n"+
		"PROBLEM: failing open: 1 of 3 servers pass their health checks, new clients go to every server not draining\n"+
		"SERVER  ADDR  WEIGHT  STATE  IN-FLIGHT  SOURCE\n", out.String())
}

// TestPoolServerAddWeightRange: --weight outside 1..1000 is refused before
// the proxy is asked; 0 used to reach the API as "not given" and add the
// servers at weight 1, taking clients, with exit status 0.
func TestPoolServerAddWeightRange(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, w := range []string{"0", "-1", "1001"} {
		t.Run(w, func(t *testing.T) {
			code, stdout, stderr := runExit("pool", "server", "add", "checkout", "c9", "10.0.2.9:8080", "--weight", w, "--proxy", sock)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "invalid --weight "+w+": a pool server's weight is 1..1000")
			assert.NotContains(t, stderr, sock, "refused before the proxy is dialled")
		})
	}
}

// TestPoolServerDrainWaitFlags: --timeout and --quiet shape --wait; given
// without it they were ignored and the drain exited 0 at once.
func TestPoolServerDrainWaitFlags(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, flag := range []string{"--timeout", "--quiet"} {
		t.Run(flag, func(t *testing.T) {
			code, stdout, stderr := runExit("pool", "server", "drain", "checkout", "c3", flag, "5s", "--proxy", sock)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, flag+" goes with --wait")
			assert.NotContains(t, stderr, sock, "refused before the proxy is dialled")
		})
	}
}
