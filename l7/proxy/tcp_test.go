package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/health"
)

// tcpServer is a real TCP server on loopback that greets every connection
// with its name and a newline, then echoes what it reads.
type tcpServer struct {
	name string
	ln   net.Listener
}

func newTCPServer(t *testing.T, name string) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &tcpServer{name: name, ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.WriteString(c, name+"\n")
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

// tcpProxy is a Proxy serving its TCP listener "db" on a loopback port.
type tcpProxy struct {
	*Proxy
	dir  *director.Director
	reg  *prometheus.Registry
	addr string
}

func expandTCP(yamlText string, servers map[string]*tcpServer) string {
	for name, s := range servers {
		yamlText = strings.ReplaceAll(yamlText, "{"+name+"}", s.addr())
	}
	return yamlText
}

func startTCPProxy(t *testing.T, yamlText string, servers map[string]*tcpServer) *tcpProxy {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(expandTCP(yamlText, servers)))
	require.NoError(t, err)
	dir, err := director.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	reg := prometheus.NewPedanticRegistry()
	p, err := New(cfg, dir, Options{Registerer: reg, Gatherer: reg})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.ServeTCP(ln, "db")
	}()
	t.Cleanup(func() {
		_ = p.Close()
		<-done
	})
	return &tcpProxy{Proxy: p, dir: dir, reg: reg, addr: ln.Addr().String()}
}

// dialGreeting connects through the proxy and returns the connection and
// the name of the server that greeted it ("" when the proxy closed it).
func dialGreeting(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		require.ErrorIs(t, err, io.EOF, "the proxy closes a refused connection, it does not hang")
		return c, br, ""
	}
	return c, br, strings.TrimSuffix(line, "\n")
}

func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	_, err := io.WriteString(c, msg+"\n")
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, msg+"\n", line)
}

const tcpYAML = `
listeners:
  - name: db
    addr: 127.0.0.1:0
    mode: tcp
    pool: pg
    idle_timeout: %IDLE%
pools:
  - name: pg
    policy: least_conn
    max_conns_per_server: %MAX%
    close_on_down: true
    servers:
      - {name: a, addr: "{a}"}
      - {name: b, addr: "{b}"}
`

func tcpConfig(idle string, maxConns string) string {
	return strings.NewReplacer("%IDLE%", idle, "%MAX%", maxConns).Replace(tcpYAML)
}

func TestTCPForwardsWithLeastConnAndCountsPerServer(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "0"), servers)

	got := map[string]int{}
	var conns []net.Conn
	for i := range 4 {
		c, br, name := dialGreeting(t, tp.addr)
		require.NotEmpty(t, name)
		echo(t, c, br, strings.Repeat("x", i+1))
		got[name]++
		conns = append(conns, c)
	}
	assert.Equal(t, map[string]int{"a": 2, "b": 2}, got, "least_conn spreads held connections evenly")
	// The byte counters grow while connections are open: 2+3 bytes
	// reached a, 4+5 b (least_conn alternates), and each got its echo.
	require.Eventually(t, func() bool { return sumSeries(t, tp.reg, "xlb_l7_tcp_bytes_total", "direction", "to_server") == 14 },
		30*time.Second, 10*time.Millisecond)
	assert.Equal(t, 4.0, metricValue(t, tp.reg, "xlb_l7_tcp_active_connections", map[string]string{"pool": "pg", "server": "a"})+
		metricValue(t, tp.reg, "xlb_l7_tcp_active_connections", map[string]string{"pool": "pg", "server": "b"}))
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	require.Eventually(t, func() bool { return tp.ActiveTCP() == 0 }, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_tcp_connections_total", map[string]string{"pool": "pg", "server": "a"}))
	assert.Equal(t, 2.0, metricValue(t, tp.reg, "xlb_l7_tcp_connections_total", map[string]string{"pool": "pg", "server": "b"}))
	// Each client sent i+1 bytes plus a newline: 2+3+4+5 = 14 to the servers.
	toServer := metricValue(t, tp.reg, "xlb_l7_tcp_bytes_total", map[string]string{"server": "a", "direction": "to_server"}) +
		metricValue(t, tp.reg, "xlb_l7_tcp_bytes_total", map[string]string{"server": "b", "direction": "to_server"})
	assert.Equal(t, 14.0, toServer)
	assert.Equal(t, int64(0), tp.dir.Pool(0).ByName("a").InFlight(), "closed connections release their server")
}

func TestTCPMaxConnsPerServer(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "1"), servers)
	_, _, n1 := dialGreeting(t, tp.addr)
	_, _, n2 := dialGreeting(t, tp.addr)
	assert.ElementsMatch(t, []string{"a", "b"}, []string{n1, n2})
	_, _, n3 := dialGreeting(t, tp.addr)
	assert.Empty(t, n3, "both servers at max_conns_per_server: the third client is refused")
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"pool": "pg", "kind": "no_server"}))
}

