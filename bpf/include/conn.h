/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* conn.h — the connection table: per-CPU sets of XLB_CONN_WAYS ways with
 * LRU replacement inside a set (see conn_map in maps.h for why). Lookups
 * and inserts are plain loads and stores into an inlined array lookup: no
 * kernel function call on the hot path. */
#ifndef XLB_CONN_H
#define XLB_CONN_H

#include "maps.h"

/* conn_key_eq compares two keys word by word, without branches. */
XLB_INLINE int conn_key_eq(const struct conn_key *a, const struct conn_key *b)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < sizeof(*a) / 4; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

/* conn_set_of returns this CPU's set for a connection hash. */
XLB_INLINE struct conn_set *conn_set_of(__u32 tag)
{
	__u32 idx = tag & conn_mask;

	return bpf_map_lookup_elem(&conn_map, &idx);
}

/* conn_way_of returns the flow's way in a set, or NULL. */
XLB_INLINE struct conn_way *conn_way_of(struct conn_set *s, const struct conn_key *k, __u32 tag)
{
#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		struct conn_way *w = &s->way[i];

		if (w->tag == tag && w->val.backend_id && conn_key_eq(&w->key, k))
			return w;
	}
	return 0;
}

/* conn_find returns the flow's entry in this CPU's set, or NULL, and marks
 * it most recently used. */
XLB_INLINE struct conn *conn_find(struct conn_set *s, const struct conn_key *k, __u32 tag)
{
	struct conn_way *w = conn_way_of(s, k, tag);

	if (!w)
		return 0;
	if (!dry_run)
		w->stamp = ++s->tick;
	return &w->val;
}

/* conn_walk is the state of the other-CPU walks. */
struct conn_walk {
	const struct conn_key *key;
	__u32 tag;
	__u32 me;
	struct conn found; /* a copy: the other CPU keeps writing its own */
	int hit;
};

/* conn_find_other copies the flow's entry from another CPU's set, if any
 * CPU has one. Rare (a miss on this CPU), so it may cost calls. */
XLB_INLINE int conn_find_other(struct conn_walk *cw)
{
	__u32 idx = cw->tag & conn_mask;

	for (__u32 cpu = 0; cpu < XLB_MAX_CPUS && cpu < nr_cpus; cpu++) {
		struct conn_set *s;
		struct conn_way *w;

		if (cpu == cw->me)
			continue;
		s = bpf_map_lookup_percpu_elem(&conn_map, &idx, cpu);
		if (!s)
			continue;
		w = conn_way_of(s, cw->key, cw->tag);
		if (w) {
			cw->found = w->val;
			cw->hit = 1;
			return 1;
		}
	}
	return 0;
}

/* conn_forget_other clears the flow's 5-tuple on the other CPUs: a SYN
 * starts a new connection, and an entry of an older one with the same ports
 * must not catch its packets on another CPU. One 32-bit store per entry
 * found; a racing insert there can at worst lose its entry, which then
 * misses and is looked up again. */
XLB_INLINE void conn_forget_other(struct conn_walk *cw)
{
	__u32 idx = cw->tag & conn_mask;

	for (__u32 cpu = 0; cpu < XLB_MAX_CPUS && cpu < nr_cpus; cpu++) {
		struct conn_set *s;
		struct conn_way *w;

		if (cpu == cw->me)
			continue;
		s = bpf_map_lookup_percpu_elem(&conn_map, &idx, cpu);
		if (!s)
			continue;
		w = conn_way_of(s, cw->key, cw->tag);
		if (w)
			w->val.backend_id = 0;
	}
}

/* conn_insert writes the flow's entry: over its own stale entry if there is
 * one, else into an empty way, else over the least recently used way. */
XLB_INLINE void conn_insert(struct conn_set *s, const struct conn_key *k, __u32 tag, const struct conn *c)
{
	__u32 victim = 0, oldest = 0;
	struct conn_way *w;

#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		__u32 age;

		w = &s->way[i];
		if (!w->val.backend_id || (w->tag == tag && conn_key_eq(&w->key, k))) {
			victim = i;
			break;
		}
		age = s->tick - w->stamp; /* wraps correctly */
		if (age >= oldest) {
			oldest = age;
			victim = i;
		}
	}
	w = &s->way[victim & (XLB_CONN_WAYS - 1)];
	w->tag = tag;
	w->stamp = ++s->tick;
	w->key = *k;
	w->val = *c;
}

#endif /* XLB_CONN_H */
