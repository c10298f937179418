package api

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

// benchVIP is a VIP with 100 backends, the size of the reconcile target.
func benchVIP() VIP {
	v := VIP{Key: k4, Mode: ModeIPIP, TableSize: 65537}
	for i := range 100 {
		v.Backends = append(v.Backends, Backend{Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), Weight: 1,
			State: StateActive, Healthy: true, TableSlots: 655, LastCheck: t0})
	}
	return v
}

// BenchmarkAPI measures what the API adds to a Service call: the same
// GetVIP (100 backends) and SetBackendState called directly (the baseline)
// and through client → unix socket → handler. Compare the ns/op of the
// direct/ and socket/ sub-benchmarks of one run.
func BenchmarkAPI(b *testing.B) {
	rec := &recorder{vips: []VIP{benchVIP()}}
	c, _ := startServerB(b, rec)
	ctx := context.Background()
	for _, impl := range []struct {
		name string
		svc  Service
	}{{"direct", rec}, {"socket", c}} {
		b.Run(fmt.Sprintf("GetVIP-100-backends/%s", impl.name), func(b *testing.B) {
			for b.Loop() {
				if _, err := impl.svc.GetVIP(ctx, k4); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Drain/%s", impl.name), func(b *testing.B) {
			for b.Loop() {
				if err := impl.svc.SetBackendState(ctx, k4, be1, true); err != nil {
					b.Fatal(err)
				}
			}
			rec.mu.Lock()
			rec.calls = nil // keep memory flat across b.N rounds
			rec.mu.Unlock()
		})
	}
}
