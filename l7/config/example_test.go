package config_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
)

func TestLoadExample(t *testing.T) {
	cfg, err := config.Load("../example.yaml")
	require.NoError(t, err)
	assert.Len(t, cfg.Routes, 4)
	assert.Len(t, cfg.Pools, 3)
	assert.Equal(t, config.PolicyP2C, cfg.Pools[0].Policy)
	require.NotNil(t, cfg.Pools[0].Sticky)
	assert.Len(t, cfg.Sticky.Keys[0].Bytes, 32)
	assert.Equal(t, config.DefaultMaxBodyBytes, int(cfg.Routes[1].MaxBodyBytes))
}
