package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An app server that closes an idle keep-alive connection costs a GET
// nothing: the request goes again on a new connection, as HTTP clients
// do. Both ways a server ends such a connection: a full close, and a
// half-close that keeps draining what the client sends (Apache's
// lingering close), which draws no reset — only the FIN, queued while the
// connection was idle, tells the proxy (an upstream read that skipped it
// would wait for the whole response timeout).
func TestServerClosedIdleConnection(t *testing.T) {
	t.Run("full close", func(t *testing.T) {
		var closed atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}))
		srv.Config.IdleTimeout = 20 * time.Millisecond
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed.Add(1)
			}
		}
		srv.Start()
		t.Cleanup(srv.Close)
		idleClosedGets(t, srv.Listener.Addr().String(), &closed)
	})
	t.Run("half close, draining", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		var closed atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_ = req.Body.Close()
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					// Idle: half-close after a moment, then drain and
					// discard whatever comes, never answering it.
					time.Sleep(20 * time.Millisecond)
					_ = c.(*net.TCPConn).CloseWrite()
					closed.Add(1)
					_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
					_, _ = io.Copy(io.Discard, br)
				}()
			}
		}()
		idleClosedGets(t, ln.Addr().String(), &closed)
	})
}

// idleClosedGets sends GETs through a proxy to addr, each after the server
// ended the previous one's connection, and requires every one to succeed
// well within the route's response timeout (30 s: a hang would be a 504
// after it, not a slow success).
func idleClosedGets(t *testing.T, addr string, closed *atomic.Int64) {
	t.Helper()
	text := strings.NewReplacer("{c1}", addr, "{c2}", addr, "response: 300ms", "response: 30s").Replace(shopConfig)
	tp := startProxy(t, text, shopServers(t, nil))
	c := client(t)
	c.Timeout = 20 * time.Second
	for i := range 4 {
		n := closed.Load()
		resp, body := do(t, c, "GET", fmt.Sprintf("%s/checkout/%d", tp.url, i), nil, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, body)
		require.Eventually(t, func() bool { return closed.Load() > n }, 30*time.Second, 5*time.Millisecond, "the server ended the idle connection")
	}
}
