/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* hash.h — the flow hash that picks a Maglev slot. Pure arithmetic.
 *
 * Input, as 32-bit words read little-endian from packet memory: the source
 * address (1 word for IPv4, 4 for IPv6), then the port word (source port
 * bytes followed by destination port bytes, as on the wire), then the IP
 * protocol number. Each word goes through the MurmurHash3 x86_32 block mix
 * with seed XLB_HASH_SEED, then the length in bytes (4*words) is xored in and
 * the MurmurHash3 finaliser applied. The destination address is left out on
 * purpose: every LB host announcing the VIP picks the same slot.
 * l4.FlowHash in Go computes the same value; a test keeps them equal. */
#ifndef XLB_HASH_H
#define XLB_HASH_H

#include <linux/types.h>
#include "consts.h"

#define XLB_HASH_SEED 0x786c6221 /* "xlb!" */

XLB_INLINE __u32 rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

XLB_INLINE __u32 hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

XLB_INLINE __u32 hash_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* flow_hash: src is the source address words, ports the port word, v6 says
 * how many address words count. */
XLB_INLINE __u32 flow_hash(const __u32 *src, __u32 ports, __u8 proto, int v6)
{
	__u32 h = hash_mix(XLB_HASH_SEED, src[0]);

	if (v6) {
		h = hash_mix(h, src[1]);
		h = hash_mix(h, src[2]);
		h = hash_mix(h, src[3]);
	}
	h = hash_mix(h, ports);
	h = hash_mix(h, proto);
	return hash_final(h, v6 ? 24 : 12);
}

/* addr_fold xor-folds the four words of an address into one, for the two
 * hashes below; an IPv4 address (not v6) has only its first word, the
 * others being zero, which fold to nothing. */
XLB_INLINE __u32 addr_fold(const __u32 *a, int v6)
{
	if (!v6)
		return a[0];
	return a[0] ^ rotl32(a[1], 7) ^ rotl32(a[2], 13) ^ rotl32(a[3], 19);
}

/* conn_hash extends a flow hash with the destination address (folded by
 * addr_fold): it indexes the connection table, whose entries must tell VIPs
 * apart. The flow hash is already MurmurHash3 of the rest of the 5-tuple,
 * so one Fibonacci multiply of it xored with the destination does: for one
 * destination it is a bijection of the flow hash, as uniform as that, and
 * the set is taken from its high bits, which every input bit reaches
 * (l4.connHash in Go). */
XLB_INLINE __u32 conn_hash(__u32 flow, __u32 dst_fold)
{
	return (flow ^ dst_fold) * 0x9e3779b1;
}

/* filter_hash picks a destination address's bit in vip_filter_map:
 * Fibonacci hashing of its addr_fold (l4.filterBit in Go). */
XLB_INLINE __u32 filter_hash(__u32 dst_fold)
{
	return (dst_fold * 0x9e3779b1) >> (32 - XLB_FILTER_BITS);
}

#endif /* XLB_HASH_H */
