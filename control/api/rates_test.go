package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestComputeRates(t *testing.T) {
	k2 := VIPKey{k4.Addr, 443, ProtoTCP}
	prev := Stats{Time: t0, VIPs: []VIPStats{
		{Key: k4, Counter: Counter{Packets: 100, Bytes: 10_000}, NewFlows: 10,
			Backends: []BackendStats{{Addr: be1, Counter: Counter{Packets: 100, Bytes: 10_000}}}},
	}, Reasons: map[string]uint64{"no_backend": 5, "not_vip": 50}}
	cur := Stats{Time: t0.Add(2 * time.Second), VIPs: []VIPStats{
		{Key: k4, Counter: Counter{Packets: 300, Bytes: 30_000}, NewFlows: 14,
			Backends: []BackendStats{
				{Addr: be1, Counter: Counter{Packets: 200, Bytes: 20_000}},
				{Addr: be6, Counter: Counter{Packets: 100, Bytes: 10_000}}, // new backend: from zero
			}},
		{Key: k2, Counter: Counter{Packets: 8, Bytes: 800}}, // new VIP
	}, Reasons: map[string]uint64{"no_backend": 9, "not_vip": 10 /* reset */}}

	tests := []struct {
		name string
		prev Stats
		cur  Stats
		want StatsRates
	}{
		{
			name: "two snapshots",
			prev: prev, cur: cur,
			want: StatsRates{From: prev.Time, To: cur.Time, Current: cur, VIPs: []VIPRates{
				{Key: k4, Rate: Rate{PPS: 100, BPS: 80_000}, NewFlowsPS: 2, Backends: []BackendRates{
					{Addr: be1, Rate: Rate{PPS: 50, BPS: 40_000}},
					{Addr: be6, Rate: Rate{PPS: 50, BPS: 40_000}},
				}},
				{Key: k2, Rate: Rate{PPS: 4, BPS: 3200}, Backends: []BackendRates{}},
			}, Reasons: map[string]float64{"no_backend": 2, "not_vip": 0}},
		},
		{
			name: "same time gives zero rates",
			prev: cur, cur: cur,
			want: StatsRates{From: cur.Time, To: cur.Time, Current: cur, VIPs: []VIPRates{
				{Key: k4, Backends: []BackendRates{{Addr: be1}, {Addr: be6}}},
				{Key: k2, Backends: []BackendRates{}},
			}, Reasons: map[string]float64{"no_backend": 0, "not_vip": 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ComputeRates(tt.prev, tt.cur))
		})
	}
}
