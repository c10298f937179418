package admin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/health"
)

const roleConfig = `listeners: [{name: write, addr: "127.0.0.1:0", mode: tcp, pool: primary}]
admin: {socket: /tmp/unused.sock}
pools:
  - name: primary
    role: primary
    servers:
      - {name: pg1, addr: "127.0.0.1:9001"}
      - {name: pg2, addr: "127.0.0.1:9002"}
    health:
      postgres: {credentials_file: pg.cred}
`

// The admin API says why a write pool refuses: both servers claim primary.
func TestPoolShowsSplitBrain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(roleConfig), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg.cred"), []byte("user=xlb password=x"), 0o600))
	f := open(t, path)
	_, d := f.p.Running()
	d.SetPostgres("primary/pg1", health.PostgresStatus{Up: true})
	d.SetPostgres("primary/pg2", health.PostgresStatus{Up: true})

	p, err := f.m.Pool("primary", DefaultQuiet)
	require.NoError(t, err)
	assert.Equal(t, "primary", p.Role)
	assert.Contains(t, p.Problem, "split brain: pg1, pg2")
	assert.Equal(t, 0, p.Available)
	s := servers(t, f, "primary")
	require.NotNil(t, s["pg1"].DB)
	assert.False(t, s["pg1"].DB.InRecovery)
	assert.Equal(t, "down", s["pg1"].State)

	d.SetPostgres("primary/pg2", health.PostgresStatus{Up: true, InRecovery: true})
	p, err = f.m.Pool("primary", DefaultQuiet)
	require.NoError(t, err)
	assert.Empty(t, p.Problem)
	assert.Equal(t, 1, p.Available)
}
