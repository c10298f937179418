// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* decap.c — xlb's decapsulator for the L7 hosts. The L4 balancer forwards
 * each flow to an L7 host inside a tunnel; kernels at the edge often have no
 * ipip or fou module, so this XDP program strips the outer headers itself and
 * hands the inner packet (client's real source, destination = VIP on the
 * host's loopback) to the kernel stack with XDP_PASS.
 *
 * Tunnels (docs/decap.md): IP-in-IP (IPv4 protocol 4/41, IPv6 next header
 * 4/41) and GUE variant 1, which is the inner IP packet directly after a UDP
 * header whose destination port is gue_port; either inner family in either
 * outer family.
 *
 * Per frame:
 *   1. Parse Ethernet (one optional 802.1Q/802.1ad tag) and the outer IPv4 or
 *      IPv6 header (and UDP header). A frame whose outer headers cannot be
 *      parsed is not recognisably tunnel traffic: it passes untouched for the
 *      kernel to judge (DECAP_PASSED).
 *   2. Anything that is not one of the tunnels above passes untouched
 *      (DECAP_PASSED). Outer IPv6 extension headers are not walked: the
 *      balancer never emits them.
 *   3. A tunnel whose outer destination is not a local address (it may be
 *      routed on, or belong to a kernel tunnel) passes untouched
 *      (DECAP_NOT_FOR_US).
 *   4. A tunnel for us whose headers are inconsistent (fragment, bogus IHL or
 *      lengths, an inner version that is neither 4 nor 6 or not the one the
 *      outer header names, truncated) is dropped (DECAP_MALFORMED): passing it
 *      would only reach a stack without tunnel support, which answers with an
 *      ICMP unreachable.
 *   5. Otherwise the outer headers are removed, the L2 header moved forward
 *      with the inner family's EtherType, and the frame passes (DECAP_V4 /
 *      DECAP_V6 for IP-in-IP, DECAP_GUE_V4 / DECAP_GUE_V6 for GUE).
 * The outcome is counted once, at the single exit. */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "include/consts.h"
#include "include/types.h"
#include "include/decap_types.h"
#include "include/decap_maps.h"

#ifndef IPPROTO_IPV6
#define IPPROTO_IPV6 41
#endif

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* tunnel is what the program knows about a frame once it is recognised. */
struct tunnel {
	__u32 slot;        /* enum decap_counter: the outcome so far */
	__u32 l2_len;      /* Ethernet header and tag */
	__u32 outer_len;   /* bytes to strip after the L2 header */
	__u32 claimed;     /* bytes the outer header says follow it */
	__u8 inner;        /* IPPROTO_IPIP or IPPROTO_IPV6: the inner family */
	__u8 gue;          /* the tunnel is GUE: a UDP header follows the outer IP */
};

/* decap_count bumps one counter slot by one frame of len bytes. */
XLB_INLINE void decap_count(__u32 slot, __u64 len)
{
	struct xlb_stat *s = bpf_map_lookup_elem(&decap_stats_map, &slot);

	if (s) {
		s->packets++;
		s->bytes += len;
	}
}

XLB_INLINE int local_v4(__be32 addr)
{
	struct decap_addr4 key;

	__builtin_memcpy(key.addr, &addr, 4);
	return bpf_map_lookup_elem(&decap_v4_addr_map, &key) != NULL;
}

XLB_INLINE int local_v6(const struct in6_addr *addr)
{
	struct decap_addr6 key;

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&decap_v6_addr_map, &key) != NULL;
}

/* malformed marks a tunnel for us that cannot be decapsulated. */
XLB_INLINE int malformed(struct tunnel *t)
{
	t->slot = DECAP_MALFORMED;
	return XDP_DROP;
}

/* is_gue says whether the UDP header at uh (already bounds checked) is
 * addressed to the GUE port. */
XLB_INLINE int is_gue(const struct udphdr *uh)
{
	return gue_port && uh->dest == gue_port;
}

