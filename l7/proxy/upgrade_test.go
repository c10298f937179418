package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/websocket"

	"github.com/xlbproject/xlb/l7/config"
)

const wsConfig = `
listeners: [{name: http, addr: "127.0.0.1:0"}]
access_log: {enabled: true, sample: 1}
routes:
  - {name: ws, match: {path_prefix: /ws}, pool: ws, timeouts: {tunnel_idle: 1s}}
  - {name: quiet, match: {path_prefix: /quiet}, pool: ws, timeouts: {tunnel_idle: 200ms}}
  - {name: plain, match: {path_prefix: /plain}, pool: plain}
pools:
  - name: ws
    servers: [{name: dead, addr: "{dead}"}, {name: w1, addr: "{w1}"}]
    policy: round_robin
    health: {passive: {disabled: true}}
  - name: plain
    servers: [{name: p1, addr: "{p1}"}]
`

// wsServer is a real WebSocket server: /ws/echo echoes every message,
// /ws/push sends n messages 100 ms apart and never reads, /quiet/* reads
// until the connection ends.
func wsServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(wsMux())
	t.Cleanup(s.Close)
	return s
}

// wsMux is wsServer's handler.
func wsMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/ws/echo", websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, "echo: "+msg); err != nil {
				return
			}
		}
	}))
	mux.Handle("/ws/push", websocket.Handler(func(ws *websocket.Conn) {
		for i := range 15 {
			if err := websocket.Message.Send(ws, fmt.Sprintf("tick %d", i)); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}))
	mux.Handle("/quiet/", websocket.Handler(func(ws *websocket.Conn) {
		var msg string
		for websocket.Message.Receive(ws, &msg) == nil {
		}
	}))
	return mux
}

func startWS(t *testing.T) (*testProxy, *appServer) {
	tp, p1, _ := startWSText(t)
	return tp, p1
}

// startWSText also returns the expanded config text, for reloads.
func startWSText(t *testing.T) (*testProxy, *appServer, string) {
	t.Helper()
	ws := wsServer(t)
	p1 := newAppServer(t, "p1", nil)
	text := strings.NewReplacer(
		"{dead}", refusedAddr(t),
		"{w1}", strings.TrimPrefix(ws.URL, "http://"),
		"{p1}", p1.addr(),
	).Replace(wsConfig)
	return startProxy(t, text, nil), p1, text
}

func dialWS(t *testing.T, tp *testProxy, path string) *websocket.Conn {
	t.Helper()
	ws, err := websocket.Dial("ws://"+tp.addr+path, "", "http://shop.example/")
	require.NoError(t, err)
	return ws
}

func TestWebSocketPassesThrough(t *testing.T) {
	tp, _ := startWS(t)
	// Round robin puts the refused server first: the handshake never
	// reached it, so it is redispatched to the live one.
	ws := dialWS(t, tp, "/ws/echo")
	for i := range 5 {
		require.NoError(t, websocket.Message.Send(ws, fmt.Sprintf("m%d", i)))
		var got string
		require.NoError(t, websocket.Message.Receive(ws, &got))
		assert.Equal(t, fmt.Sprintf("echo: m%d", i), got)
	}

	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_upgrades_total", map[string]string{"route": "ws"}))
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_upgraded_connections", map[string]string{"route": "ws"}))
	assert.Equal(t, int64(1), tp.ActiveTunnels())
	w1 := tp.dir.Pools()[0].ByName("w1")
	assert.Equal(t, int64(1), w1.InFlight(), "an open WebSocket holds its server's in-flight slot, so a drain waits for it")
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_shed_inflight_requests", nil), "but not a shedding slot")

	require.NoError(t, ws.Close())
	require.Eventually(t, func() bool { return tp.ActiveTunnels() == 0 && w1.InFlight() == 0 }, 30*time.Second, 10*time.Millisecond)
	recs := accessRecords(t, tp)
	require.Equal(t, 1, countRecords(recs, map[string]any{"route": "ws", "status": float64(101), "termination": "ok", "tries": float64(2), "backend": "w1"}), "%v", recs)
	// bytes: the five echoes, each a 2-byte frame header and "echo: mN",
	// and the server's close frame when it answers the client's in time.
	for _, r := range recs {
		if r["route"] == "ws" {
			assert.Contains(t, []float64{5 * (2 + 8), 5*(2+8) + 2}, r["bytes"], "bytes to the client")
		}
	}
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "ws", "cause": "ok"}))
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upgraded_connections", map[string]string{"route": "ws"}))
}

