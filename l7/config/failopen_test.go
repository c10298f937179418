package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/failopen"
	"github.com/xlbproject/xlb/l7/config"
)

const failOpenPool = `listeners:
  - {name: web, addr: "127.0.0.1:8080"}
pools:
  - name: app
    servers: [{name: a1, addr: "127.0.0.1:6001"}, {name: a2, addr: "127.0.0.1:6002"}]
    health:
      all_down: fail_open
      fail_open_below: 50%
routes:
  - {name: all, match: {path_prefix: /}, pool: app}
`

// TestFailOpenBelow: a pool's panic threshold is a percentage that only
// means something with all_down: fail_open; unset, the pool fails open
// only while none of its servers passes.
func TestFailOpenBelow(t *testing.T) {
	cfg, err := config.Parse("proxy.yaml", []byte(failOpenPool))
	require.NoError(t, err)
	assert.Equal(t, failopen.Policy{On: true, Below: 50}, cfg.Pools[0].Health.FailOpen())

	cfg, err = config.Parse("proxy.yaml", []byte(strings.Replace(failOpenPool, "      fail_open_below: 50%\n", "", 1)))
	require.NoError(t, err)
	assert.Equal(t, failopen.Policy{On: true}, cfg.Pools[0].Health.FailOpen())

	tests := []struct{ name, from, to, want string }{
		{"a count", "50%", "2", `proxy.yaml:8: pool "app" fail_open_below: "2" is not a percentage such as 50%`},
		{"zero", "50%", "0%", `proxy.yaml:8: pool "app" fail_open_below: 0% is not within 1%..100%`},
		{"over 100", "50%", "120%", `proxy.yaml:8: pool "app" fail_open_below: 120% is not within 1%..100%`},
		{"without fail_open", "all_down: fail_open", "all_down: refuse", `proxy.yaml:8: pool "app" fail_open_below needs all_down: fail_open (with refuse, the pool never fails open)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("proxy.yaml", []byte(strings.Replace(failOpenPool, tt.from, tt.to, 1)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
