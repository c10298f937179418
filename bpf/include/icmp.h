/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* icmp.h — "fragmentation needed" (ICMP type 3 code 4) and "packet too
 * big" (ICMPv6 type 2) sent back to the client when its packet would not
 * fit the path to the L7 host once wrapped, so that its TCP lowers the
 * MSS (path MTU discovery) instead of retrying into a black hole. The
 * message is built in place: the frame grows by the new IP and ICMP
 * headers in front of the client's IP header, and is cut after that header
 * and the first 8 bytes of its payload (the ports, which the client needs
 * to find its socket). It goes back out of the interface it came in on,
 * to the MAC it came from, from the VIP's address. */
#ifndef XLB_ICMP_H
#define XLB_ICMP_H

#include "csum.h"
#include "parse.h"

#define XLB_ICMP_QUOTE 8 /* payload bytes quoted after the IP header */

/* linux/icmp.h pulls in libc headers the BPF target does not have: the
 * two messages' headers are spelled out here (RFC 792/1191, RFC 4443). */
#define XLB_ICMP_DEST_UNREACH 3
#define XLB_ICMP_FRAG_NEEDED 4
#define XLB_ICMPV6_PKT_TOOBIG 2

struct icmp_frag_needed {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__be16 unused;
	__be16 mtu; /* next-hop MTU */
};

struct icmp6_too_big {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__be32 mtu;
};
#define XLB_ICMP_TTL 64

/* csum_words adds n 16-bit words at p to sum (n a constant). */
#define XLB_CSUM_ADD(sum, ptr, n)                        \
	do {                                             \
		const __u16 *_w = (const void *)(ptr);   \
		_Pragma("unroll") for (int _i = 0; _i < (n); _i++) \
			(sum) += _w[_i];                 \
	} while (0)

/* icmp_eth writes the reply's Ethernet header (and the tag the request
 * had) from the request's addresses, swapped. */
XLB_INLINE void icmp_eth(void *data, struct pkt *p, const __u8 *req_dst, const __u8 *req_src, __be16 proto)
{
	struct ethhdr *eth = data;

	__builtin_memcpy(eth->h_dest, req_src, ETH_ALEN);
	__builtin_memcpy(eth->h_source, req_dst, ETH_ALEN);
	if (p->vlan) {
		struct vlan_tag *tag = data + ETH_HLEN;

		eth->h_proto = bpf_htons(ETH_P_8021Q);
		tag->tci = p->vlan_tci;
		tag->proto = proto;
	} else {
		eth->h_proto = proto;
	}
}

/* icmp4_too_big answers an IPv4 packet (DF set, no options) with
 * "fragmentation needed", next-hop MTU mtu. Returns XDP_TX, or
 * XLB_CONTINUE when it cannot (the caller drops). */
XLB_INLINE int icmp4_too_big(struct xdp_md *ctx, struct pkt *p, __u32 l3, __u16 mtu)
{
	const __u32 room = sizeof(struct iphdr) + sizeof(struct icmp_frag_needed);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 dst[ETH_ALEN], src[ETH_ALEN];
	struct ethhdr *eth = data;
	struct iphdr *ip, *q;
	struct icmp_frag_needed *ic;
	__u64 sum = 0;

	q = data + l3;
	if ((void *)(q + 1) > data_end || q->ihl != 5)
		return XLB_CONTINUE;
	__builtin_memcpy(dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(src, eth->h_source, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, -(int)room))
		return XLB_CONTINUE;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + l3;
	ic = (void *)(ip + 1);
	q = (void *)(ic + 1);
	if ((void *)q + sizeof(*q) + XLB_ICMP_QUOTE > data_end)
		return XLB_CONTINUE;
	icmp_eth(data, p, dst, src, bpf_htons(ETH_P_IP));

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(room + sizeof(*q) + XLB_ICMP_QUOTE);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = XLB_ICMP_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = q->daddr;
	ip->daddr = q->saddr;
	ip->check = ipv4_csum(ip);

	ic->type = XLB_ICMP_DEST_UNREACH;
	ic->code = XLB_ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->unused = 0;
	ic->mtu = bpf_htons(mtu);
	XLB_CSUM_ADD(sum, ic, (sizeof(*ic) + sizeof(*q) + XLB_ICMP_QUOTE) / 2);
	ic->checksum = csum_fold(sum);

	if (bpf_xdp_adjust_tail(ctx, (int)(l3 + room + sizeof(*q) + XLB_ICMP_QUOTE) - (int)(data_end - data)))
		return XLB_CONTINUE;
	return XDP_TX;
}

/* icmp6_too_big answers an IPv6 packet with "packet too big", MTU mtu.
 * Returns XDP_TX, or XLB_CONTINUE when it cannot (the caller drops). */
XLB_INLINE int icmp6_too_big(struct xdp_md *ctx, struct pkt *p, __u32 l3, __u32 mtu)
{
	const __u32 room = sizeof(struct ipv6hdr) + sizeof(struct icmp6_too_big);
	const __u32 quoted = sizeof(struct ipv6hdr) + XLB_ICMP_QUOTE;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 dst[ETH_ALEN], src[ETH_ALEN];
	struct ethhdr *eth = data;
	struct ipv6hdr *ip, *q;
	struct icmp6_too_big *ic;
	__u64 sum = 0;

	q = data + l3;
	if ((void *)(q + 1) > data_end)
		return XLB_CONTINUE;
	__builtin_memcpy(dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(src, eth->h_source, ETH_ALEN);
	if (bpf_xdp_adjust_head(ctx, -(int)room))
		return XLB_CONTINUE;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + l3;
	ic = (void *)(ip + 1);
	q = (void *)(ic + 1);
	if ((void *)q + quoted > data_end)
		return XLB_CONTINUE;
	icmp_eth(data, p, dst, src, bpf_htons(ETH_P_IPV6));

	ip->version = 6;
	ip->priority = 0;
	ip->flow_lbl[0] = 0;
	ip->flow_lbl[1] = 0;
	ip->flow_lbl[2] = 0;
	ip->payload_len = bpf_htons(sizeof(*ic) + quoted);
	ip->nexthdr = IPPROTO_ICMPV6;
	ip->hop_limit = XLB_ICMP_TTL;
	ip->saddr = q->daddr;
	ip->daddr = q->saddr;

	ic->type = XLB_ICMPV6_PKT_TOOBIG;
	ic->code = 0;
	ic->checksum = 0;
	ic->mtu = bpf_htonl(mtu);
	/* Pseudo-header: addresses, upper-layer length, next header. */
	XLB_CSUM_ADD(sum, &ip->saddr, 16);
	sum += bpf_htons(sizeof(*ic) + quoted);
	sum += bpf_htons(IPPROTO_ICMPV6);
	XLB_CSUM_ADD(sum, ic, (sizeof(*ic) + quoted) / 2);
	ic->checksum = csum_fold(sum);

	if (bpf_xdp_adjust_tail(ctx, (int)(l3 + room + quoted) - (int)(data_end - data)))
		return XLB_CONTINUE;
	return XDP_TX;
}

#endif /* XLB_ICMP_H */
