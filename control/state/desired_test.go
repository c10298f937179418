package state

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

var (
	vip1 = api.VIPKey{Addr: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: "tcp"}
	vip2 = api.VIPKey{Addr: netip.MustParseAddr("203.0.113.11"), Port: 0, Proto: "udp"}
	vip6 = api.VIPKey{Addr: netip.MustParseAddr("2001:db8::10"), Port: 443, Proto: "tcp"}
	b1   = netip.MustParseAddr("10.0.1.1")
	b2   = netip.MustParseAddr("10.0.1.2")
	b3   = netip.MustParseAddr("10.0.1.3")
)

func be(a netip.Addr, w uint32, drain bool) Backend { return Backend{Addr: a, Weight: w, Drain: drain} }

func vip(k api.VIPKey, bs ...Backend) VIP {
	return VIP{Key: k, Mode: "ipip", TableSize: 65537, Backends: bs}
}

func TestMutations(t *testing.T) {
	start := func() Desired {
		return Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}}
	}
	tests := []struct {
		name    string
		op      func(d *Desired) error
		wantErr error
		want    Desired
	}{
		{"add vip", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: vip2, Backends: []api.BackendSpec{{Addr: b3}, {Addr: b1, Weight: 3, Drain: true}}})
		}, nil, Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false)), vip(vip2, be(b1, 3, true), be(b3, 1, false))}}},
		{"add vip twice", func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: vip1}) }, api.ErrConflict, start()},
		{"add vip bad proto", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: api.VIPKey{Addr: b1, Port: 1, Proto: "sctp"}})
		}, api.ErrInvalid, start()},
		{"add vip unknown mode", func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: vip2, Mode: "gre"}) }, api.ErrInvalid, start()},
		{"add vip table not prime", func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: vip2, TableSize: 1000}) }, api.ErrInvalid, start()},
		{"add l2dsr vip mixed family", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: vip6, Mode: api.ModeL2DSR, Backends: []api.BackendSpec{{Addr: b1}}})
		}, api.ErrInvalid, start()},
		{"add ipip vip mixed family (4-in-6)", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: vip6, Backends: []api.BackendSpec{{Addr: b1}}})
		}, nil, Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false)), vip(vip6, be(b1, 1, false))}}},
		{"add vip too many backends", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: vip2, TableSize: 2, Backends: []api.BackendSpec{{Addr: b1}, {Addr: b2}, {Addr: b3}}})
		}, api.ErrInvalid, start()},
		{"delete vip", func(d *Desired) error { return d.DeleteVIP(vip1) }, nil, Desired{VIPs: []VIP{}}},
		{"delete unknown vip", func(d *Desired) error { return d.DeleteVIP(vip2) }, api.ErrNotFound, start()},
		{"add backend", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{Addr: b3, Weight: 2}) }, nil,
			Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false), be(b3, 2, false))}}},
		{"add backend twice", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{Addr: b1}) }, api.ErrConflict, start()},
		{"add backend unknown vip", func(d *Desired) error { return d.AddBackend(vip2, api.BackendSpec{Addr: b1}) }, api.ErrNotFound, start()},
		{"add backend bad weight", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{Addr: b3, Weight: 70000}) }, api.ErrInvalid, start()},
		{"add backend other family (6-in-4)", func(d *Desired) error {
			return d.AddBackend(vip1, api.BackendSpec{Addr: netip.MustParseAddr("2001:db8::1")})
		}, nil, Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false), be(netip.MustParseAddr("2001:db8::1"), 1, false))}}},
		{"add backend invalid", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{}) }, api.ErrInvalid, start()},
		{"delete backend", func(d *Desired) error { return d.DeleteBackend(vip1, b1) }, nil, Desired{VIPs: []VIP{vip(vip1, be(b2, 1, false))}}},
		{"delete unknown backend", func(d *Desired) error { return d.DeleteBackend(vip1, b3) }, api.ErrNotFound, start()},
		{"delete backend unknown vip", func(d *Desired) error { return d.DeleteBackend(vip2, b1) }, api.ErrNotFound, start()},
		{"drain", func(d *Desired) error { return d.SetDrain(vip1, b2, true) }, nil, Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, true))}}},
		{"drain unknown", func(d *Desired) error { return d.SetDrain(vip1, b3, true) }, api.ErrNotFound, start()},
		{"weight", func(d *Desired) error { return d.SetWeight(vip1, b2, 0) }, nil, Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 0, false))}}},
		{"weight too big", func(d *Desired) error { return d.SetWeight(vip1, b2, 70000) }, api.ErrInvalid, start()},
		{"weight unknown vip", func(d *Desired) error { return d.SetWeight(vip2, b2, 2) }, api.ErrNotFound, start()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := start()
			err := tt.op(&d)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.True(t, tt.want.Equal(d), "got %+v want %+v", d, tt.want)
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	d := Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}}
	c := d.Clone()
	require.NoError(t, c.SetWeight(vip1, b1, 5))
	assert.Equal(t, uint32(1), d.VIPs[0].Backends[0].Weight)
}

