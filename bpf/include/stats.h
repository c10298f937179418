/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* stats.h — per-CPU counters. Per-CPU slots need no atomics; Go sums them.
 * The dry-run variant (Lookup) counts nothing. */
#ifndef XLB_STATS_H
#define XLB_STATS_H

#include "maps.h"

/* stat_add bumps one enum xlb_counter slot by one packet of len bytes. */
XLB_INLINE void stat_add(__u32 slot, __u64 len)
{
	struct xlb_stat *s;

	if (dry_run)
		return;
	s = bpf_map_lookup_elem(&stats_map, &slot);
	if (s) {
		s->packets++;
		s->bytes += len;
	}
}

/* stat_pair bumps one XLB_PAIR slot: a reason and a verdict at once. */
XLB_INLINE void stat_pair(__u32 slot, __u64 len)
{
	struct xlb_stat *s;

	if (dry_run)
		return;
	s = bpf_map_lookup_elem(&pair_stats_map, &slot);
	if (s) {
		s->packets++;
		s->bytes += len;
	}
}

/* stat_forward counts a forwarded packet for its VIP and its backend;
 * new_flow says whether it also created a connection entry. */
XLB_INLINE void stat_forward(__u32 vip_id, __u32 backend_id, __u64 len, int new_flow)
{
	struct vip_stat *v;
	struct xlb_stat *b;

	if (dry_run)
		return;
	v = bpf_map_lookup_elem(&vip_stats_map, &vip_id);
	if (v) {
		v->packets++;
		v->bytes += len;
		v->new_flows += new_flow;
	}
	b = bpf_map_lookup_elem(&backend_stats_map, &backend_id);
	if (b) {
		b->packets++;
		b->bytes += len;
	}
}

#endif /* XLB_STATS_H */