/* gue_inner checks the UDP header of a GUE tunnel for us, at uh (already
 * bounds checked), and the first byte after it. GUE variant 1 has no GUE
 * header: the IP version nibble of the inner packet (4 or 6) is the variant
 * and the family at once; anything else, variant 0 included, is malformed. */
XLB_INLINE int gue_inner(struct tunnel *t, struct udphdr *uh, void *data_end)
{
	__u8 *first = (void *)(uh + 1);
	__u32 ulen;

	if ((void *)(first + 1) > data_end)
		return malformed(t);
	ulen = bpf_ntohs(uh->len);
	if (ulen < sizeof(*uh) || ulen > t->claimed)
		return malformed(t);
	t->claimed = ulen - sizeof(*uh);
	t->outer_len += sizeof(*uh);
	switch (*first >> 4) {
	case 4:
		t->inner = IPPROTO_IPIP;
		return XLB_CONTINUE;
	case 6:
		t->inner = IPPROTO_IPV6;
		return XLB_CONTINUE;
	}
	return malformed(t);
}

/* outer_v4 recognises an IPv4 tunnel packet for this host at l3. */
XLB_INLINE int outer_v4(struct tunnel *t, void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	struct udphdr *uh = 0;
	__u32 tot;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_UDP) {
		/* Only a packet whose UDP header can be found may be GUE: a
		 * later fragment has none, a bogus IHL hides it. */
		if (!gue_port || ip->ihl < 5 || (ip->frag_off & bpf_htons(XLB_IP_OFFSET)))
			return XDP_PASS;
		uh = l3 + (__u32)ip->ihl * 4;
		if ((void *)(uh + 1) > data_end || !is_gue(uh))
			return XDP_PASS;
		t->gue = 1;
	} else if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6) {
		return XDP_PASS;
	}
	if (!local_v4(ip->daddr)) {
		t->slot = DECAP_NOT_FOR_US;
		return XDP_PASS;
	}
	if (ip->version != 4 || ip->ihl < 5)
		return malformed(t);
	/* A fragment cannot be decapsulated on its own; the balancer never
	 * fragments, so one is a fault, not traffic. */
	if (ip->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET))
		return malformed(t);
	t->outer_len = (__u32)ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	/* The outer header must not claim more than the frame holds (the
	 * stack would drop it); trailing padding is fine. */
	if (tot < t->outer_len || l3 + tot > data_end)
		return malformed(t);
	t->claimed = tot - t->outer_len;
	if (uh)
		return gue_inner(t, uh, data_end);
	t->inner = ip->protocol;
	return XLB_CONTINUE;
}

/* outer_v6 recognises an IPv6 tunnel packet for this host at l3. */
XLB_INLINE int outer_v6(struct tunnel *t, void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;
	struct udphdr *uh = 0;
	__u32 payload;

	if ((void *)(ip6 + 1) > data_end)
		return XDP_PASS;
	if (ip6->nexthdr == IPPROTO_UDP) {
		if (!gue_port)
			return XDP_PASS;
		uh = l3 + XLB_IPV6_HDR_LEN;
		if ((void *)(uh + 1) > data_end || !is_gue(uh))
			return XDP_PASS;
		t->gue = 1;
	} else if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6) {
		return XDP_PASS;
	}
	if (!local_v6(&ip6->daddr)) {
		t->slot = DECAP_NOT_FOR_US;
		return XDP_PASS;
	}
	if (ip6->version != 6)
		return malformed(t);
	t->outer_len = XLB_IPV6_HDR_LEN;
	payload = bpf_ntohs(ip6->payload_len);
	if (l3 + XLB_IPV6_HDR_LEN + payload > data_end)
		return malformed(t);
	t->claimed = payload;
	if (uh)
		return gue_inner(t, uh, data_end);
	t->inner = ip6->nexthdr;
	return XLB_CONTINUE;
}

