// Package benchxdp holds the small XDP programs xlb's benchmarks measure
// against and with: a MAC-swap XDP_TX bounce (the floor any XDP_TX
// balancer is compared to), a live-frame packet generator that writes a
// whole TCP header into every frame, and a counting sink that sorts what
// arrives by where it is going. They are built from instructions, so the
// benchmarks need no C toolchain.
package benchxdp
