/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* parse.h — Ethernet, IPv4, IPv6, TCP and UDP parsing with a bounds check
 * before every read. Fills struct pkt; returns XLB_CONTINUE when the packet
 * is a well-formed TCP or UDP packet that may be for a VIP, else a verdict.
 * Malformed packets (truncated, bogus IHL or lengths) are dropped: the
 * kernel's own receive path would drop exactly these too, and a balancer
 * must not forward what it could not read. Anything it does not handle but
 * is well-formed (ARP, ICMP, long IPv6 extension-header chains, stacked
 * VLAN tags) passes, counted by cause. */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "stats.h"

/* pkt is what the pipeline knows about the packet after parsing. */
struct pkt {
	struct conn_key key;  /* the 5-tuple, addresses in network order */
	__u32 len;            /* frame length, for the byte counters */
	__u32 ip_len;         /* IP datagram length (header + payload) */
	__u8 family;          /* XLB_AF_INET or XLB_AF_INET6 */
	__u8 proto;           /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 syn;             /* TCP SYN without ACK: a new connection */
	__u8 fin;             /* TCP FIN or RST: the client is closing */
	__u8 tos;             /* IPv4 TOS / IPv6 traffic class, copied outward */
	__u8 df;              /* IPv4 DF, copied outward */
	__u8 frag;            /* an IP fragment: addresses only, no ports */
	__u8 vlan;            /* the frame carries one 802.1Q tag */
	__be16 vlan_tci;      /* its TCI (priority, DEI, VLAN id), kept outward */
	__u32 oif;            /* set by the next hop: redirect out of this interface */
	__u8 icmp;            /* an ICMP error about a VIP flow: key is that flow's */
	__u8 reason;          /* the counter the exit counts with the verdict, + 1; 0: none */
};

/* An 802.1Q tag after the MAC addresses. */
struct vlan_tag {
	__be16 tci;
	__be16 proto; /* the ethertype it encloses */
};

/* IPv6 fragment header (RFC 8200 4.5). */
struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

/* count_at_exit leaves a packet's main reason, counter, to the exit
 * (xlb_ingress), which counts it together with the verdict in one
 * pair_stats_map update. Only the first reason of a packet is left so (the
 * parser's, or the connection table's decision); later ones, which come on
 * top of it, are counted at once with stat_add. */
XLB_INLINE void count_at_exit(struct pkt *p, __u32 counter)
{
	p->reason = counter + 1;
}

/* pass counts why a packet is not the balancer's and lets it through. */
XLB_INLINE int pass(struct pkt *p, __u32 counter)
{
	count_at_exit(p, counter);
	return XDP_PASS;
}

/* not_vip passes a TCP or UDP packet that no VIP matches. */
XLB_INLINE int not_vip(struct pkt *p)
{
	return pass(p, XLB_CNT_NOT_VIP);
}

XLB_INLINE int malformed(struct pkt *p)
{
	count_at_exit(p, XLB_CNT_MALFORMED);
	return XDP_DROP;
}

/* parse_ports reads the TCP or UDP header at l4_off; payload is the number of
 * bytes the IP header says follow it. */
XLB_INLINE int parse_ports(struct pkt *p, void *data, void *data_end, __u32 l4_off, __u32 payload)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4_off;

		if ((void *)(th + 1) > data_end || th->doff < 5 || (__u32)th->doff * 4 > payload)
			return malformed(p);
		p->key.sport = th->source;
		p->key.dport = th->dest;
		p->syn = th->syn && !th->ack;
		p->fin = th->fin || th->rst;
		return XLB_CONTINUE;
	}

	struct udphdr *uh = data + l4_off;
	__u16 ulen;

	if ((void *)(uh + 1) > data_end)
		return malformed(p);
	ulen = bpf_ntohs(uh->len);
	if (ulen < sizeof(*uh) || ulen > payload)
		return malformed(p);
	p->key.sport = uh->source;
	p->key.dport = uh->dest;
	return XLB_CONTINUE;
}

/* An ICMP or ICMPv6 error's first 8 bytes: type, code, checksum and 4
 * bytes the message defines; the offending packet's headers follow. */
struct icmp_err_hdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};

/* quoted_ports reads the ports of the quoted TCP or UDP header at off
 * (8 bytes are quoted, at least the 4 with the ports) into the flow's key
 * reversed: the quoted packet went from the VIP to the client. */
XLB_INLINE int quoted_ports(struct pkt *p, void *data, void *data_end, __u32 off)
{
	__be16 *ports = data + off;

	if ((void *)(ports + 2) > data_end)
		return pass(p, XLB_CNT_OTHER_L4);
	p->key.sport = ports[1];
	p->key.dport = ports[0];
	p->icmp = 1;
	return XLB_CONTINUE;
}

