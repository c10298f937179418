package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
)

const tcpOnly = `listeners:
  - name: write
    addr: "127.0.0.1:5432"
    mode: tcp
    pool: primary
pools:
  - name: primary
    role: primary
    servers:
      - {name: pg1, addr: "127.0.0.1:6001"}
      - {name: pg2, addr: "127.0.0.1:6002"}
    health:
      postgres:
        credentials_file: pg.cred
        interval: 1s
        timeout: 500ms
`

func writeCred(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pg.cred"), []byte(content), 0o600))
	return filepath.Join(dir, "proxy.yaml")
}

func TestParseTCPListenerAndPostgresPool(t *testing.T) {
	file := writeCred(t, "user=xlb password=s3cret dbname=postgres\n")
	cfg, err := config.Parse(file, []byte(tcpOnly))
	require.NoError(t, err, "a tcp-only config needs no routes")
	l := cfg.Listeners[0]
	assert.Equal(t, config.ModeTCP, l.Mode)
	assert.Equal(t, config.DefaultDialTimeout, l.ConnectTimeout)
	assert.Equal(t, config.DefaultTunnelIdle, l.IdleTimeout)
	p := cfg.Pools[0]
	require.NotNil(t, p.Health.Postgres)
	assert.Equal(t, "user=xlb password=s3cret dbname=postgres", p.Health.Postgres.Credentials)
	require.NotNil(t, p.CloseOnDown)
	assert.True(t, *p.CloseOnDown, "pools with a role close connections of servers that lose it by default")
	assert.Equal(t, config.AllDownRefuse, p.Health.AllDown, "a PostgreSQL pool never fails open")
}

func TestParseTCPErrors(t *testing.T) {
	file := writeCred(t, "user=xlb password=x")
	cases := []struct {
		name, from, to string
		line           int
		reason         string
	}{
		{"unknown mode", "mode: tcp", "mode: udp", 4, `mode "udp" is not one of http, tcp`},
		{"unknown pool", "pool: primary", "pool: nope", 5, `names unknown pool "nope"`},
		{"bad role", "role: primary", "role: leader", 8, `role "leader" is not one of primary, replica`},
		{"missing credentials", "credentials_file: pg.cred", "credentials_file: missing.cred", 14, "credentials file " + filepath.Join(filepath.Dir(file), "missing.cred") + " does not exist"},
		{"fallback on primary", "role: primary", "role: primary\n    replica_fallback: true", 9, "replica_fallback"},
		{"proxy protocol v1", "role: primary", "role: primary\n    proxy_protocol: v1", 9, `proxy_protocol "v1" is not v2`},
		{"fail open with postgres", "    health:\n", "    health:\n      all_down: fail_open\n", 13, "cannot fail open with a postgres check"},
		{"unknown all_down", "    health:\n", "    health:\n      all_down: maybe\n", 13, `all_down "maybe" is not one of fail_open, refuse`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse(file, []byte(strings.Replace(tcpOnly, tc.from, tc.to, 1)))
			require.Error(t, err)
			var ce *config.Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Contains(t, err.Error(), tc.reason)
			assert.Contains(t, err.Error(), file)
			found := false
			for _, e := range unwrapAll(err) {
				if e.Line == tc.line && strings.Contains(e.Reason, tc.reason) {
					found = true
				}
			}
			assert.True(t, found, "want line %d: %v", tc.line, err)
		})
	}
}

func TestParseProxyProtocol(t *testing.T) {
	file := writeCred(t, "user=xlb password=x")
	cfg, err := config.Parse(file, []byte(strings.Replace(tcpOnly, "role: primary", "role: primary\n    proxy_protocol: v2", 1)))
	require.NoError(t, err)
	assert.Equal(t, config.ProxyProtocolV2, cfg.Pools[0].ProxyProtocol)

	// HTTP routes cannot use such a pool: the header would reach an HTTP
	// server that does not expect it.
	y := strings.Replace(tcpOnly, "    mode: tcp\n    pool: primary\n", "    mode: tcp\n    pool: primary\n  - {name: web, addr: \"127.0.0.1:8080\"}\n", 1)
	y = strings.Replace(y, "role: primary", "role: primary\n    proxy_protocol: v2", 1)
	y += "routes:\n  - {name: all, match: {path_prefix: /}, pool: primary}\n"
	_, err = config.Parse(file, []byte(y))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `route "all" uses pool "primary", which sets proxy_protocol`)
}

func TestParseCredentialsMustNotNameHost(t *testing.T) {
	file := writeCred(t, "host=10.0.0.1 user=xlb")
	_, err := config.Parse(file, []byte(tcpOnly))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `must not contain "host="`)
}

func TestParseRoleNeedsPostgresCheck(t *testing.T) {
	y := strings.Replace(tcpOnly, "    health:\n      postgres:\n        credentials_file: pg.cred\n        interval: 1s\n        timeout: 500ms\n", "", 1)
	_, err := config.Parse("x.yaml", []byte(y))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no health.postgres check")
}

func unwrapAll(err error) []*config.Error {
	var out []*config.Error
	var ce *config.Error
	if errors.As(err, &ce) {
		out = append(out, ce)
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
	}
	return out
}

// A TCP pool that closes a failing server's connections cannot fail open:
// it would close every connection it made while failing open.
func TestFailOpenWithCloseOnDownRefused(t *testing.T) {
	y := `listeners:
  - {name: db, addr: "127.0.0.1:6432", mode: tcp, pool: db}
pools:
  - name: db
    close_on_down: true
    servers: [{name: d1, addr: "127.0.0.1:6001"}]
    health:
      all_down: fail_open
      active: {path: /, interval: 1s, timeout: 500ms}
`
	_, err := config.Parse("proxy.yaml", []byte(y))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `proxy.yaml:8: pool "db" cannot fail open with close_on_down`)
	_, err = config.Parse("proxy.yaml", []byte(strings.Replace(y, "close_on_down: true", "close_on_down: false", 1)))
	require.NoError(t, err)
}
