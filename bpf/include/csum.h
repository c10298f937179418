/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* csum.h — Internet checksum arithmetic. Pure: no maps, no packet access
 * beyond the pointer it is given. */
#ifndef XLB_CSUM_H
#define XLB_CSUM_H

#include <linux/types.h>
#include "consts.h"

/* csum_fold folds a 64-bit one's complement sum to 16 bits and inverts it. */
XLB_INLINE __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* ipv4_csum returns the header checksum of a 20-byte IPv4 header whose check
 * field is zero. Summing in memory order gives the checksum in memory order. */
XLB_INLINE __u16 ipv4_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < XLB_IPV4_HDR_LEN / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

#endif /* XLB_CSUM_H */