/* parse_icmp4_err reads an ICMP "destination unreachable" (fragmentation
 * needed among its codes) at l4 of a packet to dst: when it quotes a TCP
 * or UDP packet from dst (the VIP, as the L7 host answered from it), the
 * key becomes that flow's 5-tuple (client to VIP) and the packet goes to
 * the flow's L7 host. Any other ICMP passes as other_l4. */
XLB_INLINE int parse_icmp4_err(struct pkt *p, void *data, void *data_end, __u32 l4, __be32 dst)
{
	struct icmp_err_hdr *ih = data + l4;
	struct iphdr *q;
	__u32 qihl;

	if ((void *)(ih + 1) > data_end || ih->type != XLB_ICMP_UNREACH)
		return pass(p, XLB_CNT_OTHER_L4);
	q = (void *)(ih + 1);
	if ((void *)(q + 1) > data_end || q->version != 4 || q->ihl < 5 || q->saddr != dst ||
	    (q->protocol != IPPROTO_TCP && q->protocol != IPPROTO_UDP) ||
	    (q->frag_off & bpf_htons(XLB_IP_OFFSET)))
		return pass(p, XLB_CNT_OTHER_L4);
	qihl = ((__u32)q->ihl & 0xf) * 4;
	p->key.proto = p->proto = q->protocol;
	p->key.src[0] = q->daddr;
	p->key.dst[0] = q->saddr;
	return quoted_ports(p, data, data_end, l4 + sizeof(*ih) + qihl);
}

/* parse_icmp6_err is parse_icmp4_err for ICMPv6 "destination unreachable"
 * and "packet too big"; the quoted IPv6 header must be followed by the TCP
 * or UDP header itself (no extension headers). */
XLB_INLINE int parse_icmp6_err(struct pkt *p, void *data, void *data_end, __u32 l4, const struct in6_addr *dst)
{
	struct icmp_err_hdr *ih = data + l4;
	struct ipv6hdr *q;
	__u32 diff = 0;

	if ((void *)(ih + 1) > data_end || (ih->type != XLB_ICMPV6_UNREACH && ih->type != XLB_ICMPV6_TOO_BIG))
		return pass(p, XLB_CNT_OTHER_L4);
	q = (void *)(ih + 1);
	if ((void *)(q + 1) > data_end || q->version != 6 ||
	    (q->nexthdr != IPPROTO_TCP && q->nexthdr != IPPROTO_UDP))
		return pass(p, XLB_CNT_OTHER_L4);
#pragma unroll
	for (int i = 0; i < 4; i++)
		diff |= q->saddr.in6_u.u6_addr32[i] ^ dst->in6_u.u6_addr32[i];
	if (diff)
		return pass(p, XLB_CNT_OTHER_L4);
	p->key.proto = p->proto = q->nexthdr;
	__builtin_memcpy(p->key.src, &q->daddr, sizeof(p->key.src));
	__builtin_memcpy(p->key.dst, &q->saddr, sizeof(p->key.dst));
	return quoted_ports(p, data, data_end, l4 + sizeof(*ih) + sizeof(*q));
}

/* parse_ipv4 reads the IPv4 header at l3 (after the Ethernet header and
 * its tag, if any). Options are skipped: the ports are found past IHL*4
 * and the packet is forwarded with them. A TCP or UDP fragment carries no
 * ports (or only the first does): it continues with p->frag set, for the
 * pipeline to drop it if it is addressed to a VIP. */
XLB_INLINE int parse_ipv4(struct pkt *p, void *data, void *data_end, __u32 l3)
{
	struct iphdr *iph = data + l3;
	__u32 ihl_len, tot_len;

	if ((void *)(iph + 1) > data_end)
		return malformed(p);
	ihl_len = (__u32)iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || ihl_len < sizeof(*iph) || tot_len < ihl_len ||
	    data + l3 + tot_len > data_end)
		return malformed(p);
	if (iph->protocol == IPPROTO_ICMP && !(iph->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET))) {
		p->key.family = p->family = XLB_AF_INET;
		p->tos = iph->tos;
		p->df = !!(iph->frag_off & bpf_htons(XLB_IP_DF));
		p->ip_len = tot_len;
		return parse_icmp4_err(p, data, data_end, l3 + (ihl_len & 0x3c), iph->daddr);
	}
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
		return pass(p, XLB_CNT_OTHER_L4);
	p->key.family = p->family = XLB_AF_INET;
	p->key.proto = p->proto = iph->protocol;
	p->tos = iph->tos;
	p->df = !!(iph->frag_off & bpf_htons(XLB_IP_DF));
	p->ip_len = tot_len;
	p->key.src[0] = iph->saddr;
	p->key.dst[0] = iph->daddr;
	if (iph->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET)) {
		p->frag = 1;
		return XLB_CONTINUE;
	}
	return parse_ports(p, data, data_end, l3 + ihl_len, tot_len - ihl_len);
}

