package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
)

// pgBin finds the directory of the PostgreSQL server binaries: on PATH or
// in Debian's /usr/lib/postgresql/<major>/bin.
func pgBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(m) > 0 {
		return filepath.Dir(m[len(m)-1])
	}
	t.Skip("PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found; install Debian's postgresql package (make deps)")
	return ""
}

const pgPassword = "xlb-test-pw"

// pgCluster is one PostgreSQL instance in a temp dir on a loopback port,
// run as the unprivileged postgres user when the test runs as root.
type pgCluster struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	as   []string // command prefix that drops root
}

// freePort finds a loopback port for a PostgreSQL instance, below the
// kernel's ephemeral range when there is room: a port the kernel hands out
// as an outgoing connection's source port (and keeps through TIME_WAIT)
// cannot be bound, so one found free by listening on :0 could be taken
// again before the server, started seconds later, binds it.
func freePort(t *testing.T) int {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(b), &lo)
	}
	for range 100 {
		if lo < 11000 {
			break
		}
		p := 10000 + rand.IntN(lo-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = ln.Close()
		return p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pgRoot makes the temp dir the clusters live in, owned by the user they
// run as.
func pgRoot(t *testing.T) (string, []string) {
	t.Helper()
	root, err := os.MkdirTemp("", "xlbpgtest-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if os.Geteuid() != 0 {
		return root, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("running as root and no postgres user to run the clusters as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	require.NoError(t, os.Chown(root, uid, gid))
	return root, []string{"runuser", "-u", "postgres", "--"}
}

func (c *pgCluster) run(env []string, name string, args ...string) {
	c.t.Helper()
	argv := append(append([]string{}, c.as...), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	require.NoError(c.t, err, "%s %s: %s", name, strings.Join(args, " "), out)
}

func (c *pgCluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on", c.port, c.dir)
	c.run(nil, "pg_ctl", "-D", c.dir, "-o", opts, "-l", c.dir+".log", "-w", "-t", "30", "start")
}

func (c *pgCluster) stop() {
	c.t.Helper()
	c.run(nil, "pg_ctl", "-D", c.dir, "-m", "fast", "-w", "-t", "30", "stop")
}

// newPrimary initialises and starts a primary with SCRAM authentication
// on TCP in a fresh root dir (pgRoot), which it returns for the replicas
// and the proxy; it is stopped when the test ends. It skips the test in
// -short runs and where PostgreSQL is not installed.
func newPrimary(t *testing.T) (string, *pgCluster) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL clusters")
	}
	bin := pgBin(t)
	root, as := pgRoot(t)
	c := &pgCluster{t: t, bin: bin, dir: filepath.Join(root, "primary"), port: freePort(t), as: as}
	pw := filepath.Join(root, "pw")
	require.NoError(t, os.WriteFile(pw, []byte(pgPassword+"\n"), 0o644))
	c.run(nil, "initdb", "-D", c.dir, "-U", "postgres", "--pwfile", pw,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
	c.start()
	t.Cleanup(func() { c.stopQuietly() })
	return root, c
}

// newReplica clones primary with pg_basebackup -R (a streaming standby)
// and starts it.
func newReplica(t *testing.T, primary *pgCluster, root string) *pgCluster {
	t.Helper()
	return newReplicaNamed(t, primary, root, "replica")
}

// newReplicaNamed is newReplica in the directory name under root.
func newReplicaNamed(t *testing.T, primary *pgCluster, root, name string) *pgCluster {
	t.Helper()
	c := &pgCluster{t: t, bin: primary.bin, dir: filepath.Join(root, name), port: freePort(t), as: primary.as}
	c.run([]string{"PGPASSWORD=" + pgPassword}, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port),
		"-U", "postgres", "-D", c.dir, "-R", "-X", "stream", "--no-sync")
	c.start()
	t.Cleanup(func() { c.stopQuietly() })
	return c
}

func (c *pgCluster) stopQuietly() {
	argv := append(append([]string{}, c.as...), filepath.Join(c.bin, "pg_ctl"), "-D", c.dir, "-m", "immediate", "-w", "stop")
	_ = exec.Command(argv[0], argv[1:]...).Run()
}

// pgConnect connects to addr through whatever is listening there.
func pgConnect(ctx context.Context, addr string) (*pgx.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres password=%s dbname=postgres connect_timeout=3 sslmode=disable", host, port, pgPassword))
}

// serverPort is the port of the PostgreSQL instance a session reached.
func serverPort(t *testing.T, ctx context.Context, c *pgx.Conn) int {
	t.Helper()
	var p int
	require.NoError(t, c.QueryRow(ctx, "SELECT inet_server_port()").Scan(&p))
	return p
}

const pgProxyYAML = `
listeners:
  - {name: write, addr: "127.0.0.1:0", mode: tcp, pool: primary, connect_timeout: 1s}
  - {name: read, addr: "127.0.0.1:0", mode: tcp, pool: replicas, connect_timeout: 1s}
pools:
  - name: primary
    role: primary
    policy: least_conn
    servers:
      - {name: pg1, addr: "127.0.0.1:%P1%"}
      - {name: pg2, addr: "127.0.0.1:%P2%"}
    health:
      postgres: {credentials_file: pg.cred, interval: 500ms, timeout: 500ms, rise: 1, fall: 3}
  - name: replicas
    role: replica
    replica_fallback: true
    servers:
      - {name: pg1, addr: "127.0.0.1:%P1%"}
      - {name: pg2, addr: "127.0.0.1:%P2%"}
    health:
      postgres: {credentials_file: pg.cred, interval: 500ms, timeout: 500ms, rise: 1, fall: 3, max_lag: 30s}
`

// pgProxy runs a proxy with the write and read endpoints, its health
// checks started.
type pgProxy struct {
	*Proxy
	reg         *prometheus.Registry
	write, read string
}

func startPGProxy(t *testing.T, root string, p1, p2 int) *pgProxy {
	t.Helper()
	return startPGProxyYAML(t, root, strings.NewReplacer("%P1%", strconv.Itoa(p1), "%P2%", strconv.Itoa(p2)).Replace(pgProxyYAML))
}

// startPGProxyYAML runs a proxy on config y, whose tcp listeners are
// named write and read, with the health check's credentials in pg.cred.
func startPGProxyYAML(t *testing.T, root, y string) *pgProxy {
	t.Helper()
	dir := filepath.Join(root, "proxy")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg.cred"),
		[]byte("user=postgres password="+pgPassword+" dbname=postgres sslmode=disable\n"), 0o600))
	cfg, err := config.Parse(filepath.Join(dir, "proxy.yaml"), []byte(y))
	require.NoError(t, err)
	dir2, err := director.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, dir2.Start(ctx))
	t.Cleanup(func() { cancel(); _ = dir2.Close() })
	reg := prometheus.NewPedanticRegistry()
	p, err := New(cfg, dir2, Options{Registerer: reg, Gatherer: reg})
	require.NoError(t, err)
	out := &pgProxy{Proxy: p, reg: reg}
	done := make(chan struct{}, 2)
	for _, name := range []string{"write", "read"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		if name == "write" {
			out.write = ln.Addr().String()
		} else {
			out.read = ln.Addr().String()
		}
		go func() {
			defer func() { done <- struct{}{} }()
			_ = p.ServeTCP(ln, name)
		}()
	}
	t.Cleanup(func() {
		_ = p.Close()
		<-done
		<-done
	})
	return out
}

