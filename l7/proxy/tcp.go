package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/balance"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/l7/proxyproto"
)

// TCP listeners (`mode: tcp`) forward whole connections to a pool without
// parsing them: the server is picked once per connection by the pool's
// policy over the same available set HTTP requests use, so drain, health,
// ejection and PostgreSQL roles apply to new connections alike. A
// connection keeps its server until it ends, across reloads.

// tcpSweep is how often open connections are checked against their
// server's health when the pool closes connections of unusable servers.
const tcpSweep = 100 * time.Millisecond

// tcpMetrics are the per-server counters of TCP listeners.
type tcpMetrics struct {
	conns    *prometheus.CounterVec
	active   *prometheus.GaugeVec
	bytes    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newTCPMetrics() *tcpMetrics {
	return &tcpMetrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_tcp_connections_total",
			Help: "TCP connections forwarded to a server.",
		}, []string{"listener", "pool", "server"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xlb_l7_tcp_active_connections",
			Help: "TCP connections open to a server now.",
		}, []string{"pool", "server"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_tcp_bytes_total",
			Help: "Bytes forwarded over TCP connections, by direction (to_server, to_client).",
		}, []string{"pool", "server", "direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlb_l7_tcp_errors_total",
			Help: "TCP connections that failed or were refused, by kind: no_server (none available), connect (dial failed), limit (proxy max_conns), closed_down (closed because the server became unusable). server is empty for no_server and limit.",
		}, []string{"pool", "server", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xlb_l7_tcp_connection_duration_seconds",
			Help:    "Lifetime of forwarded TCP connections.",
			Buckets: []float64{.01, .1, 1, 10, 60, 600, 3600},
		}, []string{"pool", "server"}),
	}
}

func (m *tcpMetrics) register(r prometheus.Registerer, p *Proxy) error {
	for _, c := range []prometheus.Collector{m.conns, m.active, m.bytes, m.errors, m.duration, roleCollector{p}} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// tcpConns tracks the open TCP connections of every generation: the sweep
// closes those of servers that became unusable, shutdown closes the rest.
type tcpConns struct {
	active atomic.Int64
	slots  chan struct{} // bounds the connections to limits.max_conns

	mu     sync.Mutex
	conns  map[*tcpConn]struct{}
	closed bool // set by closeAll: a connection still dialling is not added
	sweep  sync.Once
}

func newTCPConns(maxConns int) *tcpConns {
	return &tcpConns{conns: map[*tcpConn]struct{}{}, slots: make(chan struct{}, maxConns)}
}

// tcpConn is one forwarded connection pair.
type tcpConn struct {
	client, server net.Conn
	b              *pool.Backend
	pool           string
	closeOnDown    bool
	closedDown     atomic.Bool
	once           sync.Once

	// Bytes copied each way, and how much of them the byte counters
	// already have: the sweep adds them while the connection lives, so a
	// long-lived database session shows its traffic before it ends.
	toServer, toClient atomic.Int64
	fmu                sync.Mutex
	sentS, sentC       int64
}

// flush adds the bytes copied since the last flush to the counters.
func (c *tcpConn) flush(m *tcpMetrics) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if s := c.toServer.Load(); s != c.sentS {
		m.bytes.WithLabelValues(c.pool, c.b.Name, "to_server").Add(float64(s - c.sentS))
		c.sentS = s
	}
	if n := c.toClient.Load(); n != c.sentC {
		m.bytes.WithLabelValues(c.pool, c.b.Name, "to_client").Add(float64(n - c.sentC))
		c.sentC = n
	}
}

func (c *tcpConn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// add tracks c; it returns false once the proxy has stopped.
func (ts *tcpConns) add(c *tcpConn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	ts.conns[c] = struct{}{}
	ts.active.Add(1)
	return true
}

func (ts *tcpConns) remove(c *tcpConn) {
	ts.mu.Lock()
	delete(ts.conns, c)
	ts.mu.Unlock()
	ts.active.Add(-1)
}

func (ts *tcpConns) closeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.closed = true
	for c := range ts.conns {
		c.close()
	}
}

