/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* encap.h — IP-in-IP encapsulation towards the chosen L7 host. The inner
 * packet is not touched; only a new Ethernet + outer IP header is put in
 * front of it. Returns XLB_CONTINUE when the frame is ready for XDP_TX. */
#ifndef XLB_ENCAP_H
#define XLB_ENCAP_H

#include "csum.h"
#include "nexthop.h"

/* too_big is the hook for frames that would exceed the MTU once wrapped.
 * For now they are counted and dropped; PMTU discovery (ICMP "fragmentation
 * needed" / "packet too big" back to the client) belongs here. */
XLB_INLINE int too_big(struct xdp_md *ctx, struct pkt *p)
{
	stat_add(XLB_CNT_TOO_BIG, p->len);
	return XDP_DROP;
}

XLB_INLINE int encap_fail(struct pkt *p)
{
	stat_add(XLB_CNT_ENCAP_FAIL, p->len);
	return XDP_DROP;
}

/* write_eth writes the frame's Ethernet header: the FIB's answer nh, or
 * the configured override. The knobs are read through volatile pointers
 * (4 + 2 bytes each): a cast to a plain pointer would let clang fold the
 * zero initialisers. */
XLB_INLINE void write_eth(struct ethhdr *eth, const struct next_hop *nh, __be16 proto)
{
	if (fib_mode) {
		__builtin_memcpy(eth->h_dest, nh->dst, ETH_ALEN);
		__builtin_memcpy(eth->h_source, nh->src, ETH_ALEN);
	} else {
		__u32 dst_hi = *(volatile const __u32 *)next_hop_mac;
		__u16 dst_lo = *(volatile const __u16 *)&next_hop_mac[4];
		__u32 src_hi = *(volatile const __u32 *)src_mac;
		__u16 src_lo = *(volatile const __u16 *)&src_mac[4];

		__builtin_memcpy(&eth->h_dest[0], &dst_hi, 4);
		__builtin_memcpy(&eth->h_dest[4], &dst_lo, 2);
		__builtin_memcpy(&eth->h_source[0], &src_hi, 4);
		__builtin_memcpy(&eth->h_source[4], &src_lo, 2);
	}
	eth->h_proto = proto;
}

/* encap_ipv4 wraps an IPv4 packet in IPv4 (protocol 4). */
XLB_INLINE int encap_ipv4(struct xdp_md *ctx, struct pkt *p, const struct backend *b,
			  const struct next_hop *nh)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct iphdr o = {};

	o.version = 4;
	o.ihl = 5;
	o.tos = p->tos;
	o.tot_len = bpf_htons(p->ip_len + sizeof(o));
	o.frag_off = p->df ? bpf_htons(XLB_IP_DF) : 0;
	o.ttl = XLB_IPIP_TTL;
	o.protocol = IPPROTO_IPIP;
	o.saddr = outer_src_v4;
	o.daddr = b->addr[0];
	o.check = ipv4_csum(&o);

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(o)))
		return encap_fail(p);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	iph = data + ETH_HLEN;
	if ((void *)(iph + 1) > data_end)
		return encap_fail(p);
	write_eth(eth, nh, bpf_htons(ETH_P_IP));
	__builtin_memcpy(iph, &o, sizeof(o));
	return XLB_CONTINUE;
}

/* encap_ipv6 wraps an IPv6 packet in IPv6 (next header 41). The flow label
 * carries the flow hash so that ECMP on the way keeps a flow on one path. */
XLB_INLINE int encap_ipv6(struct xdp_md *ctx, struct pkt *p, const struct backend *b,
			  const struct next_hop *nh, __u32 hash)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct ipv6hdr *ip6h;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*ip6h)))
		return encap_fail(p);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip6h = data + ETH_HLEN;
	if ((void *)(ip6h + 1) > data_end)
		return encap_fail(p);
	write_eth(eth, nh, bpf_htons(ETH_P_IPV6));
	ip6h->version = 6;
	ip6h->priority = p->tos >> 4;
	ip6h->flow_lbl[0] = ((p->tos & 0xf) << 4) | ((hash >> 16) & 0xf);
	ip6h->flow_lbl[1] = hash >> 8;
	ip6h->flow_lbl[2] = hash;
	ip6h->payload_len = bpf_htons(p->ip_len);
	ip6h->nexthdr = IPPROTO_IPV6;
	ip6h->hop_limit = XLB_IPIP_TTL;
#pragma unroll
	for (int i = 0; i < 4; i++)
		ip6h->saddr.in6_u.u6_addr32[i] = outer_src_v6[i];
	__builtin_memcpy(&ip6h->daddr, b->addr, 16);
	return XLB_CONTINUE;
}

/* encap picks the outer family from the packet's own; a backend of the other
 * family cannot take this packet in this version (4in6/6in4 come with the
 * breadth work) and counts as an encapsulation failure. */
XLB_INLINE int encap(struct xdp_md *ctx, struct pkt *p, const struct backend *b, __u32 hash)
{
	__u32 overhead = p->family == XLB_AF_INET ? XLB_IPV4_HDR_LEN : XLB_IPV6_HDR_LEN;
	struct next_hop nh;
	int ret;

	if (b->family != p->family)
		return encap_fail(p);
	if (mtu && p->ip_len + overhead > mtu)
		return too_big(ctx, p);
	if (fib_mode) {
		ret = fib_next_hop(ctx, p, b, p->ip_len + overhead, &nh);
		if (ret == XLB_FIB_TOO_BIG)
			return too_big(ctx, p);
		if (ret != XLB_CONTINUE)
			return ret;
	}
	if (p->family == XLB_AF_INET)
		return encap_ipv4(ctx, p, b, &nh);
	return encap_ipv6(ctx, p, b, &nh, hash);
}

#endif /* XLB_ENCAP_H */
