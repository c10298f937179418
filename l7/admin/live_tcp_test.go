package admin

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/statuspage/browsertest"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/health"
)

const liveTCPConfig = `listeners:
  - {name: write, addr: "127.0.0.1:0", mode: tcp, pool: primary}
  - {name: read, addr: "127.0.0.1:0", mode: tcp, pool: replicas}
admin: {socket: /tmp/unused.sock}
pools:
  - name: primary
    role: primary
    servers: [{name: pg1, addr: %[1]q}, {name: pg2, addr: %[2]q}]
    health: {postgres: {credentials_file: pg.cred}}
  - name: replicas
    role: replica
    replica_fallback: true
    servers: [{name: pg1, addr: %[1]q}, {name: pg2, addr: %[2]q}]
    health: {postgres: {credentials_file: pg.cred}}
`

// liveTCP is a real proxy with a write and a read TCP endpoint in front
// of two real TCP servers (echoes standing for PostgreSQL), its admin
// listener serving the status page. The PostgreSQL checks are not run:
// the test reports their results to the director as the checker does.
type liveTCP struct {
	liveProxy
	d           *director.Director
	write, read string
}

func startLiveTCP(t *testing.T) *liveTCP {
	t.Helper()
	var addrs []any
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
		addrs = append(addrs, ln.Addr().String())
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(liveTCPConfig, addrs...)), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg.cred"), []byte("user=xlb password=x"), 0o600))
	lp, d := openLiveProxy(t, path)
	lt := &liveTCP{liveProxy: *lp, d: d}
	for _, name := range []string{"write", "read"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		if name == "write" {
			lt.write = ln.Addr().String()
		} else {
			lt.read = ln.Addr().String()
		}
		go func() { _ = lt.p.ServeTCP(ln, name) }()
	}
	return lt
}

// pg reports a PostgreSQL check result for server in both pools.
func (lt *liveTCP) pg(server string, st health.PostgresStatus) {
	lt.d.SetPostgres("primary/"+server, st)
	lt.d.SetPostgres("replicas/"+server, st)
}

func livePool(t *testing.T, st LiveStatus, name string) LivePool {
	t.Helper()
	for _, p := range st.Pools {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no pool %q in the status", name)
	return LivePool{}
}

// dialHold opens a connection through a TCP endpoint and checks it
// reaches an echo server.
func dialHold(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, "ping")
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err, "the endpoint forwards")
	return c
}

// TestLiveStatusShowsTCPPoolProblems: /api/status carries a role pool's
// role, its problem (split brain, a replica pool on its fallback), each
// server's last PostgreSQL check and the TCP connections per pool and
// server.
func TestLiveStatusShowsTCPPoolProblems(t *testing.T) {
	lt := startLiveTCP(t)
	lt.pg("pg1", health.PostgresStatus{Up: true})
	lt.pg("pg2", health.PostgresStatus{Up: true, InRecovery: true, Lag: 1500 * time.Millisecond})
	dialHold(t, lt.write)
	dialHold(t, lt.write)
	dialHold(t, lt.read)

	st := lt.status(t)
	w, r := livePool(t, st, "primary"), livePool(t, st, "replicas")
	assert.Equal(t, "primary", w.Role)
	assert.Empty(t, w.Problem)
	assert.Equal(t, []string{"write"}, w.Listeners)
	assert.Equal(t, 2.0, w.ActiveConnections)
	assert.Equal(t, 1.0, r.ActiveConnections)
	assert.Equal(t, 2.0, serverByName(w, "pg1").ActiveConnections)
	assert.Equal(t, 1.0, serverByName(r, "pg2").ActiveConnections, "reads go to the standby")
	assert.Equal(t, LiveUp, serverByName(w, "pg1").State)
	assert.Equal(t, LiveOutOfRole, serverByName(w, "pg2").State, "a healthy standby is out of a primary pool's role, not down")
	require.NotNil(t, serverByName(r, "pg2").DB)
	assert.True(t, serverByName(r, "pg2").DB.InRecovery)
	assert.InDelta(t, 1.5, serverByName(r, "pg2").DB.LagSeconds, 1e-9)
	assert.Equal(t, 2, st.Summary.OutOfRole)

	// Split brain: the write pool refuses and says why.
	lt.pg("pg2", health.PostgresStatus{Up: true})
	st = lt.status(t)
	w = livePool(t, st, "primary")
	assert.True(t, w.SplitBrain)
	assert.Contains(t, w.Problem, "split brain: pg1, pg2")
	assert.Equal(t, 0, w.Available)
	c, err := net.DialTimeout("tcp", lt.write, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err, "a new connection is refused (closed)")

	// The standby's check fails: the replica pool falls back to the
	// primary and says so; the reason is on the server.
	lt.pg("pg2", health.PostgresStatus{Up: false, Err: "postgres probe: connect: connection refused"})
	st = lt.status(t)
	r = livePool(t, st, "replicas")
	assert.Contains(t, r.Problem, "falling back to primary pg1")
	assert.False(t, livePool(t, st, "primary").SplitBrain)
	s := serverByName(r, "pg2")
	assert.Equal(t, LiveDown, s.State)
	require.NotNil(t, s.DB)
	assert.Contains(t, s.DB.Error, "connection refused")
}

