/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* decap_maps.h — the decapsulator's maps. Sizes are defaults; l4/decap sets
 * the real ones and pins all of them (adoption). */
#ifndef XLB_DECAP_MAPS_H
#define XLB_DECAP_MAPS_H

#include <bpf/bpf_helpers.h>
#include "types.h"
#include "decap_types.h"

/* Load-time knob, set by l4/decap with VariableSpec.Set: the UDP
 * destination port of GUE tunnels, in network order; 0 turns GUE off. */
volatile const __be16 gue_port = 0;

/* Local tunnel endpoints. The value is unused: presence is the answer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);         /* Config.MaxAddrs */
	__type(key, struct decap_addr4); /* an outer IPv4 destination we decapsulate */
	__type(value, __u8);
} decap_v4_addr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);         /* Config.MaxAddrs */
	__type(key, struct decap_addr6); /* an outer IPv6 destination we decapsulate */
	__type(value, __u8);
} decap_v6_addr_map SEC(".maps");

/* Per-CPU counters, summed by Go. The key type names the enum so that
 * bpf2go exports it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_COUNTER_SLOTS);
	__type(key, enum decap_counter);
	__type(value, struct xlb_stat);
} decap_stats_map SEC(".maps");

#endif /* XLB_DECAP_MAPS_H */