func TestTCPConnectErrorCounted(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := dead.Addr().String()
	require.NoError(t, dead.Close())
	yamlText := strings.Replace(tcpConfig("1h", "0"), `{name: b, addr: "{b}"}`, `{name: b, addr: "`+addr+`"}`, 1)
	yamlText = strings.Replace(yamlText, `      - {name: a, addr: "{a}"}`+"\n", "", 1)
	tp := startTCPProxy(t, yamlText, nil)
	_, _, name := dialGreeting(t, tp.addr)
	assert.Empty(t, name)
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"server": "b", "kind": "connect"}))
}

func TestTCPIdleTimeoutCloses(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("200ms", "0"), servers)
	c, br, name := dialGreeting(t, tp.addr)
	require.NotEmpty(t, name)
	echo(t, c, br, "ping")
	start := time.Now()
	_, err := br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the proxy closes a silent connection")
	t.Logf("idle connection closed after %s (idle_timeout 200ms)", time.Since(start))
}

// A drained or removed server keeps its open connections, across a
// reload, and gets no new ones.
func TestTCPReloadAndDrainKeepOpenConnections(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "0"), servers)
	held := map[string]net.Conn{}
	readers := map[string]*bufio.Reader{}
	for range 2 {
		c, br, name := dialGreeting(t, tp.addr)
		held[name], readers[name] = c, br
	}
	require.Len(t, held, 2)

	require.NoError(t, tp.dir.Drain("pg", "a", time.Now().Add(time.Hour)))
	for range 3 {
		_, _, name := dialGreeting(t, tp.addr)
		assert.Equal(t, "b", name, "a drained server gets no new connection")
	}
	echo(t, held["a"], readers["a"], "still-a")

	// Reload without a: the open connection to a keeps working.
	next := strings.Replace(tcpConfig("1h", "0"), `      - {name: a, addr: "{a}"}`+"\n", "", 1)
	cfg, err := config.Parse("test.yaml", []byte(expandTCP(next, servers)))
	require.NoError(t, err)
	_, err = tp.Apply(cfg)
	require.NoError(t, err)
	for range 3 {
		_, _, name := dialGreeting(t, tp.addr)
		assert.Equal(t, "b", name, "a removed server gets no new connection")
	}
	echo(t, held["a"], readers["a"], "after-reload")
	echo(t, held["b"], readers["b"], "b-after-reload")
}

func TestTCPCloseOnDown(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "0"), servers)
	c, br, name := dialGreeting(t, tp.addr)
	require.NotEmpty(t, name)
	echo(t, c, br, "ping")
	tp.dir.SetStatus("pg/"+name, false)
	_, err := br.ReadByte()
	require.Error(t, err, "a connection to a server that went down is closed")
	assert.True(t, errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset"), "closed, not timed out: %v", err)
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"server": name, "kind": "closed_down"}))
	_, _, other := dialGreeting(t, tp.addr)
	assert.NotEqual(t, name, other)
	assert.NotEmpty(t, other)
}

