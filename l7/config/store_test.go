package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const storeBase = `listeners: [{addr: "127.0.0.1:8080"}]
routes: [{name: r, pool: p}]
pools: [{name: p, servers: [{name: s1, addr: "127.0.0.1:9001"}]}]
`

func TestStoreSection(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(storeBase))
	require.NoError(t, err)
	assert.Nil(t, cfg.Store.Etcd, "no store: the state file")

	cfg, err = Parse("p.yaml", []byte(storeBase+"store:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"http://127.0.0.1:2379"}, cfg.Store.EtcdConfig.Endpoints)
	assert.Equal(t, DefaultEtcdPrefix, cfg.Store.EtcdConfig.Prefix)

	_, err = Parse("p.yaml", []byte(storeBase+"store:\n  etcd:\n    endpoints: [127.0.0.1:2379]\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `p.yaml:6: store.etcd.endpoints: "127.0.0.1:2379" is not an etcd client URL`)
	_, err = Parse("p.yaml", []byte(storeBase+"store:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    prefx: /a/\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `p.yaml:7: unknown key "prefx"`)
}