// TestPostgresWriteReadEndpointsFollowFailover runs a real primary and a
// streaming replica and checks the write and read endpoints through a
// promotion and a split brain.
func TestPostgresWriteReadEndpointsFollowFailover(t *testing.T) {
	root, pg1 := newPrimary(t)
	pg2 := newReplica(t, pg1, root)
	tp := startPGProxy(t, root, pg1.port, pg2.port)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, dir := tp.Running()
	wpool, rpool := dir.Pool(0), dir.Pool(1)
	require.Eventually(t, func() bool {
		// An empty problem: the read pool is not on its fallback either.
		return len(wpool.Available(time.Now())) == 1 && len(rpool.Available(time.Now())) == 1 &&
			wpool.Problem() == "" && rpool.Problem() == ""
	}, 30*time.Second, 50*time.Millisecond, "write pool: %s; read pool: %s", wpool.Problem(), rpool.Problem())
	assert.Equal(t, "pg1", wpool.Available(time.Now())[0].Name)
	assert.Equal(t, "pg2", rpool.Available(time.Now())[0].Name)

	// Writes through the write endpoint land on the primary.
	w, err := pgConnect(ctx, tp.write)
	require.NoError(t, err)
	assert.Equal(t, pg1.port, serverPort(t, ctx, w))
	_, err = w.Exec(ctx, "CREATE TABLE orders (id int primary key)")
	require.NoError(t, err)
	_, err = w.Exec(ctx, "INSERT INTO orders VALUES (1)")
	require.NoError(t, err)

	// Reads through the read endpoint land on the replica and see the
	// write once it is streamed.
	r, err := pgConnect(ctx, tp.read)
	require.NoError(t, err)
	assert.Equal(t, pg2.port, serverPort(t, ctx, r))
	var inRecovery bool
	require.NoError(t, r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	assert.True(t, inRecovery)
	require.Eventually(t, func() bool {
		var n int
		return r.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n) == nil && n == 1
	}, 30*time.Second, 50*time.Millisecond)
	_ = r.Close(ctx)

	// Failover: stop the primary, promote the replica. The write endpoint
	// follows by itself; the old session is closed.
	pg1.stop()
	start := time.Now()
	pg2.run(nil, "pg_ctl", "-D", pg2.dir, "-w", "-t", "30", "promote")
	var w2 *pgx.Conn
	require.Eventually(t, func() bool {
		c, err := pgConnect(ctx, tp.write)
		if err != nil {
			return false
		}
		if _, err := c.Exec(ctx, "INSERT INTO orders VALUES (2)"); err != nil {
			_ = c.Close(ctx)
			return false
		}
		w2 = c
		return true
	}, 30*time.Second, 20*time.Millisecond, "write pool: %s", wpool.Problem())
	t.Logf("write endpoint reached the promoted server %s after promote began (check interval 500ms)", time.Since(start))
	assert.Equal(t, pg2.port, serverPort(t, ctx, w2))
	assert.Error(t, w.Ping(ctx), "the session to the old primary is gone")

	// The read endpoint has no replica left and falls back to the primary.
	require.Eventually(t, func() bool { return strings.Contains(rpool.Problem(), "falling back to primary pg2") },
		30*time.Second, 20*time.Millisecond, "read pool: %s", rpool.Problem())
	r2, err := pgConnect(ctx, tp.read)
	require.NoError(t, err)
	assert.Equal(t, pg2.port, serverPort(t, ctx, r2))
	_ = r2.Close(ctx)

	// Split brain: the old primary comes back, still a primary. The write
	// pool refuses new connections and says why.
	pg1.start()
	require.Eventually(t, wpool.SplitBrain, 30*time.Second, 20*time.Millisecond, "write pool: %s", wpool.Problem())
	assert.Contains(t, wpool.Problem(), "split brain: pg1, pg2")
	assert.Empty(t, wpool.Available(time.Now()))
	_, err = pgConnect(ctx, tp.write)
	assert.Error(t, err, "no write reaches either primary during a split brain")
	assert.Equal(t, 1.0, metricValue(t, tp.reg, "xlb_l7_pool_split_brain", map[string]string{"pool": "primary"}))
	assert.GreaterOrEqual(t, metricValue(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"pool": "primary", "kind": "no_server"}), 1.0)
	require.Eventually(t, func() bool { return w2.Ping(ctx) != nil }, 30*time.Second, 20*time.Millisecond,
		"sessions to a primary that lost its role are closed")
}

