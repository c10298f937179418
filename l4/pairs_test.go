package l4

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l4/decap"
)

// TestEveryPairDecapsulates sends a client packet of each family through
// the balancer towards an L7 host of each family, in IP-in-IP and in GUE,
// and the balancer's exact output through the real decapsulator of
// l4/decap (configured as an L7 host would be): it must come out as the
// client's IP packet, byte for byte, counted by the decapsulator under the
// right tunnel and inner family.
func TestEveryPairDecapsulates(t *testing.T) {
	d := openTest(t, nil)
	host4, host6 := netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fd01::1")
	ids := upsertBackends(t, d, host4.String(), host6.String())
	dc, err := decap.Open(decap.Config{GUEPort: testGUEPort})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, dc.Close()) })
	require.NoError(t, dc.SetAddrs([]netip.Addr{host4, host6}))

	n := 0
	for _, mode := range []Mode{ModeIPIP, ModeGUE} {
		for _, outer := range []struct {
			name string
			id   BackendID
			addr netip.Addr
		}{{"4", ids[0], host4}, {"6", ids[1], host6}} {
			for _, client := range []pkt{
				tcpACK("198.51.100.1:40001", "203.0.113.10:80"),
				tcpACK("[2001:db8:c::1]:40001", "[2001:db8::10]:80"),
			} {
				inner := "4"
				if !client.is4() {
					inner = "6"
				}
				t.Run(mode.String()+" "+inner+"-in-"+outer.name, func(t *testing.T) {
					n++
					// One VIP per case: a port of its own.
					vip := VIP{client.dst.Addr(), uint16(1000 + n), TCP}
					client.dst = netip.AddrPortFrom(vip.Addr, vip.Port)
					require.NoError(t, d.UpsertVIP(vip, WithMode(mode)))
					tbl := make([]BackendID, testM)
					for i := range tbl {
						tbl[i] = outer.id
					}
					require.NoError(t, d.InstallTable(vip, tbl))

					in := client.build(t)
					v, out := runProg(t, d.Program(), in)
					require.Equal(t, "XDP_TX", verdictName(v))
					want := encapped(t, client, in, outer.addr)
					if mode == ModeGUE {
						want = encappedGUE(t, client, in, outer.addr)
					}
					require.Equal(t, want, out[:len(want)], "balancer output")

					// xlb flow (the dry-run twin) names the same host.
					lid, laddr, err := d.Lookup(t.Context(), Flow{Src: client.src, Dst: client.dst, Proto: TCP, Established: true})
					require.NoError(t, err)
					assert.Equal(t, outer.id, lid)
					assert.Equal(t, outer.addr, laddr)

					before, err := dc.Stats()
					require.NoError(t, err)
					dv, dout := runProg(t, dc.Program(), want)
					require.Equal(t, "XDP_PASS", verdictName(dv))
					assert.Equal(t, in[12:], dout[12:len(in)], "the client's packet, as it was sent")
					after, err := dc.Stats()
					require.NoError(t, err)
					slot := map[Mode]string{ModeIPIP: "decap_v", ModeGUE: "gue_v"}[mode] + inner
					assert.Equal(t, uint64(1), after.Reasons()[slot].Packets-before.Reasons()[slot].Packets, "counted as %s", slot)
				})
			}
		}
	}
}
