package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/l7/config"
)

// loadResult counts what a bounded load loop saw.
type loadResult struct {
	ok, failed atomic.Int64
	dials      atomic.Int64 // connections the clients opened
	mu         sync.Mutex
	errs       []string
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, msg)
	}
}

func (r *loadResult) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%d dials=%d first errors: %v", r.ok.Load(), r.failed.Load(), r.dials.Load(), r.errs)
}

// runLoad sends GETs to url from workers keep-alive clients until stop is
// closed or max requests were sent in total; it returns once all workers
// are done. check judges each answer (nil = success).
func runLoad(t *testing.T, workers int, max int64, url string, stop <-chan struct{}, check func(*http.Response, string) error) *loadResult {
	t.Helper()
	res := &loadResult{}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		tr := &http.Transport{DisableCompression: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			res.dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= max {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err != nil {
					res.fail(err.Error())
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					res.fail(err.Error())
					continue
				}
				if err := check(resp, string(b)); err != nil {
					res.fail(err.Error())
					continue
				}
				res.ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return res
}

func status200(resp *http.Response, body string) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

// TestGracefulStopUnderLoad: on stop, /ready fails first while requests
// keep being served for the drain delay; none of the requests a client
// sends within the drain delay fails. Then the listeners close, a request
// still in flight finishes with Connection: close, an idle keep-alive
// connection is closed, and Run returns nil.
func TestGracefulStopUnderLoad(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	servers := shopServers(t, map[string]http.HandlerFunc{
		"a1": func(w http.ResponseWriter, _ *http.Request) {
			arrived <- struct{}{}
			<-release
			fmt.Fprint(w, "finished")
		},
	})
	text := "shutdown: {drain_delay: 2s, timeout: 5s}\n" + shopConfig
	for name, s := range servers {
		text = strings.ReplaceAll(text, "{"+name+"}", s.addr())
	}
	cfg, err := config.Parse("test.yaml", []byte(text))
	require.NoError(t, err)
	cfg.Listeners[0].Addr = freeAddr(t)
	cfg.Admin.Addr = freeAddr(t)
	logs := &logbuf.Buffer{}
	tp := startProxyConfig(t, cfg, func(o *Options) { o.Log = slog.New(slog.NewTextHandler(logs, nil)) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tp.Run(ctx) }()
	c := client(t)
	base := "http://" + cfg.Listeners[0].Addr
	ready := func() int {
		resp, err := c.Get("http://" + cfg.Admin.Addr + "/ready")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return ready() == http.StatusOK }, 30*time.Second, 10*time.Millisecond)

	// An idle keep-alive connection opened before the stop.
	idle, err := net.Dial("tcp", cfg.Listeners[0].Addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = io.WriteString(idle, "GET /browse/x HTTP/1.1\r\nHost: shop\r\n\r\n")
	require.NoError(t, err)
	idleR := bufio.NewReader(idle)
	resp, err := http.ReadResponse(idleR, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	stop := make(chan struct{})
	loadDone := make(chan *loadResult, 1)
	go func() { loadDone <- runLoad(t, 4, 200000, base+"/browse/x", stop, status200) }()
	require.Eventually(t, func() bool { return servers["b1"].hits() > 50 }, 30*time.Second, 5*time.Millisecond)

	cancel()
	require.Eventually(t, func() bool { return ready() == http.StatusServiceUnavailable }, 30*time.Second, 5*time.Millisecond,
		"/ready must fail during the drain delay")
	atStop := servers["b1"].hits()
	resp, err = c.Get(base + "/browse/x")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still served during the drain delay")
	assert.True(t, resp.Close, "answers during the drain close their connection, so keep-alive clients move on")
	// The edge stops sending within the drain delay: the load loop stops
	// well before it ends.
	time.Sleep(time.Second)
	close(stop)
	res := <-loadDone
	t.Logf("load across the stop: %s", res)
	assert.Zero(t, res.failed.Load(), "%s", res)
	assert.Greater(t, servers["b1"].hits(), atStop, "requests were served after /ready failed")

	// A request that is still in flight when the listeners close.
	inflight := make(chan *http.Response, 1)
	go func() {
		resp, err := client(t).Get(base + "/auth/slow")
		if err != nil {
			inflight <- nil
			return
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- resp
	}()
	<-arrived
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "no longer accepting") }, 30*time.Second, 5*time.Millisecond)
	// The idle connection is closed by the proxy.
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = idleR.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "idle keep-alive connection not closed")
	close(release)
	r := <-inflight
	require.NotNil(t, r, "in-flight request failed")
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.True(t, r.Close, "in-flight response during shutdown must carry Connection: close")

	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	_, err = net.DialTimeout("tcp", cfg.Listeners[0].Addr, time.Second)
	assert.Error(t, err, "still accepting after the stop")
}