// A server that accepts TCP but never answers the startup message is
// marked down by the check's timeout; wrong credentials mark it down with
// the reason.
func TestPostgresCheckFaults(t *testing.T) {
	root, pg1 := newPrimary(t)

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	tp := startPGProxy(t, root, pg1.port, silent.Addr().(*net.TCPAddr).Port)
	_, dir := tp.Running()
	wpool := dir.Pool(0)
	require.Eventually(t, func() bool {
		st := wpool.ByName("pg2").DB()
		return st != nil && !st.Up && st.Err != ""
	}, 30*time.Second, 20*time.Millisecond)
	assert.Contains(t, wpool.ByName("pg2").DB().Err, "connect")
	require.Eventually(t, func() bool { return len(wpool.Available(time.Now())) == 1 }, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, "pg1", wpool.Available(time.Now())[0].Name)

	// Wrong credentials: a config whose file has another password.
	bad := filepath.Join(root, "bad")
	require.NoError(t, os.Mkdir(bad, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(bad, "pg.cred"), []byte("user=postgres password=wrong dbname=postgres sslmode=disable"), 0o600))
	// pg2 is the silent server: a pool holds an address once.
	y := strings.NewReplacer("%P1%", strconv.Itoa(pg1.port), "%P2%", strconv.Itoa(silent.Addr().(*net.TCPAddr).Port)).Replace(pgProxyYAML)
	cfg, err := config.Parse(filepath.Join(bad, "proxy.yaml"), []byte(y))
	require.NoError(t, err)
	d, err := director.New(cfg)
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	defer d.Close()
	require.Eventually(t, func() bool {
		st := d.Pool(0).ByName("pg1").DB()
		return st != nil && !st.Up
	}, 30*time.Second, 20*time.Millisecond)
	assert.Contains(t, d.Pool(0).ByName("pg1").DB().Err, "password authentication failed")
	assert.NotContains(t, d.Pool(0).ByName("pg1").DB().Err, "wrong", "the reason never quotes the password")
	assert.Empty(t, d.Pool(0).Available(time.Now()))
}

