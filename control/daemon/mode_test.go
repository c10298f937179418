package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/l4"
)

// TestModesAgree: the API, the desired state, the config file and the data
// path accept exactly the forwarding modes of api.Modes (the CLI's flag and
// completion are built from it; cmd/xlb tests them).
func TestModesAgree(t *testing.T) {
	key := api.VIPKey{Addr: mustAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	for _, m := range append(api.Modes(), "gue", "dsr", "IPIP", "l2dsr ") {
		t.Run(m, func(t *testing.T) {
			want := slices.Contains(api.Modes(), m)
			apiErr := api.VIPSpec{Key: key, Mode: m}.Validate()
			var d state.Desired
			stateErr := d.AddVIP(api.VIPSpec{Key: key, Mode: m})
			_, cfgErr := config.Parse("x.yaml", []byte(`
interfaces:
  - name: eth0
outer_source:
  ipv4: 192.0.2.10
vips:
  - address: 203.0.113.10
    port: 80
    protocol: tcp
    forwarding: "`+m+`"
`))
			_, dpErr := l4Mode(m)
			for layer, err := range map[string]error{"api": apiErr, "state": stateErr, "config": cfgErr, "data path": dpErr} {
				if want {
					assert.NoError(t, err, "%s rejects mode %q", layer, m)
				} else {
					assert.Error(t, err, "%s accepts mode %q", layer, m)
				}
			}
		})
	}
}

// TestL2DSRVIPReachesTheDataPath: a VIP added with --mode l2dsr through
// the daemon forwards with L2 DSR in the loaded program.
func TestL2DSRVIPReachesTheDataPath(t *testing.T) {
	e := newEnv(t, 1)
	d, stop := e.start(t)
	defer stop()
	key := api.VIPKey{Addr: mustAddr("10.200.0.20"), Port: 80, Proto: api.ProtoTCP}
	// The test's L7 host listens on a loopback address: forced.
	require.NoError(t, d.AddVIP(api.WithForce(context.Background()), api.VIPSpec{Key: key, Mode: api.ModeL2DSR,
		Backends: []api.BackendSpec{{Addr: e.hosts[0].addr}}}))
	eventually(t, "the vip is in the data path", func() bool {
		_, ok := d.Dataplane().VIPMode(keyToL4(key))
		return ok
	})
	mode, _ := d.Dataplane().VIPMode(keyToL4(key))
	assert.Equal(t, l4.ModeL2DSR, mode)
	v, err := d.GetVIP(context.Background(), key)
	require.NoError(t, err)
	assert.Equal(t, api.ModeL2DSR, v.Mode)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