// closeDown flushes the byte counters of open connections and closes
// those whose pool asks for it and whose server
// is down (its health check failed, or it no longer has the pool's role).
// A draining server keeps its connections: draining only stops new ones.
func (ts *tcpConns) closeDown(m *tcpMetrics) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for c := range ts.conns {
		c.flush(m)
		if c.closeOnDown && !c.b.Up() && c.closedDown.CompareAndSwap(false, true) {
			m.errors.WithLabelValues(c.pool, c.b.Name, "closed_down").Inc()
			c.close()
		}
	}
}

func (ts *tcpConns) runSweep(ctx context.Context, m *tcpMetrics) {
	t := time.NewTicker(tcpSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ts.closeDown(m)
		}
	}
}

// ActiveTCP is the number of TCP connections open now.
func (p *Proxy) ActiveTCP() int64 { return p.tcp.active.Load() }

// ServeTCP forwards the connections accepted on ln to the pool of the TCP
// listener named name in the running config, until ln is closed or the
// proxy stops.
func (p *Proxy) ServeTCP(ln net.Listener, name string) error {
	if err := p.track(ln); err != nil {
		return err
	}
	p.tcp.sweep.Do(func() { go p.tcp.runSweep(p.tcpCtx, p.tcpMetrics) })
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if p.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		select {
		case p.tcp.slots <- struct{}{}:
		default:
			p.tcpMetrics.errors.WithLabelValues(p.tcpPoolName(name), "", "limit").Inc()
			_ = c.Close()
			continue
		}
		go func() {
			defer func() { <-p.tcp.slots }()
			defer recoverTo(p.log)
			p.forwardTCP(c, name)
		}()
	}
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// tcpListener finds the TCP listener named name in cfg.
func tcpListener(cfg *config.Config, name string) (config.Listener, bool) {
	for _, l := range cfg.Listeners {
		if l.Name == name && l.Mode == config.ModeTCP {
			return l, true
		}
	}
	return config.Listener{}, false
}

func (p *Proxy) tcpPoolName(name string) string {
	l, _ := tcpListener(p.gen.Load().cfg, name)
	return l.Pool
}

// forwardTCP picks a server for client and copies bytes both ways until
// either side closes, the pair is idle for the listener's idle_timeout or
// the server becomes unusable (close_on_down).
func (p *Proxy) forwardTCP(client net.Conn, name string) {
	start := time.Now()
	g := p.gen.Load()
	l, ok := tcpListener(g.cfg, name)
	if !ok {
		// The listener's socket outlives a reload that removed it; the
		// next start drops it.
		_ = client.Close()
		return
	}
	idx, ok := g.dir.PoolIndex(l.Pool)
	if !ok {
		_ = client.Close()
		return
	}
	pc := g.cfg.Pools[idx]
	pl := g.dir.Pool(idx)
	b := g.dir.PickConn(idx, pc.MaxConnsPerServer, clientKey(client))
	if b == nil {
		p.tcpMetrics.errors.WithLabelValues(pc.Name, "", "no_server").Inc()
		p.log.Debug("tcp connection refused: no server available", "listener", name, "pool", pc.Name, "reason", pl.Problem())
		_ = client.Close()
		return
	}
	defer b.Release()
	server, err := net.DialTimeout("tcp", b.Addr, l.ConnectTimeout)
	if err != nil {
		pl.Report(b, true, 0, time.Now())
		p.tcpMetrics.errors.WithLabelValues(pc.Name, b.Name, "connect").Inc()
		p.log.Debug("tcp connect failed", "pool", pc.Name, "backend", b.Name, "error", err)
		_ = client.Close()
		return
	}
	if pc.ProxyProtocol == config.ProxyProtocolV2 {
		// The client's address and the one it connected to, before any
		// of its bytes; bounded like the dial.
		_ = server.SetWriteDeadline(time.Now().Add(l.ConnectTimeout))
		_, err := server.Write(proxyproto.Header(client.RemoteAddr(), client.LocalAddr()))
		_ = server.SetWriteDeadline(time.Time{})
		if err != nil {
			pl.Report(b, true, 0, time.Now())
			p.tcpMetrics.errors.WithLabelValues(pc.Name, b.Name, "connect").Inc()
			p.log.Debug("tcp proxy protocol header not sent", "pool", pc.Name, "backend", b.Name, "error", err)
			_ = server.Close()
			_ = client.Close()
			return
		}
	}
	// A connection made counts as a success for passive health.
	pl.Report(b, false, 200, time.Time{})
	c := &tcpConn{client: client, server: server, b: b, pool: pc.Name, closeOnDown: pc.CloseOnDown != nil && *pc.CloseOnDown}
	if !p.tcp.add(c) {
		c.close()
		return
	}
	defer p.tcp.remove(c)
	m := p.tcpMetrics
	m.conns.WithLabelValues(name, pc.Name, b.Name).Inc()
	active := m.active.WithLabelValues(pc.Name, b.Name)
	active.Inc()
	defer active.Dec()

	var last atomic.Int64
	last.Store(start.UnixNano())
	// One direction in a goroutine of its own, the other in this one: the
	// first to end closes both sockets, which ends the other.
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.close()
		defer recoverTo(p.log)
		_ = relay(server, client, l.IdleTimeout, &last, &c.toServer)
	}()
	_ = relay(client, server, l.IdleTimeout, &last, &c.toClient)
	c.close()
	<-done
	c.flush(m)
	m.duration.WithLabelValues(pc.Name, b.Name).Observe(time.Since(start).Seconds())
}