// pgProxyFront stands for a PROXY-aware frontend of PostgreSQL (a pooler
// or HAProxy with accept-proxy): it demands a PROXY v2 header on every
// connection, records it, and relays the rest to the server.
type pgProxyFront struct {
	ln      net.Listener
	mu      sync.Mutex
	local   int              // LOCAL headers: the proxy's health checks
	clients []netip.AddrPort // sources of PROXY headers
	refused int
}

func newPGProxyFront(t *testing.T, server string) *pgProxyFront {
	t.Helper()
	f := &pgProxyFront{}
	f.ln = serveProxyV2(t, func(h proxyHeader, err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case err != nil:
			f.refused++
		case h.local:
			f.local++
		default:
			f.clients = append(f.clients, h.src)
		}
	}, func(c net.Conn, br *bufio.Reader, _ proxyHeader) {
		s, err := net.DialTimeout("tcp", server, 5*time.Second)
		if err != nil {
			return
		}
		defer s.Close()
		go func() { _, _ = io.Copy(s, br); _ = s.Close() }()
		_, _ = io.Copy(c, s)
	})
	return f
}

// TestPostgresBehindProxyProtocol: with proxy_protocol: v2 the PostgreSQL
// check still works in front of a frontend that demands the header (it
// sends a LOCAL one), and a client's session goes through with its own
// address in the header.
func TestPostgresBehindProxyProtocol(t *testing.T) {
	root, pg1 := newPrimary(t)
	front := newPGProxyFront(t, "127.0.0.1:"+strconv.Itoa(pg1.port))
	y := `
listeners:
  - {name: write, addr: "127.0.0.1:0", mode: tcp, pool: primary, connect_timeout: 1s}
pools:
  - name: primary
    role: primary
    proxy_protocol: v2
    servers:
      - {name: pg1, addr: "` + front.ln.Addr().String() + `"}
    health:
      postgres: {credentials_file: pg.cred, interval: 500ms, timeout: 500ms, rise: 1, fall: 3}
`
	tp := startPGProxyYAML(t, root, y)
	_, dir := tp.Running()
	wpool := dir.Pool(0)
	require.Eventually(t, func() bool { return len(wpool.Available(time.Now())) == 1 }, 30*time.Second, 50*time.Millisecond,
		"the check through the PROXY-aware frontend finds the primary; pool: %s", wpool.Problem())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := pgConnect(ctx, tp.write)
	require.NoError(t, err)
	defer w.Close(ctx)
	assert.Equal(t, pg1.port, serverPort(t, ctx, w))
	client := w.PgConn().Conn().LocalAddr().String()

	front.mu.Lock()
	defer front.mu.Unlock()
	assert.Zero(t, front.refused, "every connection, checks included, carried a header")
	assert.GreaterOrEqual(t, front.local, 1, "the checks send LOCAL headers")
	require.Len(t, front.clients, 1)
	assert.Equal(t, client, front.clients[0].String(), "the frontend sees the client's address")
}

