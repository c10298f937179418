/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* consts.h — sizes, protocol numbers, flags and counter slots of the xlb
 * balancer. Includes nothing but UAPI headers; everything else includes it. */
#ifndef XLB_CONSTS_H
#define XLB_CONSTS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>

#define XLB_INLINE static __attribute__((always_inline)) inline

/* Helpers return an XDP verdict or XLB_CONTINUE to say "keep going". */
#define XLB_CONTINUE (-1)

/* Default map sizes; the Go loader always overrides them with the sizes the
 * caller asked for (MapSpec.MaxEntries), these only make the object loadable
 * on its own. */
#define XLB_MAX_VIPS 512
#define XLB_MAX_BACKENDS 4096
#define XLB_CONN_ENTRIES 65536
#define XLB_TABLE_SIZE 65537
#define XLB_CONN_SETS 16384
#define XLB_CONN_WAYS 4
#define XLB_MAX_CPUS 128 /* CPUs supported; a connection way records its writer's in a byte */
#define XLB_MAX_IFACES 64 /* interfaces in tx_port_map */
/* Maglev tables per VIP: one live, the other standing by to be rewritten
 * (see ring_map in maps.h). Mirrored by l4.ringsPerVIP. */
#define XLB_RINGS_PER_VIP 2
/* A table slot and a ring_live_map value are one __u64 each, read and
 * written whole (8-byte aligned accesses are single-copy atomic): the low
 * half is the backend id or the live table's number, the high half the
 * table version. Mirrored by l4.slot. */
#define XLB_SLOT_ID(s) ((__u32)(s))
#define XLB_SLOT_VERSION(s) ((__u32)((s) >> 32))
/* Reads of the live value before pick_backend gives up (drops and counts
 * no_backend): each retry means that a whole table was rewritten while this
 * one packet ran, which only a preempted BPF_PROG_TEST_RUN can see twice. */
#define XLB_TABLE_TRIES 3

/* VIP address filter: a bitmap of 2^16 bits over a hash of the destination
 * address, so that traffic that is not for a VIP is recognised without a
 * hash-map lookup. */
#define XLB_FILTER_BITS 16
#define XLB_FILTER_WORDS ((1 << XLB_FILTER_BITS) / 64)

#define XLB_IPV4_HDR_LEN 20
#define XLB_IPV6_HDR_LEN 40
#define XLB_IPV6_MAX_EXT 4 /* hop-by-hop, routing, destination-options headers walked */
#define XLB_UDP_HDR_LEN 8
#define XLB_IPIP_TTL 64

/* Address families of struct backend.family (0 = no backend in this slot). */
#define XLB_AF_NONE 0
#define XLB_AF_INET 4
#define XLB_AF_INET6 6

/* struct vip_info.flags and struct vip_live.flags: how the VIP forwards.
 * No flag: IP-in-IP towards the L7 host. Go reads them through abi.h. */
#define XLB_VIP_L2DSR (1U << 0) /* rewrite the MACs only: L7 hosts on this segment */
#define XLB_VIP_GUE (1U << 1)   /* GUE variant 1: IP in UDP to gue_port */

/* ICMP errors steered to a VIP flow's L7 host (parse.h). */
#define XLB_ICMP_UNREACH 3     /* destination unreachable, fragmentation needed among its codes */
#define XLB_ICMPV6_UNREACH 1   /* destination unreachable */
#define XLB_ICMPV6_TOO_BIG 2   /* packet too big */

/* IPv4 frag_off bits (host order). */
#define XLB_IP_DF 0x4000
#define XLB_IP_MF 0x2000
#define XLB_IP_OFFSET 0x1fff

/* Counter slots of stats_map. One slot per reason, then one per XDP action
 * (XLB_CNT_XDP_ABORTED + action). Shared with Go via bpf2go -type and used as
 * the `reason` metric label; append only, never renumber. */