// Run serves mode tcp listeners from the config, next to HTTP ones, and a
// stop closes what is still open after the shutdown timeout.
func TestTCPListenerServedByRun(t *testing.T) {
	a := newTCPServer(t, "a")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	y := `
listeners:
  - {name: db, addr: "` + addr + `", mode: tcp, pool: pg}
shutdown: {drain_delay: 10ms, timeout: 200ms}
pools:
  - name: pg
    servers: [{name: a, addr: "` + a.addr() + `"}]
`
	cfg, err := config.Parse("test.yaml", []byte(y))
	require.NoError(t, err)
	dir, err := director.New(cfg)
	require.NoError(t, err)
	defer dir.Close()
	p, err := New(cfg, dir, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var c net.Conn
	require.Eventually(t, func() bool {
		c, err = net.Dial("tcp", addr)
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)
	defer c.Close()
	br := bufio.NewReader(c)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "a\n", line)
	ok, _ := p.Ready()
	assert.True(t, ok, "a proxy with only tcp listeners is ready once they serve")

	cancel()
	require.NoError(t, <-done)
	_, err = br.ReadByte()
	assert.Error(t, err, "a connection still open at the end of the shutdown timeout is closed")
	assert.Equal(t, int64(0), p.ActiveTCP())
}

// sumSeries adds up the series of name whose label has value (0 when
// there is none yet).
func sumSeries(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// A reload of a role pool keeps the sessions to its primary: the new
// generation takes the last checks over instead of starting from down.
func TestTCPRolePoolReloadKeepsSessions(t *testing.T) {
	a, b := newTCPServer(t, "a"), newTCPServer(t, "b")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg.cred"), []byte("user=xlb password=x"), 0o600))
	y := expandTCP(`
listeners: [{name: db, addr: "127.0.0.1:0", mode: tcp, pool: pg}]
pools:
  - name: pg
    role: primary
    servers: [{name: a, addr: "{a}"}, {name: b, addr: "{b}"}]
    health: {postgres: {credentials_file: pg.cred}}
`, map[string]*tcpServer{"a": a, "b": b})
	cfg, err := config.Parse(filepath.Join(dir, "proxy.yaml"), []byte(y))
	require.NoError(t, err)
	d, err := director.New(cfg)
	require.NoError(t, err)
	defer d.Close()
	reg := prometheus.NewPedanticRegistry()
	p, err := New(cfg, d, Options{Registerer: reg, Gatherer: reg})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.ServeTCP(ln, "db") }()
	defer func() { _ = p.Close(); <-done }()

	_, _, name := dialGreeting(t, ln.Addr().String())
	assert.Empty(t, name, "no server is used before the first check")
	d.SetPostgres("pg/a", health.PostgresStatus{Up: true})
	d.SetPostgres("pg/b", health.PostgresStatus{Up: true, InRecovery: true})
	c, br, name := dialGreeting(t, ln.Addr().String())
	defer c.Close() // before the proxy's stop, which would wait for it
	require.Equal(t, "a", name)
	for i := range 20 {
		next, err := config.Parse(filepath.Join(dir, "proxy.yaml"), []byte(y))
		require.NoError(t, err)
		_, err = p.Apply(next)
		require.NoError(t, err)
		echo(t, c, br, fmt.Sprintf("reload-%d", i))
	}
	time.Sleep(2 * tcpSweep) // let the sweep look at the connection
	echo(t, c, br, "after-reloads")
	assert.Equal(t, 0.0, sumSeries(t, reg, "xlb_l7_tcp_errors_total", "kind", "closed_down"))
	_, cur := p.Running()
	assert.Equal(t, "a", cur.Pool(0).Available(time.Now())[0].Name)
}

// counterOrZero is the counter of name with exactly these label values
// among its labels, 0 while the series does not exist yet.
func counterOrZero(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TCP mode does not parse: bytes that are no protocol at all reach the
// server unchanged; limits.max_conns bounds how many such clients the
// proxy holds, refusing (closing) the next one and counting it.
func TestTCPGarbageForwardedAndMaxConnsProtects(t *testing.T) {
	servers := map[string]*tcpServer{"a": newTCPServer(t, "a"), "b": newTCPServer(t, "b")}
	tp := startTCPProxy(t, tcpConfig("1h", "0")+"limits: {max_conns: 2}\n", servers)
	garbage := []byte{0x00, 0xff, 0x16, 0x03, 0x01, 'G', 'E', 'T', 0x0d, 0x00, 0x80, 0x7f, '\n'}
	var held []net.Conn
	for range 2 {
		c, br, name := dialGreeting(t, tp.addr)
		require.NotEmpty(t, name)
		_, err := c.Write(garbage)
		require.NoError(t, err)
		got := make([]byte, len(garbage))
		_, err = io.ReadFull(br, got)
		require.NoError(t, err)
		assert.Equal(t, garbage, got, "forwarded byte for byte")
		held = append(held, c)
	}
	_, _, name := dialGreeting(t, tp.addr)
	assert.Empty(t, name, "a third client beyond limits.max_conns is closed")
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"pool": "pg", "kind": "limit"}))

	require.NoError(t, held[0].Close())
	require.Eventually(t, func() bool { return tp.ActiveTCP() == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", tp.addr, 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line != ""
	}, 30*time.Second, 50*time.Millisecond, "a slot freed takes a new client")
}

// A connection whose dial finishes after the stop closed the others is
// not tracked (and so closed by forwardTCP), instead of outliving the
// proxy.
func TestTCPConnsRefuseAfterCloseAll(t *testing.T) {
	ts := newTCPConns(4)
	a, b := tcpPair(t)
	early := &tcpConn{client: a, server: b}
	require.True(t, ts.add(early))
	ts.closeAll()
	_, err := a.Read(make([]byte, 1))
	assert.Error(t, err, "closeAll closes what is tracked")
	c, d := tcpPair(t)
	assert.False(t, ts.add(&tcpConn{client: c, server: d}), "nothing is tracked after closeAll")
	ts.remove(early)
	assert.Equal(t, int64(0), ts.active.Load())
}