// TestStatusPageShowsTCPPoolProblemsInBrowser opens the status page of a
// proxy with role pools in a headless Chromium: a split brain turns the
// write pool red and the banner says why; the replica pool on its
// fallback is orange; each server shows its database role or why its
// check failed; all of it changes without a reload.
func TestStatusPageShowsTCPPoolProblemsInBrowser(t *testing.T) {
	lt := startLiveTCP(t)
	lt.pg("pg1", health.PostgresStatus{Up: true})
	lt.pg("pg2", health.PostgresStatus{Up: true, InRecovery: true})
	dialHold(t, lt.write)

	b := browsertest.Open(t, lt.adminURL+"/")
	require.Eventually(t, func() bool { return b.RowState("pool:primary") == "up" && b.RowState("pool:replicas") == "up" },
		30*time.Second, 100*time.Millisecond, "healthy role pools are green: %q / %q", b.RowText("pool:primary"), b.RowText("pool:replicas"))
	assert.Contains(t, b.RowText("server:primary/pg1"), "primary")
	assert.Contains(t, b.RowText("server:primary/pg2"), "standby, lag 0.00 s")
	assert.Equal(t, "unknown", b.RowState("server:primary/pg2"), "a standby in the write pool is grey, not red")
	assert.Contains(t, b.RowText("pool:primary"), "write (tcp)")
	assert.Empty(t, b.Text("#banner"))
	b.Mark()

	lt.pg("pg2", health.PostgresStatus{Up: true})
	require.Eventually(t, func() bool { return b.RowState("pool:primary") == "down" }, 30*time.Second, 100*time.Millisecond,
		"a split brain turns the write pool red: %q", b.RowText("pool:primary"))
	assert.Contains(t, b.RowText("pool:primary"), "split brain: pg1, pg2")
	assert.Contains(t, b.Text("#banner"), "Pool primary (role primary): split brain: pg1, pg2")

	lt.pg("pg2", health.PostgresStatus{Up: false, Err: "postgres probe: connect: connection refused"})
	require.Eventually(t, func() bool { return b.RowState("pool:replicas") == "drain" && b.RowState("pool:primary") == "up" },
		30*time.Second, 100*time.Millisecond, "the replica pool on its fallback is orange: %q", b.RowText("pool:replicas"))
	assert.Contains(t, b.Text("#banner"), "Pool replicas (role replica): no usable replica: falling back to primary pg1")
	assert.NotContains(t, b.Text("#banner"), "split brain")
	assert.Contains(t, b.RowText("server:replicas/pg2"), "check failed: postgres probe: connect: connection refused")
	assert.Equal(t, "down", b.RowState("server:replicas/pg2"))
	assert.True(t, strings.Contains(b.Text("#summary"), "Pool replicas (replica)"), "summary: %q", b.Text("#summary"))
	assert.True(t, b.Marked(), "the page was not reloaded")
	b.Screenshot("status-proxy-tcp")
}
