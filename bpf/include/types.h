/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* types.h — map keys and values. The Go side reads every one of these through
 * the types bpf2go generates from this file; change them together. Addresses
 * are stored in network byte order, IPv4 in addr[0] with addr[1..3] zero. */
#ifndef XLB_TYPES_H
#define XLB_TYPES_H

#include <linux/types.h>
#include "consts.h"

/* vip_map key: a VIP is (address, port, protocol); port 0 is "any port".
 * family keeps 1.2.3.4 apart from the IPv6 address with the same first
 * four bytes and zeros after. */
struct vip_key {
	__u32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};

/* vip_map value. id indexes ring_map and vip_stats_map; gen changes when the
 * id is given to another VIP, so old connection entries stop matching;
 * flags (XLB_VIP_*) say how it forwards. */
struct vip_info {
	__u32 id;
	__u32 gen;
	__u32 flags;
};

/* vip_gen_map value, indexed by VIP id: what a connection-table hit needs
 * to know about its VIP without the vip_map hash lookup. */
struct vip_live {
	__u32 gen;   /* the VIP's current generation; 0: no VIP */
	__u32 flags; /* XLB_VIP_* */
};

/* backend_map value, indexed by backend id (id 0 is never used). A deleted
 * backend keeps its slot with family XLB_AF_NONE and its gen; a reused id
 * gets a new gen, so entries naming the old owner miss. */
struct backend {
	__u32 addr[4];
	__u32 gen;
	__u8 family;
	__u8 pad[3];
};

/* Connection table key: the flow's 5-tuple. */
struct conn_key {
	__u32 src[4];
	__u32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* Connection table value: where the flow goes. The generations make the
 * entry stale once its VIP or backend is deleted (ids may be reused). */
struct conn {
	__u32 backend_id;     /* 0: empty way */
	__u32 backend_gen;
	__u32 vip_id;
	__u32 vip_gen;
	__u64 last_seen;      /* UDP: jiffies of the last refresh; TCP: of the client's FIN or RST, 0 while open */
};

/* One way's entry: key and value fill one 64-byte cache line. */
struct conn_entry {
	struct conn_key key;
	struct conn val;
};

/* conn_map value: a set of XLB_CONN_WAYS ways. The header line holds every
 * way's tag (the flow's connection hash with bit 0 set; 0 = empty way), LRU
 * stamp, check (conn_check of tag and value) and last writer's CPU, so a
 * lookup reads one line before it reads the one entry that matches. */
struct conn_set {
	__u32 tag[XLB_CONN_WAYS];
	__u32 stamp[XLB_CONN_WAYS];
	__u32 check[XLB_CONN_WAYS];
	__u8 owner[XLB_CONN_WAYS];
	__u32 tick;
	__u32 pad[2];
	struct conn_entry e[XLB_CONN_WAYS];
};

/* next_hop_map value (per CPU, indexed by backend id): a FIB answer kept
 * for a short while (next_hop_jiffies), so that a busy backend costs one
 * bpf_fib_lookup per CPU per interval instead of one per packet. */
struct next_hop_entry {
	__u8 dst[ETH_ALEN];  /* the next hop's MAC */
	__u8 src[ETH_ALEN];  /* the egress interface's MAC */
	__u16 mtu;           /* the route's MTU */
	__u8 on_link;        /* the next hop is the backend itself */
	__u8 pad;
	__u32 ifindex;       /* the ingress interface it was asked from */
	__u32 oif;           /* the egress interface when another one, else 0 */
	__u32 pad2;
	__u32 gen;           /* the backend's generation */
	__u64 expires;       /* jiffies; 0: empty */
};

/* flow_rate_map value: this CPU's window of new_flow_rate. */
struct flow_rate {
	__u64 start; /* jiffies the window began at */
	__u64 count; /* new flows in it so far */
};

/* stats_map and backend_stats_map value. */
struct xlb_stat {
	__u64 packets;
	__u64 bytes;
};

/* vip_stats_map value. */
struct vip_stat {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* ctl_map value (single entry): knobs the Go side changes at run time. */
struct xlb_ctl {
	__u32 wildcard_vips; /* VIPs with port 0: skip the second lookup when 0 */
	__u32 next_gen;      /* generation allocator, kept here to survive restarts */
	__u32 table_size;    /* M the rings were made with; checked on adoption */
	__u32 layout;        /* map layout version (l4.mapLayout); checked on adoption */
};

#endif /* XLB_TYPES_H */