// clientKey hashes the client's address for the hash policy.
func clientKey(c net.Conn) uint64 {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return 0
	}
	a := ap.Addr().Unmap().As16()
	return balance.HashBytes(a[:])
}

// shutdownTCP waits until the open TCP connections end or ctx is done,
// then closes what is left and waits (briefly: closed sockets end their
// copies at once) for their accounting.
func (p *Proxy) shutdownTCP(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for p.tcp.active.Load() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	p.tcp.closeAll()
	deadline := time.Now().Add(time.Second)
	for p.tcp.active.Load() > 0 && time.Now().Before(deadline) {
		<-t.C
	}
}

var (
	splitBrainDesc = prometheus.NewDesc("xlb_l7_pool_split_brain",
		"1 while more than one server of a pool with a PostgreSQL role claims to be primary; the pool then refuses new connections.",
		[]string{"pool"}, nil)
	inRecoveryDesc = prometheus.NewDesc("xlb_l7_pg_in_recovery",
		"pg_is_in_recovery() of a server's last successful PostgreSQL check (1 standby, 0 primary).",
		[]string{"pool", "server"}, nil)
	lagDesc = prometheus.NewDesc("xlb_l7_pg_replication_lag_seconds",
		"Replay lag of a standby at its last successful PostgreSQL check.",
		[]string{"pool", "server"}, nil)
)

// roleCollector reports the PostgreSQL view of the running generation's
// pools at scrape time.
type roleCollector struct{ p *Proxy }

func (c roleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- splitBrainDesc
	ch <- inRecoveryDesc
	ch <- lagDesc
}

func (c roleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, pl := range c.p.gen.Load().dir.Pools() {
		if pl.Role() == "" {
			continue
		}
		split := 0.0
		if pl.SplitBrain() {
			split = 1
		}
		ch <- prometheus.MustNewConstMetric(splitBrainDesc, prometheus.GaugeValue, split, pl.Name)
		for _, b := range pl.Backends {
			st := b.DB()
			if st == nil {
				continue
			}
			rec := 0.0
			if st.InRecovery {
				rec = 1
			}
			ch <- prometheus.MustNewConstMetric(inRecoveryDesc, prometheus.GaugeValue, rec, pl.Name, b.Name)
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, st.Lag.Seconds(), pl.Name, b.Name)
		}
	}
}
