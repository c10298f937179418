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

/* conn_tag is the tag a connection hash is stored under: never 0. Bit 0
 * is forced, so the tag must never pick the set (that would reach only the
 * odd-numbered sets): conn_set_on takes the hash itself. */
XLB_INLINE __u32 conn_tag(__u32 hash)
{
	return hash | 1;
}

/* conn_set_on returns cpu's set for a connection hash: its low bits, all of
 * them uniform. The tags in one set then share those bits, and the rest of
 * the tag (at least the 17 high bits at 2^15 sets) tells the ways apart
 * before a key is compared. */
XLB_INLINE struct conn_set *conn_set_on(__u32 cpu, __u32 hash)
{
	__u32 idx = cpu * (conn_mask + 1) + (hash & conn_mask);

	return bpf_map_lookup_elem(&conn_map, &idx);
}

/* conn_way_of returns the way holding the flow in a set, or -1. */
XLB_INLINE int conn_way_of(struct conn_set *s, const struct conn_key *k, __u32 tag)
{
#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		if (s->tag[i] == tag && conn_key_eq(&s->e[i].key, k))
			return i;
	}
	return -1;
}

/* conn_find returns the flow's entry in this CPU's set, or NULL, and marks
 * it most recently used. */
XLB_INLINE struct conn *conn_find(struct conn_set *s, const struct conn_key *k, __u32 tag)
{
	int i = conn_way_of(s, k, tag);

	if (i < 0)
		return 0;
	i &= XLB_CONN_WAYS - 1;
	if (!dry_run)
		s->stamp[i] = ++s->tick;
	return &s->e[i].val;
}

/* conn_find_other copies the flow's entry from another CPU's set into
 * *found. Only on a miss, so the walk over the CPUs is rare. */
XLB_INLINE int conn_find_other(__u32 me, const struct conn_key *k, __u32 hash, struct conn *found)
{
	__u32 tag = conn_tag(hash);

	for (__u32 cpu = 0; cpu < XLB_MAX_CPUS && cpu < nr_cpus; cpu++) {
		struct conn_set *s;
		int i;

		if (cpu == me)
			continue;
		s = conn_set_on(cpu, hash);
		if (!s)
			continue;
		i = conn_way_of(s, k, tag);
		if (i >= 0) {
			/* A copy: the other CPU keeps writing its own. */
			*found = s->e[i & (XLB_CONN_WAYS - 1)].val;
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
XLB_INLINE void conn_forget_other(__u32 me, const struct conn_key *k, __u32 hash)
{
	__u32 tag = conn_tag(hash);

	for (__u32 cpu = 0; cpu < XLB_MAX_CPUS && cpu < nr_cpus; cpu++) {
		struct conn_set *s;
		int i;

		if (cpu == me)
			continue;
		s = conn_set_on(cpu, hash);
		if (!s)
			continue;
		i = conn_way_of(s, k, tag);
		if (i >= 0)
			s->tag[i & (XLB_CONN_WAYS - 1)] = 0;
	}
}

/* conn_insert writes the flow's entry: over its own stale entry if there is
 * one, else into an empty way, else over the least recently used way. */
XLB_INLINE void conn_insert(struct conn_set *s, const struct conn_key *k, __u32 tag, const struct conn *c)
{
	__u32 victim = 0, oldest = 0;

#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		__u32 age;

		if (!s->tag[i] || (s->tag[i] == tag && conn_key_eq(&s->e[i].key, k))) {
			victim = i;
			break;
		}
		age = s->tick - s->stamp[i]; /* wraps correctly */
		if (age >= oldest) {
			oldest = age;
			victim = i;
		}
	}
	victim &= XLB_CONN_WAYS - 1;
	s->tag[victim] = tag;
	s->stamp[victim] = ++s->tick;
	s->e[victim].key = *k;
	s->e[victim].val = *c;
}

#endif /* XLB_CONN_H */
