/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* encap.h — IP-in-IP (any pair of families) or GUE encapsulation towards
 * the chosen L7 host. The inner packet is not touched; only a new Ethernet
 * + outer IP (+ UDP) header is put in front of it. Returns XLB_CONTINUE when the frame is ready for XDP_TX. */
#ifndef XLB_ENCAP_H
#define XLB_ENCAP_H

#include "csum.h"
#include "icmp.h"
#include "nexthop.h"

/* too_big handles a packet that would exceed limit (the MTU) once
 * overhead bytes are added: it answers the client with ICMP "fragmentation
 * needed" (IPv4 with DF) or ICMPv6 "packet too big", giving the size that
 * fits, and counts it; an IPv4 packet without DF (which may not be refused
 * that way), or one that cannot be answered (IPv4 options), is dropped. */
XLB_INLINE int too_big(struct xdp_md *ctx, struct pkt *p, __u32 limit, __u32 overhead)
{
	__u32 fit = limit > overhead ? limit - overhead : 0;
	int ret = XLB_CONTINUE;

	stat_add(XLB_CNT_TOO_BIG, p->len);
	if (p->family == XLB_AF_INET) {
		/* 68: the smallest MTU an IPv4 link may have (RFC 791). */
		if (p->df && fit >= 68)
			ret = icmp4_too_big(ctx, p, p->vlan ? ETH_HLEN + sizeof(struct vlan_tag) : ETH_HLEN, fit);
	} else {
		/* IPv6 links carry at least 1280 bytes (RFC 8200). */
		ret = icmp6_too_big(ctx, p, p->vlan ? ETH_HLEN + sizeof(struct vlan_tag) : ETH_HLEN,
				    fit < 1280 ? 1280 : fit);
	}
	if (ret != XDP_TX)
		return XDP_DROP;
	stat_add(XLB_CNT_ICMP_TOO_BIG, p->len);
	return XDP_TX;
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

/* inner_proto is the outer header's protocol for plain IP-in-IP: 4 for an
 * IPv4 packet inside, 41 for an IPv6 one, whatever the outer family. */
XLB_INLINE __u8 inner_proto(const struct pkt *p)
{
	return p->family == XLB_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
}

/* write_gue writes the UDP header of GUE variant 1 (docs/decap.md): the
 * source port carries the flow hash (folded to 15 bits, in 32768..65535),
 * so that the L7 host's NIC, which hashes UDP ports for RSS but cannot see
 * into IP-in-IP, spreads flows over its queues. Checksum 0: allowed over
 * IPv4 (RFC 768) and, for tunnels, over IPv6 (RFC 6935/6936); the inner
 * packet keeps its own checksums and xlb's decapsulator takes the packet
 * in XDP, before the kernel's UDP stack would look at it. */
XLB_INLINE void write_gue(struct udphdr *uh, const struct pkt *p, __u32 hash)
{
	uh->source = bpf_htons(0x8000 | ((hash ^ (hash >> 16)) & 0x7fff));
	uh->dest = bpf_htons(gue_port);
	uh->len = bpf_htons(p->ip_len + sizeof(*uh));
	uh->check = 0;
}

/* encap_outer4 puts an outer IPv4 header (and, for GUE, a UDP header) in
 * front of the packet, which is IPv4 (4-in-4) or IPv6 (6-in-4). DF is
 * copied from an IPv4 packet and set for an IPv6 one, which no router may
 * fragment. A tagged frame keeps its 802.1Q tag: the next hop is on the
 * VLAN it came from. The outer header goes where the tag's enclosed header
 * was, the tag is rewritten from the copy in p (the bytes moved).
 * The header is five 32-bit words computed in registers (version, IHL, TOS
 * and length; id 0 and the flags; TTL, protocol and the checksum, 0 while
 * summed; the two addresses) and stored straight into the frame, summed
 * for the checksum as they are: no copy through the stack. */
XLB_INLINE int encap_outer4(struct xdp_md *ctx, struct pkt *p, const struct backend *b,
			    const struct next_hop *nh, __u32 hash, int gue)
{
	__u32 add = sizeof(struct iphdr) + (gue ? sizeof(struct udphdr) : 0);
	__u32 w0, w1, w2, saddr = outer_src_v4, daddr = b->addr[0];
	void *data, *data_end;
	struct ethhdr *eth;
	__u32 *iph;

	w0 = bpf_htonl(0x45000000 | (__u32)p->tos << 16 | ((p->ip_len + add) & 0xffff));
	w1 = (p->df || p->family == XLB_AF_INET6) ? bpf_htonl(XLB_IP_DF) : 0;
	w2 = bpf_htonl((__u32)XLB_IPIP_TTL << 24 | (__u32)(gue ? IPPROTO_UDP : inner_proto(p)) << 16);

	if (bpf_xdp_adjust_head(ctx, -(int)add))
		return encap_fail(p);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (p->vlan) {
		struct vlan_tag *tag = data + ETH_HLEN;

		iph = (void *)(tag + 1);
		if ((void *)iph + sizeof(struct iphdr) > data_end)
			return encap_fail(p);
		write_eth(eth, nh, bpf_htons(ETH_P_8021Q));
		tag->tci = p->vlan_tci;
		tag->proto = bpf_htons(ETH_P_IP);
	} else {
		iph = data + ETH_HLEN;
		if ((void *)iph + sizeof(struct iphdr) > data_end)
			return encap_fail(p);
		write_eth(eth, nh, bpf_htons(ETH_P_IP));
	}
	iph[0] = w0;
	iph[1] = w1;
	iph[2] = w2;
	iph[3] = saddr;
	iph[4] = daddr;
	/* Summing the words in memory order gives the checksum in memory
	 * order (as ipv4_csum): it is stored as it comes out. */
	*(__u16 *)((void *)iph + offsetof(struct iphdr, check)) =
		csum_fold((__u64)w0 + w1 + w2 + saddr + daddr);
	if (gue) {
		struct udphdr *uh = (void *)iph + sizeof(struct iphdr);

		if ((void *)(uh + 1) > data_end)
			return encap_fail(p);
		write_gue(uh, p, hash);
	}
	return XLB_CONTINUE;
}

/* encap_outer6 puts an outer IPv6 header (and, for GUE, a UDP header) in
 * front of the packet, which is IPv6 (6-in-6) or IPv4 (4-in-6). The flow
 * label carries the flow hash so that ECMP on the way keeps a flow on one
 * path. */
XLB_INLINE int encap_outer6(struct xdp_md *ctx, struct pkt *p, const struct backend *b,
			    const struct next_hop *nh, __u32 hash, int gue)
{
	__u32 add = sizeof(struct ipv6hdr) + (gue ? sizeof(struct udphdr) : 0);
	void *data, *data_end;
	struct ethhdr *eth;
	struct ipv6hdr *ip6h;

	if (bpf_xdp_adjust_head(ctx, -(int)add))
		return encap_fail(p);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (p->vlan) {
		struct vlan_tag *tag = data + ETH_HLEN;

		ip6h = (void *)(tag + 1);
		if ((void *)(ip6h + 1) > data_end)
			return encap_fail(p);
		write_eth(eth, nh, bpf_htons(ETH_P_8021Q));
		tag->tci = p->vlan_tci;
		tag->proto = bpf_htons(ETH_P_IPV6);
	} else {
		ip6h = data + ETH_HLEN;
		if ((void *)(ip6h + 1) > data_end)
			return encap_fail(p);
		write_eth(eth, nh, bpf_htons(ETH_P_IPV6));
	}
	ip6h->version = 6;
	ip6h->priority = p->tos >> 4;
	ip6h->flow_lbl[0] = ((p->tos & 0xf) << 4) | ((hash >> 16) & 0xf);
	ip6h->flow_lbl[1] = hash >> 8;
	ip6h->flow_lbl[2] = hash;
	ip6h->payload_len = bpf_htons(p->ip_len + add - sizeof(*ip6h));
	ip6h->nexthdr = gue ? IPPROTO_UDP : inner_proto(p);
	ip6h->hop_limit = XLB_IPIP_TTL;
#pragma unroll
	for (int i = 0; i < 4; i++)
		ip6h->saddr.in6_u.u6_addr32[i] = outer_src_v6[i];
	__builtin_memcpy(&ip6h->daddr, b->addr, 16);
	if (gue) {
		struct udphdr *uh = (void *)(ip6h + 1);

		if ((void *)(uh + 1) > data_end)
			return encap_fail(p);
		write_gue(uh, p, hash);
	}
	return XLB_CONTINUE;
}

/* encap wraps the packet for its backend: the outer family is the
 * backend's, the inner the client's (all four pairs), and the outer
 * protocol IP-in-IP or, for a GUE VIP, UDP to gue_port. */
XLB_INLINE int encap(struct xdp_md *ctx, struct pkt *p, const struct backend *b, __u32 bid, __u32 hash,
		     __u32 flags)
{
	int gue = (flags & XLB_VIP_GUE) != 0;
	__u32 overhead = (b->family == XLB_AF_INET ? XLB_IPV4_HDR_LEN : XLB_IPV6_HDR_LEN) +
			 (gue ? XLB_UDP_HDR_LEN : 0);
	struct next_hop nh;
	int ret;

	if (gue && !gue_port)
		return encap_fail(p);
	if (mtu && p->ip_len + overhead > mtu)
		return too_big(ctx, p, mtu, overhead);
	if (fib_mode) {
		ret = next_hop(ctx, p, b, bid, p->ip_len + overhead, 0, &nh);
		if (ret == XLB_FIB_TOO_BIG)
			return too_big(ctx, p, nh.mtu, overhead);
		if (ret != XLB_CONTINUE)
			return ret;
		p->oif = nh.oif;
	}
	if (b->family == XLB_AF_INET)
		return encap_outer4(ctx, p, b, &nh, hash, gue);
	return encap_outer6(ctx, p, b, &nh, hash, gue);
}

/* l2dsr forwards the packet as it is to an L7 host on this segment, which
 * has the VIP on its loopback: only the Ethernet header changes, the
 * destination to the host's MAC and the source to this host's own (a
 * bridge must not learn the client's MAC on this port). The host's MAC
 * comes from the neighbour table through the FIB, whatever next_hop_mac
 * says: that one is the router's. Nothing grows, so no MTU check. */
XLB_INLINE int l2dsr(struct xdp_md *ctx, struct pkt *p, const struct backend *b, __u32 bid)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct next_hop nh;
	int ret;

	ret = next_hop(ctx, p, b, bid, p->ip_len, 1, &nh);
	if (ret == XLB_FIB_TOO_BIG)
		return too_big(ctx, p, nh.mtu, 0);
	if (ret != XLB_CONTINUE)
		return ret;
	p->oif = nh.oif;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return encap_fail(p);
	__builtin_memcpy(eth->h_dest, nh.dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh.src, ETH_ALEN);
	return XLB_CONTINUE;
}

#endif /* XLB_ENCAP_H */
