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
	for _, m := range append(api.Modes(), "gre", "dsr", "IPIP", "l2dsr ") {
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
dataplane:
  gue_port: 6080
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

// TestCheckOuterSources: a VIP's L7 hosts of the other family (4-in-6,
// 6-in-4) need the outer source of their family, not the VIP's; gue needs
// the GUE port.
func TestCheckOuterSources(t *testing.T) {
	v4 := api.VIPKey{Addr: mustAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	host6 := state.Backend{Addr: mustAddr("2001:db8::11"), Weight: 1}
	host4 := state.Backend{Addr: mustAddr("10.0.1.1"), Weight: 1}
	only4 := &config.Config{OuterSource: config.OuterSource{IPv4: mustAddr("192.0.2.10")}}
	only6 := &config.Config{OuterSource: config.OuterSource{IPv6: mustAddr("2001:db8::1")}}
	gue6 := &config.Config{OuterSource: only6.OuterSource, Dataplane: config.Dataplane{GUEPort: 6080}}
	for _, tt := range []struct {
		name string
		vip  state.VIP
		cfg  *config.Config
		want string // "" = accepted
	}{
		{"4-in-6 without outer ipv6", state.VIP{Key: v4, Mode: api.ModeIPIP, Backends: []state.Backend{host6}}, only4,
			"vip 203.0.113.10:80/tcp: backend 2001:db8::11 is IPv6, which needs outer_source.ipv6 in the config"},
		{"4-in-6 with outer ipv6 only", state.VIP{Key: v4, Mode: api.ModeIPIP, Backends: []state.Backend{host6}}, only6, ""},
		{"mixed hosts need both", state.VIP{Key: v4, Mode: api.ModeIPIP, Backends: []state.Backend{host4, host6}}, only6,
			"vip 203.0.113.10:80/tcp: an IPv4 VIP needs outer_source.ipv4"},
		{"gue without a port", state.VIP{Key: v4, Mode: api.ModeGUE, Backends: []state.Backend{host6}}, only6,
			"vip 203.0.113.10:80/tcp: forwarding gue needs dataplane.gue_port"},
		{"gue 4-in-6", state.VIP{Key: v4, Mode: api.ModeGUE, Backends: []state.Backend{host6}}, gue6, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.vip.TableSize = 65537
			tt.cfg.Dataplane.TableSize = 65537
			tt.cfg.Health.Port = 80
			err := checkDesired(state.Desired{VIPs: []state.VIP{tt.vip}}, tt.cfg)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, api.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