const pgReplicasYAML = `
listeners:
  - {name: write, addr: "127.0.0.1:0", mode: tcp, pool: primary, connect_timeout: 1s}
  - {name: read, addr: "127.0.0.1:0", mode: tcp, pool: replicas, connect_timeout: 1s}
pools:
  - name: primary
    role: primary
    servers: [{name: pg1, addr: "127.0.0.1:%P1%"}]
    health:
      postgres: {credentials_file: pg.cred, interval: 1s, timeout: 1s, rise: 1, fall: 2}
  - name: replicas
    role: replica
    policy: least_conn
    servers:
      - {name: pg1, addr: "127.0.0.1:%P1%"}
      - {name: pg2, addr: "127.0.0.1:%P2%"}
      - {name: pg3, addr: "127.0.0.1:%P3%"}
    health:
      # Generous: a busy machine must not see a slow check as a stopped
      # server (a stopped one refuses at once).
      postgres: {credentials_file: pg.cred, interval: 1s, timeout: 1s, rise: 1, fall: 2, max_lag: 1h}
`

// TestPostgresStoppedReplicaGetsNoConnection runs a primary and two
// streaming replicas behind the read endpoint (no fallback to the
// primary), stops one replica and counts where new sessions go: none to
// the stopped one, whose open sessions are closed; once both replicas are
// stopped the read endpoint refuses and never sends a read to the primary,
// until a reload turns replica_fallback on and the reads go there.
func TestPostgresStoppedReplicaGetsNoConnection(t *testing.T) {
	root, pg1 := newPrimary(t)
	pg2 := newReplicaNamed(t, pg1, root, "replica2")
	pg3 := newReplicaNamed(t, pg1, root, "replica3")
	y := strings.NewReplacer("%P1%", strconv.Itoa(pg1.port), "%P2%", strconv.Itoa(pg2.port), "%P3%", strconv.Itoa(pg3.port)).Replace(pgReplicasYAML)
	tp := startPGProxyYAML(t, root, y)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, dir := tp.Running()
	rpool := dir.Pool(1)
	require.Eventually(t, func() bool { return len(rpool.Available(time.Now())) == 2 && rpool.Problem() == "" },
		30*time.Second, 50*time.Millisecond, "read pool: %s", rpool.Problem())

	byPort := map[int]string{pg1.port: "pg1", pg2.port: "pg2", pg3.port: "pg3"}
	conns := func() map[string]float64 {
		out := map[string]float64{}
		for _, s := range []string{"pg1", "pg2", "pg3"} {
			out[s] = counterOrZero(t, tp.reg, "xlb_l7_tcp_connections_total", map[string]string{"pool": "replicas", "server": s})
		}
		return out
	}
	// open connects n sessions through the read endpoint and counts the
	// server each reached, as the server itself reports it.
	open := func(n int) (map[string]int, []*pgx.Conn) {
		got := map[string]int{}
		var cs []*pgx.Conn
		for range n {
			c, err := pgConnect(ctx, tp.read)
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close(context.Background()) })
			got[byPort[serverPort(t, ctx, c)]]++
			cs = append(cs, c)
		}
		return got, cs
	}

	held, sessions := open(6)
	assert.Equal(t, map[string]int{"pg2": 3, "pg3": 3}, held, "least_conn spreads reads over both replicas, none to the primary")
	onPG3 := []*pgx.Conn{}
	for _, c := range sessions {
		if serverPort(t, ctx, c) == pg3.port {
			onPG3 = append(onPG3, c)
		}
	}
	require.Len(t, onPG3, 3)

	pg3.stop()
	require.Eventually(t, func() bool {
		av := rpool.Available(time.Now())
		return len(av) == 1 && av[0].Name == "pg2"
	}, 30*time.Second, 50*time.Millisecond, "the stopped replica leaves the read pool")
	st := rpool.ByName("pg3").DB()
	require.NotNil(t, st)
	assert.False(t, st.Up)
	assert.NotEmpty(t, st.Err, "the reason is kept")
	before := conns()

	got, _ := open(10)
	assert.Equal(t, map[string]int{"pg2": 10}, got, "every new read goes to the remaining replica")
	after := conns()
	assert.Equal(t, before["pg3"], after["pg3"], "no new connection went to the stopped replica")
	assert.Equal(t, before["pg1"], after["pg1"], "nor to the primary")
	assert.Equal(t, before["pg2"]+10, after["pg2"])
	assert.Equal(t, 0.0, after["pg1"], "no read ever reached the primary")
	for _, c := range onPG3 {
		assert.Error(t, c.Ping(ctx), "a session to the stopped replica is gone")
	}

	// Both replicas stopped, no fallback configured: the read endpoint
	// refuses and says why; the primary still gets no read.
	pg2.stop()
	require.Eventually(t, func() bool { return len(rpool.Available(time.Now())) == 0 }, 30*time.Second, 50*time.Millisecond)
	assert.Contains(t, rpool.Problem(), "no usable replica")
	refusedBefore := counterOrZero(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"pool": "replicas", "kind": "no_server"})
	for range 3 {
		_, err := pgConnect(ctx, tp.read)
		assert.Error(t, err, "no replica: the read endpoint refuses")
	}
	// At least one refusal per session attempt (a client may retry).
	assert.GreaterOrEqual(t, counterOrZero(t, tp.reg, "xlb_l7_tcp_errors_total", map[string]string{"pool": "replicas", "kind": "no_server"}), refusedBefore+3)
	assert.Equal(t, 0.0, conns()["pg1"], "without replica_fallback no read goes to the primary")
	w, err := pgConnect(ctx, tp.write)
	require.NoError(t, err, "the write endpoint is unaffected")
	assert.Equal(t, pg1.port, serverPort(t, ctx, w))
	_ = w.Close(ctx)

	// Configured to fall back (a reload): reads now go to the primary.
	cfg, err := config.Parse(filepath.Join(root, "proxy", "proxy.yaml"),
		[]byte(strings.Replace(y, "    role: replica\n", "    role: replica\n    replica_fallback: true\n", 1)))
	require.NoError(t, err)
	_, err = tp.Apply(cfg)
	require.NoError(t, err)
	_, dir = tp.Running()
	rpool = dir.Pool(1)
	require.Eventually(t, func() bool { return strings.Contains(rpool.Problem(), "falling back to primary pg1") },
		30*time.Second, 50*time.Millisecond, "read pool: %s", rpool.Problem())
	got, _ = open(2)
	assert.Equal(t, map[string]int{"pg1": 2}, got, "with replica_fallback the reads fall back to the primary")
}
