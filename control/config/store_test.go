package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreDefaultsToFile(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, StoreFile, cfg.Store)
	assert.Empty(t, cfg.Etcd.Endpoints)
}

func TestStoreEtcd(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"c.pem", "k.pem", "ca.pem"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
	in := minimal + `state:
  store: etcd
  etcd:
    endpoints: [https://10.0.0.5:2379, https://10.0.0.6:2379]
    cert_file: ` + filepath.Join(dir, "c.pem") + `
    key_file: ` + filepath.Join(dir, "k.pem") + `
    ca_file: ` + filepath.Join(dir, "ca.pem") + `
    dial_timeout: 3s
`
	cfg, err := Parse("x.yaml", []byte(in))
	require.NoError(t, err)
	assert.Equal(t, StoreEtcd, cfg.Store)
	assert.Equal(t, []string{"https://10.0.0.5:2379", "https://10.0.0.6:2379"}, cfg.Etcd.Endpoints)
	assert.Equal(t, DefaultEtcdPrefix, cfg.Etcd.Prefix)
	assert.Equal(t, 3*time.Second, cfg.Etcd.DialTimeout)
	assert.Equal(t, filepath.Join(dir, "ca.pem"), cfg.Etcd.CAFile)
}

func TestStoreErrors(t *testing.T) {
	// minimal ends at line 11; "state:" is line 12.
	tests := []struct{ name, in, want string }{
		{"unknown store", "state:\n  store: consul\n", `x.yaml:13: state.store: unknown store "consul" (want file or etcd)`},
		{"etcd without settings", "state:\n  store: etcd\n", "x.yaml:13: state.store: state.store is etcd but state.etcd"},
		{"settings without etcd", "state:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n", `x.yaml:13: state.etcd: etcd settings are given but state.store is "file"`},
		{"no endpoints", "state:\n  store: etcd\n  etcd:\n    prefix: /a/\n", "x.yaml:14: state.etcd.endpoints: at least one etcd endpoint"},
		{"bad endpoint", "state:\n  store: etcd\n  etcd:\n    endpoints:\n      - http://127.0.0.1:2379\n      - 10.0.0.1:2379\n", `x.yaml:17: state.etcd.endpoints[1]: "10.0.0.1:2379" is not an etcd client URL`},
		{"no port", "state:\n  store: etcd\n  etcd:\n    endpoints: [http://etcd1]\n", `state.etcd.endpoints[0]: "http://etcd1" has no port`},
		{"bad prefix", "state:\n  store: etcd\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    prefix: xlb\n", `x.yaml:16: state.etcd.prefix: "xlb" must start and end with /`},
		{"cert without key", "state:\n  store: etcd\n  etcd:\n    endpoints: [https://127.0.0.1:2379]\n    cert_file: /nonexistent/c.pem\n", "state.etcd.cert_file: cert_file and key_file go together"},
		{"missing file", "state:\n  store: etcd\n  etcd:\n    endpoints: [https://127.0.0.1:2379]\n    ca_file: /nonexistent/ca.pem\n", "x.yaml:16: state.etcd.ca_file: /nonexistent/ca.pem does not exist"},
		{"directory for a file", "state:\n  store: etcd\n  etcd:\n    endpoints: [https://127.0.0.1:2379]\n    ca_file: /etc\n", "x.yaml:16: state.etcd.ca_file: /etc is a directory, not a PEM file"},
		{"http with tls", "state:\n  store: etcd\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    ca_file: /etc/hostname\n", "plain http but TLS files are set"},
		{"bad duration", "state:\n  store: etcd\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    dial_timeout: soon\n", `x.yaml:16: state.etcd.dial_timeout: "soon" is not a duration`},
		{"typo", "state:\n  store: etcd\n  etcd:\n    endpoint: [http://127.0.0.1:2379]\n", `x.yaml:15: unknown key "endpoint"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(minimal+tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