/* inner_check checks the inner header at p against the bytes the outer
 * header claims and the frame holds. It returns the inner EtherType (host
 * order), or 0 when the inner packet is malformed. */
XLB_INLINE __u16 inner_check(const struct tunnel *t, void *p, void *data_end)
{
	__u32 tot;

	if (t->inner == IPPROTO_IPIP) {
		struct iphdr *in = p;

		if ((void *)(in + 1) > data_end)
			return 0;
		if (in->version != 4 || in->ihl < 5)
			return 0;
		tot = bpf_ntohs(in->tot_len);
		if (tot < (__u32)in->ihl * 4 || tot > t->claimed || p + tot > data_end)
			return 0;
		return ETH_P_IP;
	}
	struct ipv6hdr *in6 = p;

	if ((void *)(in6 + 1) > data_end)
		return 0;
	if (in6->version != 6)
		return 0;
	tot = (__u32)bpf_ntohs(in6->payload_len) + XLB_IPV6_HDR_LEN;
	if (tot > t->claimed || p + tot > data_end)
		return 0;
	return ETH_P_IPV6;
}

/* strip removes the outer header: the L2 header (and tag) at data, bounds
 * checked by the caller, is kept aside, the head moved past the outer
 * header, and the L2 header written back in front of the inner packet with
 * the inner family's EtherType. */
XLB_INLINE int strip(struct xdp_md *ctx, struct tunnel *t, void *data, __u16 inner_proto)
{
	__u8 l2[sizeof(struct ethhdr) + sizeof(struct vlan_hdr)];
	void *data_end;

	if (t->l2_len == sizeof(struct ethhdr))
		__builtin_memcpy(l2, data, sizeof(struct ethhdr));
	else
		__builtin_memcpy(l2, data, sizeof(l2));
	if (bpf_xdp_adjust_head(ctx, (int)t->outer_len))
		return malformed(t); /* the frame is unchanged */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (t->l2_len == sizeof(struct ethhdr)) {
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > data_end)
			return malformed(t);
		__builtin_memcpy(eth, l2, sizeof(struct ethhdr));
		eth->h_proto = bpf_htons(inner_proto);
	} else {
		struct vlan_hdr *vh = data + sizeof(struct ethhdr);

		if ((void *)(vh + 1) > data_end)
			return malformed(t);
		__builtin_memcpy(data, l2, sizeof(l2));
		vh->proto = bpf_htons(inner_proto);
	}
	if (t->gue)
		t->slot = inner_proto == ETH_P_IP ? DECAP_GUE_V4 : DECAP_GUE_V6;
	else
		t->slot = inner_proto == ETH_P_IP ? DECAP_V4 : DECAP_V6;
	return XDP_PASS;
}

XLB_INLINE int process_frame(struct xdp_md *ctx, struct tunnel *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l2_len = sizeof(struct ethhdr);
	__u16 inner_proto;
	__be16 proto;
	void *l3;
	int ret;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > data_end)
			return XDP_PASS;
		proto = vh->proto;
		l2_len += sizeof(struct vlan_hdr);
	}
	t->l2_len = l2_len;
	l3 = data + l2_len;
	if (proto == bpf_htons(ETH_P_IP))
		ret = outer_v4(t, l3, data_end);
	else if (proto == bpf_htons(ETH_P_IPV6))
		ret = outer_v6(t, l3, data_end);
	else
		return XDP_PASS;
	if (ret != XLB_CONTINUE)
		return ret;
	inner_proto = inner_check(t, l3 + t->outer_len, data_end);
	if (!inner_proto)
		return malformed(t);
	return strip(ctx, t, data, inner_proto);
}

SEC("xdp")
int xlb_decap(struct xdp_md *ctx)
{
	__u64 len = (void *)(long)ctx->data_end - (void *)(long)ctx->data;
	struct tunnel t = { .slot = DECAP_PASSED };
	int act = process_frame(ctx, &t);

	decap_count(t.slot, len);
	return act;
}
