package state

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

func TestRisks(t *testing.T) {
	web := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	ssh := api.VIPKey{Addr: netip.MustParseAddr("192.0.2.1"), Port: 22, Proto: api.ProtoTCP}
	anyPort := api.VIPKey{Addr: netip.MustParseAddr("192.0.2.1"), Proto: api.ProtoUDP}
	b1, b2, b3 := netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.1.3")
	local := func(a netip.Addr) (string, bool) { return "eth0", a == netip.MustParseAddr("192.0.2.1") }
	down := map[netip.Addr]bool{b3: true}
	up := func(_ api.VIPKey, a netip.Addr) bool { return !down[a] }

	start := func() Desired {
		var d Desired
		require.NoError(t, d.AddVIP(api.VIPSpec{Key: web, Backends: []api.BackendSpec{{Addr: b1}, {Addr: b2}, {Addr: b3}}}))
		return d
	}
	tests := []struct {
		name   string
		change func(d *Desired) error
		want   []string
	}{
		{name: "drain one of two active", change: func(d *Desired) error { return d.SetDrain(web, b1, true) }},
		{name: "drain the last active (the other is down)", change: func(d *Desired) error {
			if err := d.SetDrain(web, b1, true); err != nil {
				return err
			}
			return d.SetDrain(web, b2, true)
		}, want: []string{"vip 203.0.113.10:80/tcp: this leaves it without an active backend (10.0.1.1, 10.0.1.2 were the last): every new flow to it would be dropped; established flows keep their host"}},
		{name: "delete both active", change: func(d *Desired) error {
			if err := d.DeleteBackend(web, b1); err != nil {
				return err
			}
			return d.DeleteBackend(web, b2)
		}, want: []string{"vip 203.0.113.10:80/tcp: this leaves it without an active backend (10.0.1.1, 10.0.1.2 were the last): every new flow to it would be dropped; established flows keep their host"}},
		{name: "weight 0 for both active", change: func(d *Desired) error {
			if err := d.SetWeight(web, b1, 0); err != nil {
				return err
			}
			return d.SetWeight(web, b2, 0)
		}, want: []string{"vip 203.0.113.10:80/tcp: this leaves it without an active backend (10.0.1.1, 10.0.1.2 were the last): every new flow to it would be dropped; established flows keep their host"}},
		{name: "delete the vip while it has active backends", change: func(d *Desired) error { return d.DeleteVIP(web) },
			want: []string{"vip 203.0.113.10:80/tcp: deleting it stops forwarding its traffic at once, established connections included (10.0.1.1, 10.0.1.2 are active); " +
				"to retire it without breaking them, drain its backends first (the last one with --force) and delete it once their flows have ended"}},
		{name: "vip on the host's own address", change: func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: ssh}) },
			want: []string{"vip 192.0.2.1:22/tcp: 192.0.2.1 is an address of this host (on eth0): this host's own traffic to tcp port 22 would go to the L7 hosts instead"}},
		{name: "port-wildcard vip on the host's own address", change: func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: anyPort}) },
			want: []string{"vip 192.0.2.1:*/udp: 192.0.2.1 is an address of this host (on eth0): this host's own traffic to every udp port would go to the L7 hosts instead"}},
		{name: "loopback backend", change: func(d *Desired) error {
			return d.AddBackend(web, api.BackendSpec{Addr: netip.MustParseAddr("127.0.0.5")})
		}, want: []string{"vip 203.0.113.10:80/tcp: backend 127.0.0.5 is a loopback address: no L7 host can be reached there"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := start()
			next := cur.Clone()
			require.NoError(t, tt.change(&next))
			assert.Equal(t, tt.want, Risks(cur, next, up, local))
		})
	}
}

// TestRisksDeleteDrainedVIP: a VIP whose backends are drained (or down)
// carries no connection a delete could break: no risk, no --force.
func TestRisksDeleteDrainedVIP(t *testing.T) {
	web := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	b1, b2 := netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.1.2")
	var cur Desired
	require.NoError(t, cur.AddVIP(api.VIPSpec{Key: web, Backends: []api.BackendSpec{{Addr: b1}, {Addr: b2, Drain: true}}}))
	down := func(_ api.VIPKey, a netip.Addr) bool { return a != b1 }
	none := func(netip.Addr) (string, bool) { return "", false }
	next := cur.Clone()
	require.NoError(t, next.DeleteVIP(web))
	assert.Empty(t, Risks(cur, next, down, none), "b1 is down, b2 drained")
}

// TestBackendAddressRefused: backends that can never be an L7 host are
// refused outright, --force or not.
func TestBackendAddressRefused(t *testing.T) {
	vip := api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: api.ProtoTCP}
	for _, a := range []string{"0.0.0.0", "224.0.0.5", "255.255.255.255", "203.0.113.10", "::1"} {
		t.Run(a, func(t *testing.T) {
			var d Desired
			require.NoError(t, d.AddVIP(api.VIPSpec{Key: vip}))
			err := d.AddBackend(vip, api.BackendSpec{Addr: netip.MustParseAddr(a)})
			assert.ErrorIs(t, err, api.ErrInvalid)
			err = (&Desired{}).AddVIP(api.VIPSpec{Key: vip, Backends: []api.BackendSpec{{Addr: netip.MustParseAddr(a)}}})
			assert.ErrorIs(t, err, api.ErrInvalid)
		})
	}
}
