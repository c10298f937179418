/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* hash.h — the flow hash that picks a Maglev slot, the connection table's
 * hash and the VIP filter's. Pure arithmetic.
 *
 * The flow hash:
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
#include "types.h"

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

/* key_flow_hash is flow_hash of a connection key's 5-tuple (an IPv6 one
 * if v6). */
XLB_INLINE __u32 key_flow_hash(const struct conn_key *k, int v6)
{
	return flow_hash(k->src, ((__u32)k->dport << 16) | k->sport, k->proto, v6);
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

#define XLB_GOLDEN64 0x9e3779b97f4a7c15ULL

/* conn_hash indexes the connection table (set and tag): a hash of the
 * whole key, the destination included (entries must tell VIPs apart). It
 * is not chained after flow_hash: a connection hit needs no flow hash at
 * all unless the outer header carries one (GUE, IPv6), so an IP-in-IP hit
 * towards an IPv4 host skips MurmurHash3. The key's words, as 32-bit
 * little-endian loads: source and destination address words paired into
 * 64 bits, the port word and the protocol/family word paired likewise and
 * multiplied in, then MurmurHash3's 64-bit finaliser, a bijection: two
 * IPv4 keys with the same ports collide in no bit before the final
 * truncation to 32 (l4.connHash in Go). */
XLB_INLINE __u32 conn_hash(const struct conn_key *k, int v6)
{
	const __u32 *w = (const __u32 *)k;
	__u64 x = ((__u64)w[0] << 32 | w[4]) ^ ((__u64)w[8] << 32 | w[9]) * XLB_GOLDEN64;

	if (v6) {
#pragma unroll
		for (int i = 1; i < 4; i++)
			x = (x ^ ((__u64)w[i] << 32 | w[4 + i])) * XLB_GOLDEN64;
	}
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (__u32)x;
}

/* filter_hash picks a destination address's bit in vip_filter_map:
 * Fibonacci hashing of its addr_fold (l4.filterBit in Go). */
XLB_INLINE __u32 filter_hash(__u32 dst_fold)
{
	return (dst_fold * 0x9e3779b1) >> (32 - XLB_FILTER_BITS);
}

#endif /* XLB_HASH_H */