func TestWebSocketIdleTimeout(t *testing.T) {
	tp, _ := startWS(t)

	t.Run("one-way traffic keeps the tunnel open", func(t *testing.T) {
		// 15 messages 100 ms apart, nothing from the client, with a 1 s
		// idle timeout: the tunnel is busy, not idle.
		ws := dialWS(t, tp, "/ws/push")
		defer ws.Close()
		for i := range 15 {
			var got string
			require.NoError(t, websocket.Message.Receive(ws, &got), "message %d", i)
			assert.Equal(t, fmt.Sprintf("tick %d", i), got)
		}
	})

	t.Run("a silent tunnel is closed", func(t *testing.T) {
		ws := dialWS(t, tp, "/quiet/x")
		defer ws.Close()
		var got string
		err := websocket.Message.Receive(ws, &got) // blocks until the proxy closes
		require.Error(t, err)
		require.Eventually(t, func() bool {
			return countRecords(accessRecords(t, tp), map[string]any{"route": "quiet", "termination": "idle_timeout"}) == 1
		}, 30*time.Second, 10*time.Millisecond, tp.logs.String())
		assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "quiet", "cause": "idle_timeout"}))
	})
}

func TestUpgradeNotTunnelled(t *testing.T) {
	tp, p1 := startWS(t)

	t.Run("h2c", func(t *testing.T) {
		out := rawExchange(t, tp.addr, "GET /plain/x HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
			"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n")
		assert.Equal(t, http.StatusOK, statusOf(t, out), "answered as plain HTTP/1.1, never 101")
		assert.True(t, strings.HasSuffix(out, "hello from p1"), out)
		got, _, _ := p1.lastRequest()
		require.NotNil(t, got)
		assert.Empty(t, got.Header.Get("Upgrade"), "the upgrade is not offered upstream")
		assert.Empty(t, got.Header.Get("Http2-Settings"))
		assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upgrades_total", map[string]string{"route": "plain"}))
	})

	t.Run("websocket to a server that does not upgrade", func(t *testing.T) {
		out := rawExchange(t, tp.addr, "GET /plain/chat HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		assert.Equal(t, http.StatusOK, statusOf(t, out), "the server's own answer")
		assert.True(t, strings.HasSuffix(out, "hello from p1"), out)
		assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upgrades_total", map[string]string{"route": "plain"}))
	})
}

// TestWebSocketAcrossReload: a reload that moves the WebSocket route to
// another index keeps an open tunnel working and its accounting right.
func TestWebSocketAcrossReload(t *testing.T) {
	tp, _, text := startWSText(t)
	old := dialWS(t, tp, "/ws/echo")
	exchange := func(ws *websocket.Conn, msg string) {
		t.Helper()
		require.NoError(t, websocket.Message.Send(ws, msg))
		var got string
		require.NoError(t, websocket.Message.Receive(ws, &got))
		assert.Equal(t, "echo: "+msg, got)
	}
	exchange(old, "before")

	next := strings.Replace(text, "routes:\n", "routes:\n  - {name: first, match: {path_prefix: /first}, pool: plain}\n", 1)
	cfg, err := config.Parse("test.yaml", []byte(next))
	require.NoError(t, err)
	_, err = tp.Apply(cfg)
	require.NoError(t, err)

	for i := range 3 {
		exchange(old, fmt.Sprintf("after %d", i))
	}
	fresh := dialWS(t, tp, "/ws/echo")
	exchange(fresh, "new")
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_upgrades_total", map[string]string{"route": "ws"}))
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_upgraded_connections", map[string]string{"route": "ws"}))

	require.NoError(t, old.Close())
	require.NoError(t, fresh.Close())
	require.Eventually(t, func() bool { return tp.ActiveTunnels() == 0 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upgraded_connections", map[string]string{"route": "ws"}))
	assert.Equal(t, 0.0, metricValue(t, tp.reg, "xlb_l7_upgraded_connections", map[string]string{"route": "first"}))
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_terminations_total", map[string]string{"route": "ws", "cause": "ok"}))
}