func TestRebase(t *testing.T) {
	tests := []struct {
		name                string
		current, oldB, newB Desired
		want                Desired
	}{
		{
			name:    "file unchanged keeps api changes",
			current: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, true), be(b3, 1, false)), vip(vip2, be(b1, 1, false))}},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}},
			newB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}},
			want:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, true), be(b3, 1, false)), vip(vip2, be(b1, 1, false))}},
		},
		{
			name:    "file adds and removes backends, api drain survives",
			current: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, true), be(b2, 1, false))}},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}},
			newB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b3, 2, false))}},
			want:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, true), be(b3, 2, false))}},
		},
		{
			name:    "file changes weight and drain",
			current: Desired{VIPs: []VIP{vip(vip1, be(b1, 5, false), be(b2, 1, false))}},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}},
			newB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 3, true))}},
			want:    Desired{VIPs: []VIP{vip(vip1, be(b1, 5, false), be(b2, 3, true))}},
		},
		{
			name:    "file removes a vip and adds one",
			current: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			newB:    Desired{VIPs: []VIP{vip(vip2, be(b2, 1, false))}},
			want:    Desired{VIPs: []VIP{vip(vip2, be(b2, 1, false))}},
		},
		{
			name:    "vip deleted through the api stays deleted while the file does not touch it",
			current: Desired{},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			newB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			want:    Desired{VIPs: []VIP{}},
		},
		{
			name:    "vip added in both keeps the operator's extra backends",
			current: Desired{VIPs: []VIP{vip(vip2, be(b1, 4, false), be(b3, 1, false))}},
			oldB:    Desired{},
			newB:    Desired{VIPs: []VIP{{Key: vip2, Mode: "ipip", TableSize: 251, Backends: []Backend{be(b1, 1, false)}}}},
			want:    Desired{VIPs: []VIP{{Key: vip2, Mode: "ipip", TableSize: 251, Backends: []Backend{be(b1, 1, false), be(b3, 1, false)}}}},
		},
		{
			name:    "file changes table size",
			current: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			oldB:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
			newB:    Desired{VIPs: []VIP{{Key: vip1, Mode: "ipip", TableSize: 251, Backends: []Backend{be(b1, 1, false)}}}},
			want:    Desired{VIPs: []VIP{{Key: vip1, Mode: "ipip", TableSize: 251, Backends: []Backend{be(b1, 1, false)}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.current.Clone()
			got := Rebase(tt.current, tt.oldB, tt.newB)
			assert.True(t, tt.want.Equal(got), "got %+v\nwant %+v", got, tt.want)
			assert.True(t, before.Equal(tt.current), "Rebase must not modify its input")
		})
	}
}

// TestErrorMessages pins what the operator reads: the VIP and backend the
// problem is about and the reason, without the sentinel's text in the middle.
func TestErrorMessages(t *testing.T) {
	start := func() Desired {
		return Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false), be(b2, 1, false))}}
	}
	tests := []struct {
		name string
		op   func(d *Desired) error
		want string
	}{
		{"vip exists", func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: vip1}) },
			"vip 203.0.113.10:80/tcp already exists (delete it first, or add backends to it)"},
		{"table not prime", func(d *Desired) error { return d.AddVIP(api.VIPSpec{Key: vip2, TableSize: 1000}) },
			"vip 203.0.113.11:*/udp: table size 1000 must be a prime up to 67108859 (default 65537)"},
		{"l2dsr vip with a backend of the other family", func(d *Desired) error {
			return d.AddVIP(api.VIPSpec{Key: vip6, Mode: api.ModeL2DSR, Backends: []api.BackendSpec{{Addr: b1}}})
		}, "vip [2001:db8::10]:443/tcp: backend 10.0.1.1 is not of the vip's IP family (l2dsr hands the client's packet on unchanged, which needs the same family)"},
		{"backend exists", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{Addr: b1}) },
			"vip 203.0.113.10:80/tcp: backend 10.0.1.1 already exists"},
		{"backend weight", func(d *Desired) error { return d.AddBackend(vip1, api.BackendSpec{Addr: b3, Weight: 70000}) },
			"vip 203.0.113.10:80/tcp: backend 10.0.1.3: weight 70000 is above the maximum 65535"},
		{"unknown vip", func(d *Desired) error { return d.AddBackend(vip2, api.BackendSpec{Addr: b1}) },
			"vip 203.0.113.11:*/udp not found"},
		{"unknown backend", func(d *Desired) error { return d.SetDrain(vip1, b3, true) },
			"vip 203.0.113.10:80/tcp: backend 10.0.1.3 not found"},
		{"weight too big", func(d *Desired) error { return d.SetWeight(vip1, b2, 70000) },
			"vip 203.0.113.10:80/tcp: backend 10.0.1.2: weight 70000 is above the maximum 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := start()
			err := tt.op(&d)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}
