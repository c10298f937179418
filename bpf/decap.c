// SPDX-License-Identifier: GPL-2.0
//
// decap.c: xlb's decapsulator for the L7 hosts. The L4 balancer forwards
// each flow to an L7 host inside an IP-in-IP tunnel; kernels at the edge
// often have no ipip module, so this XDP program strips the outer header
// itself and hands the inner packet (client's real source, destination =
// VIP on the host's loopback) to the kernel stack with XDP_PASS.
//
// Per frame:
//   1. Parse Ethernet (one optional 802.1Q/802.1ad tag) and the outer IPv4 or
//      IPv6 header. A frame whose outer header cannot be parsed is not
//      recognisably tunnel traffic: it passes untouched for the kernel to
//      judge (counter DECAP_PASSED).
//   2. Only IPv4 protocol 4/41 and IPv6 next header 4/41 are tunnels. Any
//      other frame passes untouched (DECAP_PASSED).
//   3. A tunnel whose outer destination is not in decap_v4_addr_map /
//      decap_v6_addr_map is not ours
//      (it may be routed on, or belong to a kernel tunnel): untouched,
//      DECAP_NOT_FOR_US.
//   4. A tunnel for us whose outer or inner header is inconsistent (fragment,
//      bogus IHL or lengths, wrong inner version, truncated) is dropped:
//      DECAP_MALFORMED. Passing it would only reach a stack without ipip
//      support, which answers with ICMP protocol unreachable.
//   5. Otherwise the outer header is removed with bpf_xdp_adjust_head, the
//      L2 header is moved forward and its EtherType set to the inner family
//      (v4-in-v6 and v6-in-v4 work as well), and the frame passes:
//      DECAP_V4 / DECAP_V6 by inner family.
// Outer IPv6 extension headers are not walked: the balancer never emits
// them, so IPv6 with an extension header is plain traffic (step 2).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef IPPROTO_IPV6
#define IPPROTO_IPV6 41
#endif

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

// decap_counter names the slots of decap_stats_map. Go mirrors it
// (bpf2go -type) and uses the names as metric labels.
enum decap_counter {
	DECAP_V4 = 0,      // decapsulated, inner IPv4
	DECAP_V6 = 1,      // decapsulated, inner IPv6
	DECAP_NOT_FOR_US = 2, // tunnel, outer destination not a local address
	DECAP_MALFORMED = 3,  // tunnel for us with a bad outer or inner header: dropped
	DECAP_PASSED = 4,     // not a tunnel (or unparsable outer header): untouched
	DECAP_COUNTER_MAX = 5,
};

// decap_stat is one counter slot; bytes are frame bytes as received.
struct decap_stat {
	__u64 packets;
	__u64 bytes;
};

// A local address, in wire order. One map per family: hashing a 4-byte
// key is measurably cheaper than an IPv4-mapped 16-byte one, and IPv4 is
// the common case.
struct decap_addr4 {
	__u8 addr[4];
};

struct decap_addr6 {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);              // resized from Go (Config.MaxAddrs)
	__type(key, struct decap_addr4);      // an outer IPv4 destination we decapsulate
	__type(value, __u8);                  // unused (presence is the answer)
} decap_v4_addr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);              // resized from Go (Config.MaxAddrs)
	__type(key, struct decap_addr6);      // an outer IPv6 destination we decapsulate
	__type(value, __u8);                  // unused (presence is the answer)
} decap_v6_addr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_COUNTER_MAX);
	__type(key, enum decap_counter);      // counter slot (4 bytes, so Go gets the enum)
	__type(value, struct decap_stat);     // per CPU, summed by Go
} decap_stats_map SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int is_local_v4(__be32 addr)
{
	struct decap_addr4 key;

	__builtin_memcpy(key.addr, &addr, 4);
	return bpf_map_lookup_elem(&decap_v4_addr_map, &key) != NULL;
}

static __always_inline int is_local_v6(const struct in6_addr *addr)
{
	struct decap_addr6 key;

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&decap_v6_addr_map, &key) != NULL;
}

