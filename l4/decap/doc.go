// Package decap loads and drives xlb's decapsulator (bpf/decap.c), the XDP
// program that runs on every L7 host.
//
// The L4 balancer forwards each flow to an L7 host inside an IP-in-IP tunnel
// (IPv4 protocol 4, IPv6 next header 41, either family inside either) or,
// with Config.GUEPort, a GUE tunnel (variant 1: the inner IP packet right
// after a UDP header to that port; docs/decap.md). The decapsulator strips
// the outer headers of tunnel packets addressed to one of the host's own
// addresses (SetAddrs) and passes the inner packet to the
// kernel, so the proxy sees a connection from the client's real address to
// the VIP, which the host has on its loopback interface. Everything else
// passes untouched. A tunnel packet for this host whose headers are
// inconsistent is dropped and counted (Stats().Malformed).
//
//	d, err := decap.Open(decap.Config{Logger: log, PinPath: "/sys/fs/bpf/xlb-decap"})
//	if err != nil { ... }
//	defer d.Close()
//	if err := d.SetAddrs([]netip.Addr{hostAddr}); err != nil { ... }
//	if err := d.Attach("eth0", xdplink.ModeAuto); err != nil { ... }
//
// With a PinPath, maps and the XDP link are pinned on bpffs: Close leaves
// the program attached, and the next Open with the same PinPath adopts
// addresses, counters and the attachment (switching the link to its own
// program in one step), so restarting the proxy never leaves tunnel
// traffic without a decapsulator. Detach or RemovePins retire it.
package decap
