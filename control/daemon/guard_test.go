package daemon

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// TestGuardRails: through the daemon's API, changes that cut traffic are
// refused with what would happen, and done with --force; addresses that
// can never be an L7 host are refused either way.
func TestGuardRails(t *testing.T) {
	e := newEnv(t, 2)
	d, stop := e.start(t)
	defer stop()
	ctx := context.Background()
	force := api.WithForce(ctx)
	vip, err := api.ParseVIPKey(vipText)
	require.NoError(t, err)
	h1, h2 := e.hosts[0].addr, e.hosts[1].addr
	eventually(t, "both backends active", func() bool {
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		return v.Backends[0].State == api.StateActive && v.Backends[1].State == api.StateActive
	})

	t.Run("a vip on one of the host's own addresses", func(t *testing.T) {
		ssh := api.VIPKey{Addr: netip.MustParseAddr("127.0.0.1"), Port: 22, Proto: api.ProtoTCP}
		err := d.AddVIP(ctx, api.VIPSpec{Key: ssh})
		require.ErrorIs(t, err, api.ErrConflict)
		assert.Contains(t, err.Error(), "127.0.0.1 is an address of this host (on lo): this host's own traffic to tcp port 22 would go to the L7 hosts instead")
		assert.Contains(t, err.Error(), "use --force")
		_, err = d.GetVIP(ctx, ssh)
		require.ErrorIs(t, err, api.ErrNotFound, "a refused change changes nothing")
		require.NoError(t, d.AddVIP(force, api.VIPSpec{Key: ssh}))
		require.NoError(t, d.DeleteVIP(ctx, ssh))
	})

	t.Run("backends that cannot be an L7 host", func(t *testing.T) {
		for _, a := range []string{"10.200.0.10", "255.255.255.255", "0.0.0.0", "224.0.0.1"} {
			err := d.AddBackend(force, vip, api.BackendSpec{Addr: netip.MustParseAddr(a)})
			assert.ErrorIs(t, err, api.ErrInvalid, "backend %s", a)
		}
		lo := netip.MustParseAddr("127.0.0.250")
		err := d.AddBackend(ctx, vip, api.BackendSpec{Addr: lo})
		require.ErrorIs(t, err, api.ErrConflict)
		assert.Contains(t, err.Error(), "backend 127.0.0.250 is a loopback address")
		require.NoError(t, d.AddBackend(force, vip, api.BackendSpec{Addr: lo, Drain: true}))
		require.NoError(t, d.DeleteBackend(ctx, vip, lo))
	})

	t.Run("the last active backend", func(t *testing.T) {
		require.NoError(t, d.SetBackendState(ctx, vip, h1, true), "one of two active")
		for name, change := range map[string]func(context.Context) error{
			"drain":    func(c context.Context) error { return d.SetBackendState(c, vip, h2, true) },
			"weight 0": func(c context.Context) error { return d.SetBackendWeight(c, vip, h2, 0) },
			"delete":   func(c context.Context) error { return d.DeleteBackend(c, vip, h2) },
		} {
			err := change(ctx)
			require.ErrorIs(t, err, api.ErrConflict, name)
			assert.Contains(t, err.Error(), "this leaves it without an active backend ("+h2.String()+" was the last): every new flow to it would be dropped", name)
		}
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err)
		require.Len(t, v.Backends, 2)
		assert.Equal(t, api.StateActive, v.Backends[1].State, "nothing changed")
		require.NoError(t, d.SetBackendWeight(force, vip, h2, 0))
		require.NoError(t, d.SetBackendWeight(ctx, vip, h2, 1), "giving a backend back its weight is always fine")
		require.NoError(t, d.SetBackendState(ctx, vip, h1, false))
	})

	// Deleting a VIP takes its packets out of the data path, established
	// connections included: refused while a backend is active.
	t.Run("a vip with active backends", func(t *testing.T) {
		err := d.DeleteVIP(ctx, vip)
		require.ErrorIs(t, err, api.ErrConflict)
		assert.Contains(t, err.Error(), "deleting it stops forwarding its traffic at once, established connections included")
		assert.Contains(t, err.Error(), "use --force")
		v, err := d.GetVIP(ctx, vip)
		require.NoError(t, err, "a refused delete changes nothing")
		assert.Len(t, v.Backends, 2)
	})
}