enum xlb_counter {
	XLB_CNT_NOT_VIP = 0,       /* passed: no VIP matches the packet */
	XLB_CNT_NO_BACKEND,        /* dropped: empty table slot or dead backend */
	XLB_CNT_MALFORMED,         /* dropped: truncated or inconsistent headers */
	XLB_CNT_CT_HIT,            /* conntrack entry found and still valid */
	XLB_CNT_CT_MISS_SYN,       /* TCP SYN: table path, entry (re)written */
	XLB_CNT_CT_MISS_NON_SYN,   /* no valid entry on a non-SYN TCP or UDP packet */
	XLB_CNT_CT_EXPIRED,        /* UDP entry older than the idle timeout, or TCP entry past its close */
	XLB_CNT_CT_HIT_OTHER_CPU,  /* this CPU missed, another CPU's entry was copied */
	XLB_CNT_ENCAP_FAIL,        /* dropped: headroom or family mismatch */
	XLB_CNT_TOO_BIG,           /* encapsulated frame above the MTU: answered with ICMP (icmp_too_big) or dropped */
	XLB_CNT_FRAGMENT,          /* dropped: TCP/UDP fragment to a VIP address (no ports to pick a host with) */
	XLB_CNT_XDP_ABORTED,
	XLB_CNT_XDP_DROP,
	XLB_CNT_XDP_PASS,
	XLB_CNT_XDP_TX,
	XLB_CNT_XDP_REDIRECT,
	/* Next-hop resolution through the kernel's FIB (fib_mode), each one
	 * passed untouched to the kernel. */
	XLB_CNT_FIB_NO_NEIGH,      /* the next hop has no resolved neighbour entry */
	XLB_CNT_FIB_NO_ROUTE,      /* no route, or a blackhole/unreachable/prohibit one */
	XLB_CNT_FIB_FWD_DISABLED,  /* forwarding is off on the ingress interface */
	XLB_CNT_FIB_OTHER_IFACE,   /* the route leaves by another interface */
	XLB_CNT_FIB_OTHER,         /* any other FIB failure */
	XLB_CNT_L2DSR_NOT_ON_LINK, /* passed: an L2 DSR backend is behind a router */
	/* What not_vip counted before, by cause; not_vip keeps the VIP misses
	 * (address filter or VIP lookup) of TCP/UDP packets. */
	XLB_CNT_SHORT_FRAME,       /* passed: shorter than an Ethernet header or its VLAN tag */
	XLB_CNT_NOT_IP,            /* passed: neither IPv4 nor IPv6 (ARP, LLDP, ...) */
	XLB_CNT_VLAN_STACKED,      /* passed: more than one VLAN tag (QinQ, 802.1ad) */
	XLB_CNT_OTHER_L4,          /* passed: IP but not TCP or UDP (ICMP, ESP, extension headers) */
	XLB_CNT_ICMP_TOO_BIG,      /* a too_big packet answered with ICMP frag-needed / ICMPv6 packet-too-big */
	XLB_CNT_CT_INSERT_SKIPPED, /* a new flow above new_flow_rate: forwarded by the Maglev table, no entry written */
	XLB_CNT_ICMP_STEERED,      /* an ICMP error about a VIP flow, sent to that flow's L7 host */
	XLB_CNT_MAX,
};

/* pair_stats_map: a packet's main reason (the first counter it is counted
 * under, left to the exit by count_at_exit) and its verdict, counted
 * together in one update at slot XLB_PAIR(reason + 1, action); row 0 is a
 * verdict without a deferred reason. l4 adds every slot to both counters,
 * so each keeps its exact total while a packet costs one counter update
 * instead of two. 64 rows of 8 actions: counters can be appended without
 * resizing the pinned map. Mirrored by l4 (abi.h). */
#define XLB_PAIR_ACTIONS 8
#define XLB_PAIR_ROWS 64
#define XLB_PAIR(row, act) ((row) * XLB_PAIR_ACTIONS + (act))
_Static_assert(XLB_CNT_MAX + 1 <= XLB_PAIR_ROWS, "pair_stats_map has a row per counter");
_Static_assert(XDP_REDIRECT < XLB_PAIR_ACTIONS, "pair_stats_map has a column per XDP action");

#endif /* XLB_CONSTS_H */
