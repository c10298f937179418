/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* conn.h — the connection table: one table shared by every CPU, in which a
 * flow has exactly one set (chosen by its connection hash), of XLB_CONN_WAYS
 * ways with LRU replacement inside the set (see conn_map in maps.h for why).
 * Lookups and inserts are plain loads and stores into an inlined array
 * lookup: no kernel function call on the hot path, and no walk over other
 * CPUs: a SYN overwrites its 5-tuple's one entry, and a flow that moves to
 * another CPU finds it where it is. */
#ifndef XLB_CONN_H
#define XLB_CONN_H

#include "maps.h"

/* conn_key_eq compares key a with b, the packet's (an IPv6 one if v6),
 * word by word without branches. An IPv4 key's address words past the
 * first are zero in every entry (keys are built zeroed, and only
 * conn_insert writes entries), and the family is in the last word: for an
 * IPv4 packet the other 6 words cannot differ in any entry that matches
 * the 4 compared, so only those 4 of the 10 are read. */
XLB_INLINE int conn_key_eq(const struct conn_key *a, const struct conn_key *b, int v6)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	__u32 diff;

	diff = (x[0] ^ y[0]) | (x[4] ^ y[4]) | (x[8] ^ y[8]) | (x[9] ^ y[9]);
	if (v6) {
#pragma unroll
		for (int i = 1; i < 4; i++)
			diff |= (x[i] ^ y[i]) | (x[4 + i] ^ y[4 + i]);
	}
	return diff == 0;
}

/* conn_tag is the tag a connection hash is stored under: never 0. */
XLB_INLINE __u32 conn_tag(__u32 hash)
{
	return hash | 1;
}

/* conn_check binds an entry's value to its tag. Two CPUs may write the same
 * way at the same moment (two new flows of one set), and plain stores from
 * both can interleave into a key of one flow and a value of the other; the
 * generations are unique (one allocator for VIPs and backends), so such a
 * mix fails this check and is a miss (the Maglev table again), never a
 * wrong host for an established flow. */
XLB_INLINE __u32 conn_check(__u32 tag, const struct conn *c)
{
	return (tag * 0x9e3779b1) ^ (c->backend_gen * 0x85ebca6b) ^ (c->vip_gen * 0xc2b2ae35) ^ c->backend_id;
}

/* conn_set_of returns the flow's set: multiply-shift of the connection hash
 * onto conn_sets (any count, not only powers of two), so the set is taken
 * from the hash's high bits and the tags in one set differ in the rest. */
XLB_INLINE struct conn_set *conn_set_of(__u32 hash)
{
	__u32 idx = ((__u64)hash * conn_sets) >> 32;

	return bpf_map_lookup_elem(&conn_map, &idx);
}

/* conn_find returns the way holding the flow in its set, or -1. A way whose
 * check does not match is being rewritten, or was torn by two writers:
 * a miss. */
XLB_INLINE int conn_find(struct conn_set *s, const struct conn_key *k, __u32 tag, int v6)
{
#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		if (s->tag[i] == tag && conn_key_eq(&s->e[i].key, k, v6) &&
		    s->check[i] == conn_check(tag, &s->e[i].val))
			return i;
	}
	return -1;
}

/* conn_touch marks way i most recently used and says whether another CPU
 * wrote it last, which this CPU then becomes (counted as hit_other_cpu
 * once per move). The stamp is written only when it is not already the
 * newest, so a busy flow does not keep dirtying a line other CPUs read. */
XLB_INLINE int conn_touch(struct conn_set *s, int i, __u32 cpu)
{
	int moved;

	i &= XLB_CONN_WAYS - 1;
	moved = s->owner[i] != (__u8)cpu;
	if (dry_run)
		return moved;
	if (s->stamp[i] != s->tick)
		s->stamp[i] = ++s->tick;
	if (moved)
		s->owner[i] = cpu;
	return moved;
}

/* conn_insert writes the flow's entry: over its own entry if there is one
 * (a SYN of a reused 5-tuple replaces the old connection's host everywhere
 * at once), else into an empty way, else over the least recently used way.
 * The tag is cleared first and written last, so a reader on another CPU
 * meanwhile misses rather than reading half an entry. */
XLB_INLINE void conn_insert(struct conn_set *s, const struct conn_key *k, __u32 tag, const struct conn *c, __u32 cpu,
				int v6)
{
	__u32 victim = 0, oldest = 0;

#pragma unroll
	for (int i = 0; i < XLB_CONN_WAYS; i++) {
		__u32 age;

		if (!s->tag[i] || (s->tag[i] == tag && conn_key_eq(&s->e[i].key, k, v6))) {
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
	s->tag[victim] = 0;
	asm volatile("" ::: "memory");
	s->e[victim].key = *k;
	s->e[victim].val = *c;
	s->check[victim] = conn_check(tag, c);
	s->owner[victim] = cpu;
	s->stamp[victim] = ++s->tick;
	asm volatile("" ::: "memory");
	s->tag[victim] = tag;
}

/* conn_insert_allowed says whether this CPU may write one more new flow's
 * entry in its current one-second window (new_flow_rate). Fixed windows
 * per CPU: no sharing, one inlined lookup and bpf_jiffies64 (inlined too). */
XLB_INLINE int conn_insert_allowed(void)
{
	struct flow_rate *r;
	__u32 zero = 0;
	__u64 now;

	if (!new_flow_rate)
		return 1;
	r = bpf_map_lookup_elem(&flow_rate_map, &zero);
	if (!r)
		return 1;
	now = bpf_jiffies64();
	if (now - r->start >= hz_jiffies) {
		r->start = now;
		r->count = 0;
	}
	return ++r->count <= new_flow_rate;
}

#endif /* XLB_CONN_H */
