package l4

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// Proto is an IP protocol number a VIP can serve.
type Proto uint8

// Protocols a VIP can serve.
const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto" + strconv.Itoa(int(p))
}

// VIP is a virtual service: address, port (0 = any port) and protocol.
type VIP struct {
	Addr  netip.Addr
	Port  uint16
	Proto Proto
}

func (v VIP) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(v.Addr, v.Port), v.Proto)
}

func (v VIP) validate() error {
	if !v.Addr.IsValid() {
		return fmt.Errorf("vip %v: address missing: %w", v, ErrInvalid)
	}
	if v.Proto != TCP && v.Proto != UDP {
		return fmt.Errorf("vip %v: protocol must be tcp or udp: %w", v, ErrInvalid)
	}
	return nil
}

// BackendID names an L7 host in the data plane. 0 means "no backend": in a
// table, a packet hashed to a 0 slot is dropped and counted.
type BackendID uint32

// AttachMode is xdplink.Mode, the one attach mode type of the balancer
// and the decapsulator.
type AttachMode = xdplink.Mode

// Attach modes, as in xdplink. AttachAuto tries native (driver) mode first
// and falls back to generic (skb) mode.
const (
	AttachAuto    = xdplink.ModeAuto
	AttachNative  = xdplink.ModeNative
	AttachGeneric = xdplink.ModeGeneric
)

// addrWords stores an address the way the maps do: wire-order bytes, IPv4 in
// the first word and the rest zero.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = binary.LittleEndian.Uint32(b[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.LittleEndian.PutUint32(b[4*i:], w[i])
	}
	if family == afInet {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// htons converts a port to the wire-order uint16 the maps store (little-endian host).
func htons(p uint16) uint16 { return bits.ReverseBytes16(p) }

// Address families of xlbBackend.Family (XLB_AF_* in bpf/include/consts.h).
const (
	afNone  = uint8(abiXlbAfXLB_ABI_AF_NONE)
	afInet  = uint8(abiXlbAfXLB_ABI_AF_INET)
	afInet6 = uint8(abiXlbAfXLB_ABI_AF_INET6)
)

func familyOf(a netip.Addr) uint8 {
	if a.Unmap().Is4() {
		return afInet
	}
	return afInet6
}
