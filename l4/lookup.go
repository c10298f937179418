package l4

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Flow is a client flow as the balancer sees it.
type Flow struct {
	Src   netip.AddrPort // client address and port
	Dst   netip.AddrPort // VIP address and destination port
	Proto Proto
	// Established asks about a TCP packet of an existing connection (ACK)
	// instead of a SYN: the answer then honours the connection table.
	Established bool
}

// Lookup answers "which backend would this flow get" by running the real
// program, in its dry-run variant that neither writes connection entries
// nor counts, on a synthesized packet (a TCP SYN, or ACK when Established,
// or a UDP datagram). It returns ErrNotVIP when the packet would pass and
// ErrNoBackend when it would be dropped.
func (d *Dataplane) Lookup(ctx context.Context, f Flow) (BackendID, netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return 0, netip.Addr{}, fmt.Errorf("lookup flow: %w", err)
	}
	pkt, err := synthesize(f)
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("lookup flow: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]byte, len(pkt)+64)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	verdict, err := d.dry.Run(opts)
	if err != nil {
		return 0, netip.Addr{}, fmt.Errorf("lookup flow: run program: %w", err)
	}
	switch verdict {
	case xdpPass:
		return 0, netip.Addr{}, fmt.Errorf("lookup flow %s -> %s: %w", f.Src, f.Dst, ErrNotVIP)
	case xdpTx:
	default:
		return 0, netip.Addr{}, fmt.Errorf("lookup flow %s -> %s: verdict %d: %w", f.Src, f.Dst, verdict, ErrNoBackend)
	}
	out = opts.DataOut
	var dst netip.Addr
	// The outer family is the backend's, which may differ from the
	// flow's (4-in-6, 6-in-4): the ethertype tells.
	switch {
	case len(out) >= 14+20 && binary.BigEndian.Uint16(out[12:]) == 0x0800:
		dst = netip.AddrFrom4([4]byte(out[14+16 : 14+20]))
	case len(out) >= 14+40 && binary.BigEndian.Uint16(out[12:]) == 0x86dd:
		dst = netip.AddrFrom16([16]byte(out[14+24 : 14+40]))
	default:
		return 0, netip.Addr{}, fmt.Errorf("lookup flow: short output (%d bytes)", len(out))
	}
	id, ok := d.byAddr[dst]
	if !ok {
		return 0, dst, fmt.Errorf("lookup flow: forwarded to %s: %w", dst, ErrUnknownBackend)
	}
	return id, dst, nil
}

// XDP verdicts (linux/bpf.h, through bpf/include/abi.h).
const (
	xdpAborted  = uint32(abiXlbXdpActionXLB_ABI_XDP_ABORTED)
	xdpDrop     = uint32(abiXlbXdpActionXLB_ABI_XDP_DROP)
	xdpPass     = uint32(abiXlbXdpActionXLB_ABI_XDP_PASS)
	xdpTx       = uint32(abiXlbXdpActionXLB_ABI_XDP_TX)
	xdpRedirect = uint32(abiXlbXdpActionXLB_ABI_XDP_REDIRECT)
)

// synthesize builds a minimal Ethernet frame for f. Checksums are left zero:
// the balancer never reads them.
func synthesize(f Flow) ([]byte, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("flow %s -> %s: addresses missing or of different families: %w", f.Src, f.Dst, ErrInvalid)
	}
	var l4 []byte
	switch f.Proto {
	case TCP:
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
		if f.Established {
			l4[13] = 0x10 // ACK
		} else {
			l4[13] = 0x02 // SYN
		}
	case UDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[4:], 8)
	default:
		return nil, fmt.Errorf("flow protocol %s: %w", f.Proto, ErrInvalid)
	}
	binary.BigEndian.PutUint16(l4[0:], f.Src.Port())
	binary.BigEndian.PutUint16(l4[2:], f.Dst.Port())

	b := make([]byte, 14, 14+40+len(l4))
	if src.Is4() {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[8] = 64
		ip[9] = byte(f.Proto)
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = byte(f.Proto)
		ip[7] = 64
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		b = append(b, ip...)
	}
	return append(b, l4...), nil
}