/* ipv6_ext_hdr says whether next header nh is one parse_ipv6 walks past:
 * hop-by-hop options, routing and destination options (RFC 8200 4.1). */
XLB_INLINE int ipv6_ext_hdr(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS;
}

/* parse_ipv6 reads the IPv6 header at l3 and walks up to
 * XLB_IPV6_MAX_EXT hop-by-hop, routing and destination-options headers to
 * the transport header; a chain longer than that passes as other_l4
 * (untouched, for the kernel). A fragment header makes the packet a
 * fragment (as for IPv4). */
XLB_INLINE int parse_ipv6(struct pkt *p, void *data, void *data_end, __u32 l3)
{
	struct ipv6hdr *ip6h = data + l3;
	__u32 plen, off, ext;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end)
		return malformed(p);
	plen = bpf_ntohs(ip6h->payload_len);
	if (ip6h->version != 6 || data + l3 + sizeof(*ip6h) + plen > data_end)
		return malformed(p);
	nexthdr = ip6h->nexthdr;
	off = l3 + sizeof(*ip6h);
#pragma unroll
	for (int i = 0; i < XLB_IPV6_MAX_EXT; i++) {
		struct ipv6_opt_hdr *oh = data + off;

		if (!ipv6_ext_hdr(nexthdr))
			break;
		if ((void *)(oh + 1) > data_end)
			return malformed(p);
		nexthdr = oh->nexthdr;
		off += ((__u32)oh->hdrlen + 1) * 8;
	}
	if (ipv6_ext_hdr(nexthdr))
		return pass(p, XLB_CNT_OTHER_L4);
	if (nexthdr == IPPROTO_FRAGMENT) {
		struct ipv6_frag *fh = data + off;

		if ((void *)(fh + 1) > data_end)
			return malformed(p);
		nexthdr = fh->nexthdr;
		off += sizeof(*fh);
		p->frag = 1;
	}
	ext = off - (l3 + sizeof(*ip6h));
	if (ext > plen)
		return malformed(p);
	if (nexthdr == IPPROTO_ICMPV6 && !p->frag) {
		p->key.family = p->family = XLB_AF_INET6;
		p->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
		p->ip_len = sizeof(*ip6h) + plen;
		return parse_icmp6_err(p, data, data_end, off, &ip6h->daddr);
	}
	if (nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP)
		return pass(p, XLB_CNT_OTHER_L4);
	p->key.family = p->family = XLB_AF_INET6;
	p->key.proto = p->proto = nexthdr;
	p->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
	p->ip_len = sizeof(*ip6h) + plen;
	__builtin_memcpy(p->key.src, &ip6h->saddr, sizeof(p->key.src));
	__builtin_memcpy(p->key.dst, &ip6h->daddr, sizeof(p->key.dst));
	if (p->frag)
		return XLB_CONTINUE;
	return parse_ports(p, data, data_end, off, plen - ext);
}

/* parse_packet dispatches on the ethertype, past one 802.1Q tag. Frames
 * shorter than their Ethernet header, other ethertypes and stacked tags
 * pass untouched, each counted under its cause. */
XLB_INLINE int parse_packet(struct pkt *p, void *data, void *data_end)
{
	struct ethhdr *eth = data;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return pass(p, XLB_CNT_SHORT_FRAME);
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_tag *tag = data + ETH_HLEN;

		if ((void *)(tag + 1) > data_end)
			return pass(p, XLB_CNT_SHORT_FRAME);
		proto = tag->proto;
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
			return pass(p, XLB_CNT_VLAN_STACKED);
		p->vlan = 1;
		p->vlan_tci = tag->tci;
		if (proto == bpf_htons(ETH_P_IP))
			return parse_ipv4(p, data, data_end, ETH_HLEN + sizeof(*tag));
		if (proto == bpf_htons(ETH_P_IPV6))
			return parse_ipv6(p, data, data_end, ETH_HLEN + sizeof(*tag));
		return pass(p, XLB_CNT_NOT_IP);
	}
	if (proto == bpf_htons(ETH_P_8021AD))
		return pass(p, XLB_CNT_VLAN_STACKED);
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(p, data, data_end, ETH_HLEN);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(p, data, data_end, ETH_HLEN);
	return pass(p, XLB_CNT_NOT_IP);
}

#endif /* XLB_PARSE_H */