// inner_ok checks the inner header at p (avail bytes of outer payload are
// in the frame, claimed bytes by the outer header). It returns the inner
// EtherType, or 0 when the inner packet is malformed.
static __always_inline __u16 inner_ok(void *p, void *data_end, __u8 proto, __u32 claimed)
{
	if (proto == IPPROTO_IPIP) {
		struct iphdr *in = p;

		if ((void *)(in + 1) > data_end)
			return 0;
		if (in->version != 4 || in->ihl < 5)
			return 0;
		__u32 tot = bpf_ntohs(in->tot_len);
		if (tot < (__u32)in->ihl * 4 || tot > claimed)
			return 0;
		if (p + tot > data_end)
			return 0;
		return ETH_P_IP;
	}
	struct ipv6hdr *in6 = p;

	if ((void *)(in6 + 1) > data_end)
		return 0;
	if (in6->version != 6)
		return 0;
	__u32 tot = (__u32)bpf_ntohs(in6->payload_len) + sizeof(*in6);
	if (tot > claimed)
		return 0;
	if (p + tot > data_end)
		return 0;
	return ETH_P_IPV6;
}

SEC("xdp")
int xlb_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 frame_len = data_end - data;
	enum decap_counter slot = DECAP_PASSED;
	int verdict = XDP_PASS;
	__u32 l2_len = sizeof(struct ethhdr);
	__u32 outer_len;
	__u16 inner_proto;
	__u8 l2[sizeof(struct ethhdr) + sizeof(struct vlan_hdr)];

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		goto done;
	__be16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = (void *)(eth + 1);
		if ((void *)(vh + 1) > data_end)
			goto done;
		proto = vh->proto;
		l2_len += sizeof(struct vlan_hdr);
	}

	void *l3 = data + l2_len;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			goto done;
		if (ip->protocol != IPPROTO_IPIP && ip->protocol != IPPROTO_IPV6)
			goto done;
		if (!is_local_v4(ip->daddr)) {
			slot = DECAP_NOT_FOR_US;
			goto done;
		}
		slot = DECAP_MALFORMED;
		verdict = XDP_DROP;
		if (ip->version != 4 || ip->ihl < 5)
			goto done;
		// A fragment cannot be decapsulated on its own; the balancer
		// never fragments, so one is a fault, not traffic.
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			goto done;
		outer_len = (__u32)ip->ihl * 4;
		__u32 tot = bpf_ntohs(ip->tot_len);
		// The outer header must not claim more than the frame holds
		// (the stack would drop it); trailing padding is fine.
		if (tot < outer_len)
			goto done;
		if (l3 + tot > data_end)
			goto done;
		inner_proto = inner_ok(l3 + outer_len, data_end, ip->protocol, tot - outer_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			goto done;
		if (ip6->nexthdr != IPPROTO_IPIP && ip6->nexthdr != IPPROTO_IPV6)
			goto done;
		if (!is_local_v6(&ip6->daddr)) {
			slot = DECAP_NOT_FOR_US;
			goto done;
		}
		slot = DECAP_MALFORMED;
		verdict = XDP_DROP;
		if (ip6->version != 6)
			goto done;
		outer_len = sizeof(*ip6);
		__u32 payload = bpf_ntohs(ip6->payload_len);
		if (l3 + outer_len + payload > data_end)
			goto done;
		inner_proto = inner_ok(l3 + outer_len, data_end, ip6->nexthdr, payload);
	} else {
		goto done;
	}
	if (!inner_proto)
		goto done;

	// Keep the L2 header (and tag) aside, drop the outer IP header, and
	// write the L2 header back in front of the inner packet.
	if (l2_len == sizeof(struct ethhdr)) {
		__builtin_memcpy(l2, data, sizeof(struct ethhdr));
	} else {
		__builtin_memcpy(l2, data, sizeof(l2));
	}
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		goto done; // still malformed/drop: the frame is unchanged
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (l2_len == sizeof(struct ethhdr)) {
		struct ethhdr *neth = data;
		if ((void *)(neth + 1) > data_end)
			goto done;
		__builtin_memcpy(neth, l2, sizeof(struct ethhdr));
		neth->h_proto = bpf_htons(inner_proto);
	} else {
		if (data + sizeof(l2) > data_end)
			goto done;
		__builtin_memcpy(data, l2, sizeof(l2));
		struct vlan_hdr *nvh = data + sizeof(struct ethhdr);
		nvh->proto = bpf_htons(inner_proto);
	}
	slot = inner_proto == ETH_P_IP ? DECAP_V4 : DECAP_V6;
	verdict = XDP_PASS;

done:;
	struct decap_stat *st = bpf_map_lookup_elem(&decap_stats_map, &slot);
	if (st) {
		st->packets++;
		st->bytes += frame_len;
	}
	return verdict;
}

char __license[] SEC("license") = "GPL";
