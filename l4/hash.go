package l4

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// addrFold mirrors addr_fold in bpf/include/hash.h: an address's four
// words (as the data path stores them) xor-folded into one.
func addrFold(a netip.Addr) uint32 {
	w := addrWords(a)
	return w[0] ^ bits.RotateLeft32(w[1], 7) ^ bits.RotateLeft32(w[2], 13) ^ bits.RotateLeft32(w[3], 19)
}

// connHash mirrors conn_hash in bpf/include/hash.h: the hash of a flow's
// 5-tuple that picks its connection-table set and tag.
func connHash(src, dst netip.AddrPort, proto Proto) uint32 {
	const golden = 0x9e3779b97f4a7c15
	s, d := addrWords(src.Addr()), addrWords(dst.Addr())
	var ports [4]byte
	binary.BigEndian.PutUint16(ports[0:], src.Port())
	binary.BigEndian.PutUint16(ports[2:], dst.Port())
	family := afInet
	if !src.Addr().Unmap().Is4() {
		family = afInet6
	}
	pair := func(hi, lo uint32) uint64 { return uint64(hi)<<32 | uint64(lo) }
	x := pair(s[0], d[0]) ^ pair(binary.LittleEndian.Uint32(ports[:]), uint32(proto)|uint32(family)<<8)*golden
	if family == afInet6 {
		for i := 1; i < 4; i++ {
			x = (x ^ pair(s[i], d[i])) * golden
		}
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x)
}

// connSet mirrors conn_set_of: the set of sets connection hash h falls in.
func connSet(h, sets uint32) uint32 {
	return uint32((uint64(h) * uint64(sets)) >> 32)
}

const hashSeed = 0x786c6221 // "xlb!", as in bpf/include/hash.h

func hashMix(h, k uint32) uint32 {
	k *= 0xcc9e2d51
	k = bits.RotateLeft32(k, 15)
	k *= 0x1b873593
	h ^= k
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

// FlowHash is the hash the balancer uses to pick a Maglev slot (slot =
// FlowHash % TableSize) for a flow that has no connection entry. It covers
// the source address, both ports and the protocol — not the destination
// address, so that every LB host announcing a VIP picks the same slot. It
// mirrors flow_hash in bpf/include/hash.h (MurmurHash3 x86_32 mixing over
// little-endian words of wire-order bytes); a kernel test keeps them equal.
func FlowHash(src netip.AddrPort, dstPort uint16, proto Proto) uint32 {
	a := src.Addr().Unmap()
	h := uint32(hashSeed)
	n := uint32(12)
	if a.Is4() {
		b := a.As4()
		h = hashMix(h, binary.LittleEndian.Uint32(b[:]))
	} else {
		b := a.As16()
		for i := 0; i < 16; i += 4 {
			h = hashMix(h, binary.LittleEndian.Uint32(b[i:]))
		}
		n = 24
	}
	var ports [4]byte
	binary.BigEndian.PutUint16(ports[0:], src.Port())
	binary.BigEndian.PutUint16(ports[2:], dstPort)
	h = hashMix(h, binary.LittleEndian.Uint32(ports[:]))
	h = hashMix(h, uint32(proto))
	h ^= n
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
