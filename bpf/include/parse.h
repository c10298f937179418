/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* parse.h — Ethernet, IPv4, IPv6, TCP and UDP parsing with a bounds check
 * before every read. Fills struct pkt; returns XLB_CONTINUE when the packet
 * is a well-formed TCP or UDP packet that may be for a VIP, else a verdict.
 * Malformed packets (truncated, bogus IHL or lengths) are dropped: the
 * kernel's own receive path would drop exactly these too, and a balancer
 * must not forward what it could not read. Anything it does not understand
 * but is well-formed (ARP, ICMP, fragments, IPv6 extension headers) passes. */
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
	__u8 tos;             /* IPv4 TOS / IPv6 traffic class, copied outward */
	__u8 df;              /* IPv4 DF, copied outward */
};

/* parse_ports reads the TCP or UDP header at l4_off; payload is the number of
 * bytes the IP header says follow it. */
XLB_INLINE int parse_ports(struct pkt *p, void *data, void *data_end, __u32 l4_off, __u32 payload)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4_off;

		if ((void *)(th + 1) > data_end || th->doff < 5 || (__u32)th->doff * 4 > payload)
			goto malformed;
		p->key.sport = th->source;
		p->key.dport = th->dest;
		p->syn = th->syn && !th->ack;
		return XLB_CONTINUE;
	}

	struct udphdr *uh = data + l4_off;
	__u16 ulen;

	if ((void *)(uh + 1) > data_end)
		goto malformed;
	ulen = bpf_ntohs(uh->len);
	if (ulen < sizeof(*uh) || ulen > payload)
		goto malformed;
	p->key.sport = uh->source;
	p->key.dport = uh->dest;
	return XLB_CONTINUE;

malformed:
	stat_add(XLB_CNT_MALFORMED, p->len);
	return XDP_DROP;
}

XLB_INLINE int parse_ipv4(struct pkt *p, void *data, void *data_end)
{
	struct iphdr *iph = data + ETH_HLEN;
	__u32 ihl_len, tot_len;

	if ((void *)(iph + 1) > data_end)
		goto malformed;
	ihl_len = (__u32)iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || ihl_len < sizeof(*iph) || tot_len < ihl_len ||
	    data + ETH_HLEN + tot_len > data_end)
		goto malformed;
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP) {
		stat_add(XLB_CNT_NOT_VIP, p->len);
		return XDP_PASS;
	}
	if (iph->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET)) {
		/* No ports to find the VIP with; the breadth work reassembles
		 * or hashes on addresses only. */
		stat_add(XLB_CNT_FRAGMENT, p->len);
		return XDP_PASS;
	}
	p->key.family = p->family = XLB_AF_INET;
	p->key.proto = p->proto = iph->protocol;
	p->tos = iph->tos;
	p->df = !!(iph->frag_off & bpf_htons(XLB_IP_DF));
	p->ip_len = tot_len;
	p->key.src[0] = iph->saddr;
	p->key.dst[0] = iph->daddr;
	return parse_ports(p, data, data_end, ETH_HLEN + ihl_len, tot_len - ihl_len);

malformed:
	stat_add(XLB_CNT_MALFORMED, p->len);
	return XDP_DROP;
}

XLB_INLINE int parse_ipv6(struct pkt *p, void *data, void *data_end)
{
	struct ipv6hdr *ip6h = data + ETH_HLEN;
	__u32 plen;

	if ((void *)(ip6h + 1) > data_end)
		goto malformed;
	plen = bpf_ntohs(ip6h->payload_len);
	if (ip6h->version != 6 || data + ETH_HLEN + sizeof(*ip6h) + plen > data_end)
		goto malformed;
	if (ip6h->nexthdr != IPPROTO_TCP && ip6h->nexthdr != IPPROTO_UDP) {
		stat_add(XLB_CNT_NOT_VIP, p->len);
		return XDP_PASS;
	}
	p->key.family = p->family = XLB_AF_INET6;
	p->key.proto = p->proto = ip6h->nexthdr;
	p->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
	p->ip_len = sizeof(*ip6h) + plen;
	__builtin_memcpy(p->key.src, &ip6h->saddr, sizeof(p->key.src));
	__builtin_memcpy(p->key.dst, &ip6h->daddr, sizeof(p->key.dst));
	return parse_ports(p, data, data_end, ETH_HLEN + sizeof(*ip6h), plen);

malformed:
	stat_add(XLB_CNT_MALFORMED, p->len);
	return XDP_DROP;
}

/* parse_packet dispatches on the ethertype. Frames shorter than an Ethernet
 * header and other ethertypes (ARP, VLAN for now) pass untouched. */
XLB_INLINE int parse_packet(struct pkt *p, void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end) {
		stat_add(XLB_CNT_NOT_VIP, p->len);
		return XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(p, data, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(p, data, data_end);
	stat_add(XLB_CNT_NOT_VIP, p->len);
	return XDP_PASS;
}

#endif /* XLB_PARSE_H */
