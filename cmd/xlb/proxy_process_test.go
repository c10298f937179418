package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
)

// The real-process tests build the xlb binary once per test run.
var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func xlbBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xlb-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "xlb")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// namedApp is a real app server answering with its name.
func namedApp(t *testing.T, name string, hits *atomic.Int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// proxyProcess is a running `xlb proxy` child process.
type proxyProcess struct {
	cmd    *exec.Cmd
	stderr *logbuf.Buffer
	done   chan error
}

func startProxyProcess(t *testing.T, cfgPath string) *proxyProcess {
	t.Helper()
	pp := &proxyProcess{stderr: &logbuf.Buffer{}, done: make(chan error, 1)}
	pp.cmd = exec.Command(xlbBinary(t), "proxy", "--config", cfgPath)
	pp.cmd.Stderr = pp.stderr
	pp.cmd.Stdout = io.Discard
	require.NoError(t, pp.cmd.Start())
	go func() { pp.done <- pp.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-pp.done:
		default:
			_ = pp.cmd.Process.Kill()
			<-pp.done
		}
	})
	return pp
}

func (pp *proxyProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	require.NoError(t, pp.cmd.Process.Signal(sig))
}

func (pp *proxyProcess) alive() bool {
	select {
	case err := <-pp.done:
		pp.done <- err
		return false
	default:
		return true
	}
}

