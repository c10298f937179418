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

/* conn_find returns the flow's entry in its set, or NULL, and marks it most
 * recently used. */
XLB_INLINE struct conn *conn_find(struct conn_set *s, const struct conn_key *k, __u32 tag)
{
#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		struct conn_way *w = &s->way[i];

		if (w->tag == tag && w->val.backend_id && conn_key_eq(&w->key, k)) {
			if (!dry_run)
				w->stamp = ++s->tick;
			return &w->val;
		}
	}
	return 0;
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
