/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* maps.h — every map of the balancer. Sizes are defaults; the Go loader sets
 * the real ones. All of these are pinned by the loader (adoption). */
#ifndef XLB_MAPS_H
#define XLB_MAPS_H

#include <bpf/bpf_helpers.h>
#include "types.h"

/* Load-time knobs, set by the Go loader with VariableSpec.Set. They live in
 * .rodata, so the verifier sees constants and prunes dead branches (dry_run). */
volatile const __u32 table_size = XLB_TABLE_SIZE;   /* M, entries per ring */
volatile const __u32 conn_sets = XLB_CONN_SETS;     /* conn_map sets */
/* UDP idle timeout and refresh interval in jiffies: bpf_jiffies64 is
 * inlined by the verifier, a clock helper would cost a call per packet. The
 * loader converts from seconds with the kernel's HZ. */
volatile const __u64 udp_timeout_jiffies = 30 * 250;
volatile const __u64 udp_refresh_jiffies = 250;
/* How long a TCP entry outlives the client's FIN or RST, in jiffies: long
 * enough for the last ACKs of the close (and a half-closed response), short
 * enough that a later connection on the same 5-tuple that begins on another
 * edge host (its SYN never comes here) does not follow this one's host when
 * ECMP moves it here. */
volatile const __u64 tcp_close_jiffies = 10 * 250;
volatile const __u32 mtu = 0;                      /* 0: do not check */
volatile const __u16 gue_port = 0;                 /* GUE VIPs' UDP destination port (host order); 0: none */
volatile const __be32 outer_src_v4 = 0;            /* LB host address */
volatile const __u32 outer_src_v6[4] = {};         /* LB host address */
volatile const __u8 src_mac[ETH_ALEN] __attribute__((aligned(4))) = {};      /* this NIC's MAC */
volatile const __u8 next_hop_mac[ETH_ALEN] __attribute__((aligned(4))) = {}; /* router or L7 host */
/* fib_mode: no next_hop_mac is configured; every frame's next hop comes
 * from bpf_fib_lookup (nexthop.h) and the two MAC knobs are unused. */
volatile const __u8 fib_mode = 0;
/* How long a FIB answer is kept per backend and CPU (next_hop_map); 0:
 * ask for every packet. l4 also empties the cache when the kernel's
 * neighbour or route tables change. */
volatile const __u64 next_hop_jiffies = 25;
/* New flows per CPU per second that may write a connection entry; past it
 * they are still forwarded by the Maglev table but not inserted, so a
 * flood of new 5-tuples cannot evict established flows. 0: no limit. */
volatile const __u32 new_flow_rate = 0;
volatile const __u64 hz_jiffies = 250; /* one second in jiffies */
/* dry_run: the same program, loaded a second time for Lookup, that neither
 * writes connection entries nor counts, so asking a question changes nothing. */
volatile const __u8 dry_run = 0;

/* (address, port, protocol) -> VIP id and generation. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, struct vip_info);
	__uint(max_entries, XLB_MAX_VIPS);
} vip_map SEC(".maps");

/* Maglev tables: XLB_RINGS_PER_VIP pre-created arrays of M slots per VIP
 * id, table n (1-based) of VIP id at ring_map[id * XLB_RINGS_PER_VIP + n - 1],
 * and ring_live_map[id] saying which one is live and at which version.
 * An install writes a table that is not live through its memory mapping (no
 * syscall per slot), every slot tagged with a new version, then publishes it
 * by one 8-byte store to ring_live_map: no map-in-map update, so no RCU wait.
 * The table just retired is rewritten by the next install at once, while a
 * packet that read the old live value may still be reading it: such a
 * packet finds a slot whose version is not the one it read and reads the
 * live value again (pick_backend), so it only ever acts on a slot of the
 * exact table version it was sent to: never on a half-written table. The
 * tables are mmapable, so the inner template must be too. */
struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64); /* XLB_SLOT(backend id, version) */
	__uint(max_entries, XLB_TABLE_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__uint(max_entries, XLB_MAX_VIPS * XLB_RINGS_PER_VIP);
	__array(values, struct ring);
} ring_map SEC(".maps");