func statusOf(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// procLoad is a bounded load loop of keep-alive clients that counts.
type procLoad struct {
	ok, failed atomic.Int64
	dials      atomic.Int64 // client connections opened
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int, max int64) *procLoad {
	t.Helper()
	l := &procLoad{stop: make(chan struct{})}
	var sent atomic.Int64
	for range workers {
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			l.dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for sent.Add(1) <= max {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *procLoad) finish() string {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d errors=%v", l.ok.Load(), l.failed.Load(), l.errs)
}

const processConfig = `listeners: [{name: http, addr: %q}]
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 2s, timeout: 5s}
routes: [{name: all, match: {path_prefix: /}, pool: app}]
pools:
  - name: app
    servers:
%s`

// TestProxyProcessSignals runs a real `xlb proxy` and sends it real
// signals: SIGHUP reloads (a valid file is applied, an invalid one is
// rejected with file:line and the running config stays, the process lives
// on), `xlb proxy reload` does the same through the admin socket, and
// SIGTERM drains: /ready fails first while requests are still served, then
// the process exits 0. A load loop runs throughout and no request fails.
func TestProxyProcessSignals(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	a, b := namedApp(t, "a", &hitsA), namedApp(t, "b", &hitsB)
	dir := t.TempDir()
	listen, adminAddr, sock := freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	cfgPath := filepath.Join(dir, "proxy.yaml")
	write := func(servers string) {
		require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(processConfig, listen, adminAddr, sock, servers)), 0o600))
	}
	write(fmt.Sprintf("      - {name: a, addr: %q}\n", a))
	pp := startProxyProcess(t, cfgPath)
	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool { return statusOf(c, "http://"+adminAddr+"/ready") == http.StatusOK },
		20*time.Second, 20*time.Millisecond, "proxy never became ready: %s", pp.stderr.String())

	load := startLoad(t, "http://"+listen+"/x", 4, 500000)

	// SIGHUP with a valid file: b joins.
	write(fmt.Sprintf("      - {name: a, addr: %q}\n      - {name: b, addr: %q}\n", a, b))
	pp.signal(t, syscall.SIGHUP)
	require.Eventually(t, func() bool { return hitsB.Load() > 20 }, 30*time.Second, 5*time.Millisecond,
		"b never got traffic after SIGHUP: %s", pp.stderr.String())
	require.True(t, pp.alive(), "SIGHUP killed the proxy")

	// SIGHUP with an invalid file: rejected, b keeps serving.
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(processConfig, listen, adminAddr, sock,
		fmt.Sprintf("      - {name: a, adr: %q}\n", a))), 0o600))
	pp.signal(t, syscall.SIGHUP)
	require.Eventually(t, func() bool { return strings.Contains(pp.stderr.String(), "reload rejected") }, 30*time.Second, 5*time.Millisecond)
	assert.Contains(t, pp.stderr.String(), `proxy.yaml:8: unknown key \"adr\" in pools[0].servers[0] (did you mean \"addr\"?)`)
	before := hitsB.Load()
	require.Eventually(t, func() bool { return hitsB.Load() > before+20 }, 30*time.Second, 5*time.Millisecond, "running config lost")
	require.True(t, pp.alive())

	// The same through the admin socket.
	out, err := exec.Command(xlbBinary(t), "proxy", "reload", "--proxy", sock).CombinedOutput()
	require.Error(t, err, "an invalid reload must not exit 0: %s", out)
	assert.Contains(t, string(out), "config rejected, running config unchanged")
	assert.Contains(t, string(out), `proxy.yaml:8: unknown key "adr" in pools[0].servers[0] (did you mean "addr"?)`)
	write(fmt.Sprintf("      - {name: b, addr: %q}\n", b))
	out, err = exec.Command(xlbBinary(t), "proxy", "reload", "--proxy", sock).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "config reloaded")
	afterA := hitsA.Load()
	before = hitsB.Load()
	require.Eventually(t, func() bool { return hitsB.Load() > before+50 }, 30*time.Second, 5*time.Millisecond)
	assert.LessOrEqual(t, hitsA.Load()-afterA, int64(8), "a was removed by the reload; at most the requests in flight at the swap reach it")

	// Two good reloads (SIGHUP, socket) and two rejected ones are counted;
	// the server the last reload removed has no series left.
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	exposition := string(body)
	for _, line := range []string{`xlb_config_reloads_total{result="ok"} 2`, `xlb_config_reloads_total{result="error"} 2`,
		"xlb_config_last_reload_successful 1", `xlb_build_info{goversion="` + runtime.Version() + `",version="`} {
		assert.Contains(t, exposition, line)
	}
	assert.Contains(t, exposition, `server="b"`)
	assert.NotContains(t, exposition, `server="a"`, "the removed server's series are gone")

	assert.Equal(t, int64(4), load.dials.Load(), "client keep-alive connections stay open across reloads")

	// SIGTERM: /ready fails while requests are still served.
	pp.signal(t, syscall.SIGTERM)
	require.Eventually(t, func() bool { return statusOf(c, "http://"+adminAddr+"/ready") == http.StatusServiceUnavailable },
		30*time.Second, 5*time.Millisecond, "/ready must fail first")
	atTerm := hitsB.Load()
	time.Sleep(500 * time.Millisecond) // the edge notices within the drain delay
	res := load.finish()
	t.Logf("load across HUP, reloads and TERM: %s", res)
	assert.Zero(t, load.failed.Load(), res)
	assert.Greater(t, hitsB.Load(), atTerm, "requests were served during the drain")
	select {
	case err := <-pp.done:
		pp.done <- err
		assert.NoError(t, err, "exit status: %s", pp.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("proxy did not exit after SIGTERM")
	}
	assert.NoFileExists(t, sock, "admin socket removed on exit")
	_, err = net.DialTimeout("tcp", listen, time.Second)
	assert.Error(t, err)
}

func TestProxyCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(good, []byte(fmt.Sprintf(processConfig, "127.0.0.1:1", "127.0.0.1:2", filepath.Join(dir, "s.sock"),
		"      - {name: a, addr: \"127.0.0.1:3\"}\n")), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("listeners:\n  - name: http\n    adr: \":80\"\nlimits: {idle_timeout: 30}\n"), 0o600))

	code, stdout, stderr := runExit("proxy", "--check", "--config", good)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, good+": configuration is valid (1 listener, 1 route, 1 pool, 1 server)\n", stdout)
	assert.NoFileExists(t, filepath.Join(dir, "s.sock"), "--check binds nothing")

	code, stdout, stderr = runExit("proxy", "--check", "--config", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, bad+`:3: unknown key "adr" in listeners[0] (did you mean "addr"?)`)
	assert.Contains(t, stderr, bad+`:4: limits.idle_timeout: 30 is not a duration: give a unit, e.g. 30s or 30ms`)
	assert.NotContains(t, stderr, "not found in type")

}
