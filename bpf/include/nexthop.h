/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* nexthop.h — where an encapsulated frame goes on the wire: the Ethernet
 * addresses of the next hop towards the L7 host. Either the configured
 * override (next_hop_mac, src_mac) or, when none is configured, the kernel's
 * FIB and neighbour table, asked per packet with bpf_fib_lookup: a router
 * failover or a neighbour whose MAC changes is followed at once, with no
 * cache to invalidate. Nothing is ever sent to a MAC nobody resolved: a
 * failed lookup is counted by cause and the untouched packet passed. */
#ifndef XLB_NEXTHOP_H
#define XLB_NEXTHOP_H

#include "parse.h"

/* AF_INET and AF_INET6 as bpf_fib_lookup wants them (linux/socket.h is not
 * a UAPI header the BPF target can include). */
#define XLB_FIB_AF_INET 2
#define XLB_FIB_AF_INET6 10

/* fib_next_hop's answer when the route's MTU is below the encapsulated
 * length: the caller treats it as its own MTU check failing. */
#define XLB_FIB_TOO_BIG (-2)

/* next_hop is the Ethernet addressing of one forwarded frame. */
struct next_hop {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
	__u16 mtu; /* with XLB_FIB_TOO_BIG: the route's MTU */
	__u32 oif; /* the egress interface when it is not the ingress one */
};

/* fib_fail counts a failed lookup under its cause and passes the packet,
 * untouched, to the kernel: for a missing neighbour the kernel's own
 * resolution (a managed neighbour entry, or traffic of its own) fills the
 * table and the next packets go out. */
XLB_INLINE int fib_fail(struct pkt *p, __u32 counter)
{
	stat_add(counter, p->len);
	return XDP_PASS;
}

/* fib_next_hop asks the kernel's FIB for the route to backend b from the
 * ingress interface, as if the encapsulated packet of tot_len bytes
 * arrived there to be forwarded: the result is the gateway's (or the on-link
 * backend's) MAC, the egress interface's own MAC, and the route's MTU.
 * on_link (L2 DSR, a constant at each call site) also requires the backend
 * itself to be the next hop: the frame keeps the VIP as its destination
 * address, which only a host on the segment can take. */
XLB_INLINE int fib_next_hop(struct xdp_md *ctx, struct pkt *p, const struct backend *b,
			    __u32 tot_len, int on_link, struct next_hop *nh, struct next_hop_entry *e)
{
	__u32 diff = 0;
	struct bpf_fib_lookup f = {};
	long rc;

	f.ifindex = ctx->ingress_ifindex;
	f.tot_len = tot_len;
	if (b->family == XLB_AF_INET) {
		f.family = XLB_FIB_AF_INET;
		f.l4_protocol = IPPROTO_IPIP;
		f.tos = p->tos;
		f.ipv4_src = outer_src_v4;
		f.ipv4_dst = b->addr[0];
	} else {
		f.family = XLB_FIB_AF_INET6;
		f.l4_protocol = IPPROTO_IPV6;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			f.ipv6_src[i] = outer_src_v6[i];
			f.ipv6_dst[i] = b->addr[i];
		}
	}
	rc = bpf_fib_lookup(ctx, &f, sizeof(f), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return fib_fail(p, XLB_CNT_FIB_NO_NEIGH);
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return fib_fail(p, XLB_CNT_FIB_NO_ROUTE);
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return fib_fail(p, XLB_CNT_FIB_FWD_DISABLED);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		nh->mtu = f.mtu_result;
		return XLB_FIB_TOO_BIG;
	default:
		return fib_fail(p, XLB_CNT_FIB_OTHER);
	}
	/* XDP_TX sends back out of the ingress interface; a route that
	 * leaves by another one is followed with XDP_REDIRECT when the
	 * balancer is attached there too (a two-armed host), else passed. */
	nh->oif = 0;
	if (f.ifindex != ctx->ingress_ifindex) {
		__u32 oif = f.ifindex;

		if (!bpf_map_lookup_elem(&tx_port_map, &oif))
			return fib_fail(p, XLB_CNT_FIB_OTHER_IFACE);
		nh->oif = oif;
	}
	/* The lookup leaves the gateway's address in the destination when
	 * the route has one. */
	if (b->family == XLB_AF_INET) {
		diff = f.ipv4_dst ^ b->addr[0];
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++)
			diff |= f.ipv6_dst[i] ^ b->addr[i];
	}
	if (on_link && diff)
		return fib_fail(p, XLB_CNT_L2DSR_NOT_ON_LINK);
	__builtin_memcpy(nh->dst, f.dmac, ETH_ALEN);
	__builtin_memcpy(nh->src, f.smac, ETH_ALEN);
	if (e && !dry_run) {
		__builtin_memcpy(e->dst, f.dmac, ETH_ALEN);
		__builtin_memcpy(e->src, f.smac, ETH_ALEN);
		e->mtu = f.mtu_result;
		e->on_link = !diff;
		e->ifindex = ctx->ingress_ifindex;
		e->oif = nh->oif;
		e->gen = b->gen;
		e->expires = bpf_jiffies64() + next_hop_jiffies;
	}
	return XLB_CONTINUE;
}

/* next_hop returns backend bid's next hop from this CPU's cache while the
 * entry is fresh and was asked for the same backend generation and
 * ingress interface (and, for on_link, names the backend itself), else
 * from the FIB, remembering a successful answer. Failures are never kept:
 * every packet asks again until the kernel resolves the next hop. The
 * route's MTU is checked against tot_len either way. */
XLB_INLINE int next_hop(struct xdp_md *ctx, struct pkt *p, const struct backend *b, __u32 bid,
			__u32 tot_len, int on_link, struct next_hop *nh)
{
	struct next_hop_entry *e = bpf_map_lookup_elem(&next_hop_map, &bid);

	if (e && e->expires > bpf_jiffies64() && e->gen == b->gen &&
	    e->ifindex == ctx->ingress_ifindex && (!on_link || e->on_link)) {
		if (tot_len > e->mtu) {
			nh->mtu = e->mtu;
			return XLB_FIB_TOO_BIG;
		}
		__builtin_memcpy(nh->dst, e->dst, ETH_ALEN);
		__builtin_memcpy(nh->src, e->src, ETH_ALEN);
		nh->oif = e->oif;
		return XLB_CONTINUE;
	}
	return fib_next_hop(ctx, p, b, tot_len, on_link, nh, e);
}

#endif /* XLB_NEXTHOP_H */