/* VIP id -> XLB_LIVE(n, version): its live table n (1..XLB_RINGS_PER_VIP,
 * 0: none, drop) and that table's version. Mmapable: l4 stores it with one
 * atomic 8-byte store after the table. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XLB_MAX_VIPS);
} ring_live_map SEC(".maps");

/* Backend id -> L7 host address and generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct backend);
	__uint(max_entries, XLB_MAX_BACKENDS);
} backend_map SEC(".maps");

/* Connection table: conn_sets sets in a plain array shared by every CPU;
 * a flow's one set is picked by its connection hash (conn_set_of). A flow
 * that moves to another CPU (RSS rehash, veth, generic XDP) finds its entry
 * there without a walk, and a SYN replaces its 5-tuple's entry with one
 * write, whatever the CPU count: a new flow costs the same on 2 CPUs as on
 * 128 (docs/l4-datapath.md has the measurements against per-CPU
 * partitions). Sets are XLB_CONN_WAYS-way associative with LRU replacement
 * inside a set.
 * Why not the kernel's LRU hash: on this class of machine (AMD, SRSO "safe
 * RET" mitigation) every kernel function call costs tens of ns; an LRU hash
 * lookup is one call and an update a dozen (locks, free lists), where an
 * array lookup is inlined by the verifier: a hit or an insert here costs no
 * call at all. The price: eviction picks the least recently used of 4 ways
 * rather than of the whole table — size it at twice the live flows. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct conn_set);
	__uint(max_entries, XLB_CONN_SETS);
} conn_map SEC(".maps");

/* VIP id -> its current generation (0: no VIP) and flags, so a
 * connection-table hit is validated and forwarded without the vip_map hash
 * lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct vip_live);
	__uint(max_entries, XLB_MAX_VIPS);
} vip_gen_map SEC(".maps");

/* (address, port 0, protocol 0) -> how many VIPs have that address: the
 * exact set of VIP addresses, asked only for IP fragments, which have no
 * ports for vip_map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vip_key);
	__type(value, __u32);
	__uint(max_entries, XLB_MAX_VIPS);
} vip_addr_map SEC(".maps");

/* Bitmap over filter_hash(destination address) of every VIP address. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XLB_FILTER_WORDS);
} vip_filter_map SEC(".maps");

/* The interfaces the balancer is attached to (ifindex -> ifindex), for
 * XDP_REDIRECT when the FIB says a backend is reached through another one
 * than the packet came in on (a two-armed edge host). l4 keeps it in step
 * with Attach and Detach. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, XLB_MAX_IFACES);
} tx_port_map SEC(".maps");

/* Backend id -> the FIB's last answer for it, per CPU (no sharing, no
 * torn MACs), kept next_hop_jiffies. Not pinned: a cache. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct next_hop_entry);
	__uint(max_entries, XLB_MAX_BACKENDS);
} next_hop_map SEC(".maps");

/* Per-reason and per-action counters, indexed by enum xlb_counter (the key
 * type names the enum so that bpf2go exports it to Go). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, enum xlb_counter);
	__type(value, struct xlb_stat);
	__uint(max_entries, XLB_CNT_MAX);
} stats_map SEC(".maps");

/* Reason and verdict counted together, indexed by XLB_PAIR (consts.h). A
 * map of its own rather than more stats_map slots, so that stats_map keeps
 * the size pinned instances were made with. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xlb_stat);
	__uint(max_entries, XLB_PAIR_ROWS * XLB_PAIR_ACTIONS);
} pair_stats_map SEC(".maps");

/* Per-VIP counters, indexed by VIP id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct vip_stat);
	__uint(max_entries, XLB_MAX_VIPS);
} vip_stats_map SEC(".maps");

/* Per-backend counters, indexed by backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct xlb_stat);
	__uint(max_entries, XLB_MAX_BACKENDS);
} backend_stats_map SEC(".maps");

/* This CPU's new-flow count in its current one-second window
 * (new_flow_rate). Not pinned: a restart starts a new window. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_rate);
	__uint(max_entries, 1);
} flow_rate_map SEC(".maps");

/* Run-time knobs, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct xlb_ctl);
	__uint(max_entries, 1);
} ctl_map SEC(".maps");

#endif /* XLB_MAPS_H */
