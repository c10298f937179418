// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* xlb.c — the L4 balancer: XDP on the edge host's NIC. Per packet:
 * parse -> VIP lookup -> connection table -> Maglev table on a miss ->
 * IP-in-IP of either family in either (or, per VIP, GUE or an L2 DSR MAC
 * rewrite) towards the chosen L7 host -> XDP_TX. Everything that is not for a
 * VIP passes untouched. The verdict is counted once, at the single exit,
 * in the same update as the packet's main reason (pair_stats_map). */
#include "include/consts.h"
#include "include/types.h"
#include "include/maps.h"
#include "include/stats.h"
#include "include/parse.h"
#include "include/hash.h"
#include "include/csum.h"
#include "include/encap.h"
#include "include/conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* vip_filter_hit says whether the destination address (folded: dst_fold)
 * may be a VIP's; a clear bit proves it is not, with one inlined array
 * lookup. */
XLB_INLINE int vip_filter_hit(__u32 dst_fold)
{
	__u32 bit = filter_hash(dst_fold);
	__u32 word = bit >> 6;
	__u64 *w = bpf_map_lookup_elem(&vip_filter_map, &word);

	return w && ((*w >> (bit & 63)) & 1);
}

/* fragment decides about a TCP or UDP fragment, which has no ports to find
 * the VIP or a host with: one to a VIP address is dropped (a host cannot be
 * chosen for it consistently with its first fragment), any other passes. */
XLB_INLINE int fragment(struct pkt *p)
{
	struct vip_key k = {};

	if (!vip_filter_hit(addr_fold(p->key.dst, p->family == XLB_AF_INET6)))
		return not_vip(p);
	__builtin_memcpy(k.addr, p->key.dst, sizeof(k.addr));
	k.family = p->family;
	if (!bpf_map_lookup_elem(&vip_addr_map, &k))
		return not_vip(p);
	stat_add(XLB_CNT_FRAGMENT, p->len);
	return XDP_DROP;
}

/* lookup_vip tries (address, port, protocol), then (address, any port,
 * protocol) when port-wildcard VIPs exist at all. */
XLB_INLINE struct vip_info *lookup_vip(struct pkt *p)
{
	struct vip_key k = {};
	struct vip_info *v;
	struct xlb_ctl *ctl;
	__u32 zero = 0;

	__builtin_memcpy(k.addr, p->key.dst, sizeof(k.addr));
	k.port = p->key.dport;
	k.proto = p->proto;
	k.family = p->family;
	v = bpf_map_lookup_elem(&vip_map, &k);
	if (v)
		return v;
	ctl = bpf_map_lookup_elem(&ctl_map, &zero);
	if (!ctl || !ctl->wildcard_vips)
		return 0;
	k.port = 0;
	return bpf_map_lookup_elem(&vip_map, &k);
}

/* backend_of returns the live backend behind id, or NULL. */
XLB_INLINE struct backend *backend_of(__u32 id)
{
	struct backend *b;

	if (!id)
		return 0;
	b = bpf_map_lookup_elem(&backend_map, &id);
	if (!b || b->family == XLB_AF_NONE)
		return 0;
	return b;
}

/* conn_valid returns the backend of a connection entry while it is valid:
 * its VIP and backend still have the generations it recorded and, for UDP,
 * it is younger than the idle timeout; for TCP, the client's FIN or RST is
 * less than tcp_close_jiffies old (refresh: a packet of the flow, which may
 * move the UDP timestamp forward or stamp the TCP close). *flags gets the
 * VIP's XLB_VIP_* flags. */
XLB_INLINE struct backend *conn_valid(struct pkt *p, struct conn *c, int refresh, __u32 *flags)
{
	__u32 vip_id = c->vip_id;
	struct vip_live *vl = bpf_map_lookup_elem(&vip_gen_map, &vip_id);
	struct backend *b;

	if (!vl || vl->gen != c->vip_gen)
		return 0;
	*flags = vl->flags;
	b = backend_of(c->backend_id);
	if (!b || b->gen != c->backend_gen)
		return 0;
	if (p->proto == IPPROTO_UDP) {
		__u64 now = bpf_jiffies64();

		if (now - c->last_seen >= udp_timeout_jiffies) {
			stat_add(XLB_CNT_CT_EXPIRED, p->len);
			return 0;
		}
		/* Refresh at most every udp_refresh_jiffies: a busy flow does
		 * not rewrite its entry on every packet. */
		if (refresh && !dry_run && now - c->last_seen >= udp_refresh_jiffies)
			c->last_seen = now;
	} else if (c->last_seen) {
		/* The client closed this connection: its entry serves the rest
		 * of the close, then a 5-tuple reused by a connection that began
		 * on another edge host takes the table. */
		__u64 now = bpf_jiffies64();

		if (now >= c->last_seen && now - c->last_seen >= tcp_close_jiffies) {
			stat_add(XLB_CNT_CT_EXPIRED, p->len);
			return 0;
		}
	} else if (refresh && !dry_run && p->fin) {
		__u64 now = bpf_jiffies64();

		c->last_seen = now ? now : 1; /* 0 means open */
	}
	return b;
}

/* pick_backend looks the flow's slot up in the VIP's live Maglev table. The
 * slot counts only if it carries the version of the live value read just
 * before: otherwise l4 is rewriting that table (it was retired after the read)
 * and the live value is read again. */
XLB_INLINE struct backend *pick_backend(const struct vip_info *vip, __u32 hash, __u32 *id)
{
	__u32 vip_id = vip->id;
	__u32 slot = hash % table_size;
	__u64 *live, *s, lv, sv;
	__u32 n, key;
	void *ring;
	int i;

	live = bpf_map_lookup_elem(&ring_live_map, &vip_id);
	if (!live)
		return 0;
	for (i = 0; i < XLB_TABLE_TRIES; i++) {
		lv = *(volatile __u64 *)live;
		n = XLB_SLOT_ID(lv);
		if (!n || n > XLB_RINGS_PER_VIP)
			return 0;
		key = vip_id * XLB_RINGS_PER_VIP + n - 1;
		ring = bpf_map_lookup_elem(&ring_map, &key);
		if (!ring)
			return 0;
		s = bpf_map_lookup_elem(ring, &slot);
		if (!s)
			return 0;
		sv = *(volatile __u64 *)s;
		if (XLB_SLOT_VERSION(sv) == XLB_SLOT_VERSION(lv)) {
			*id = XLB_SLOT_ID(sv);
			return backend_of(*id);
		}
	}
	return 0;
}

/* forward sends the wrapped packet on: out of another interface when the
 * FIB said so (a two-armed host; XDP_DROP if it was detached since the
 * lookup), else back out of this one. */
XLB_INLINE int forward(struct pkt *p)
{
	if (p->oif)
		return bpf_redirect_map(&tx_port_map, p->oif, XDP_DROP);
	return XDP_TX;
}

/* icmp_error sends an ICMP error about a VIP flow (p->key is that flow's
 * 5-tuple, client to VIP, read from the quoted header) to the L7 host the
 * flow's packets go to: its connection entry if it has one, else the
 * VIP's Maglev table, as its next packet would. Frag-needed and packet
 * too big must reach the host that sends the flow's big segments, or path
 * MTU discovery black-holes it. The ICMP packet is wrapped like the flow's
 * (same mode, same hash: GUE source port and flow label match); it writes
 * no connection entry. */
XLB_INLINE int icmp_error(struct xdp_md *ctx, struct pkt *p)
{
	struct backend *b = 0;
	struct vip_info *vip;
	struct conn_set *set;
	struct conn_entry *e;
	__u32 hash, chash, fold, bid = 0, vip_id = 0, flags = 0;
	int v6 = p->family == XLB_AF_INET6, ret, w;

	fold = addr_fold(p->key.dst, v6);
	if (!vip_filter_hit(fold))
		return pass(p, XLB_CNT_OTHER_L4);
	hash = key_flow_hash(&p->key, v6);
	chash = conn_hash(&p->key, v6);
	set = conn_set_of(chash);
	if (set) {
		w = conn_find(set, &p->key, conn_tag(chash), v6);
		if (w >= 0) {
			e = &set->e[w & (XLB_CONN_WAYS - 1)];
			b = conn_valid(p, &e->val, 0, &flags);
			if (b) {
				bid = e->val.backend_id;
				vip_id = e->val.vip_id;
			}
		}
	}
	if (!b) {
		vip = lookup_vip(p);
		if (!vip)
			return pass(p, XLB_CNT_OTHER_L4);
		vip_id = vip->id;
		flags = vip->flags;
		b = pick_backend(vip, hash, &bid);
		if (!b) {
			stat_add(XLB_CNT_NO_BACKEND, p->len);
			return XDP_DROP;
		}
	}
	if ((flags & XLB_VIP_L2DSR) && !dry_run)
		ret = l2dsr(ctx, p, b, bid);
	else
		ret = encap(ctx, p, b, bid, hash, flags);
	if (ret != XLB_CONTINUE)
		return ret;
	stat_add(XLB_CNT_ICMP_STEERED, p->len);
	stat_forward(vip_id, bid, p->len, 0);
	return forward(p);
}

/* forward_flow takes a parsed TCP or UDP packet (an IPv6 one if v6) from
 * the VIP filter to its verdict. v6 is a constant at each call, so the
 * compiler builds the IPv4 path without the IPv6 one's address words and
 * branches (and with fewer values spilled to the stack). */
XLB_INLINE int forward_flow(struct xdp_md *ctx, struct pkt *p, int v6)
{
	struct conn_set *set;
	struct vip_info *vip;
	struct backend *b = 0;
	struct conn *c;
	__u32 hash = 0, chash, fold, tag, cpu, bid = 0, vip_id = 0, flags = 0;
	int new_flow = 0;
	int ret;

	fold = addr_fold(p->key.dst, v6);
	if (!vip_filter_hit(fold))
		return not_vip(p);

	chash = conn_hash(&p->key, v6);
	tag = conn_tag(chash);
	cpu = bpf_get_smp_processor_id();
	set = conn_set_of(chash);

	/* An established flow is found by its 5-tuple alone: no VIP lookup. A
	 * SYN always takes the current table: a reused client port must not
	 * inherit the previous connection's host. */
	if (!p->syn && set) {
		int w = conn_find(set, &p->key, tag, v6);

		if (w >= 0) {
			c = &set->e[w & (XLB_CONN_WAYS - 1)].val;
			b = conn_valid(p, c, 1, &flags);
			if (b) {
				bid = c->backend_id;
				vip_id = c->vip_id;
				if (conn_touch(set, w, cpu))
					stat_add(XLB_CNT_CT_HIT_OTHER_CPU, p->len);
				else
					count_at_exit(p, XLB_CNT_CT_HIT);
			}
		}
	}
	if (!b) {
		vip = lookup_vip(p);
		if (!vip)
			return not_vip(p);
		vip_id = vip->id;
		flags = vip->flags;
		if (p->syn)
			count_at_exit(p, XLB_CNT_CT_MISS_SYN);
		else
			count_at_exit(p, XLB_CNT_CT_MISS_NON_SYN);
		hash = key_flow_hash(&p->key, v6);
		b = pick_backend(vip, hash, &bid);
		if (!b) {
			stat_add(XLB_CNT_NO_BACKEND, p->len);
			return XDP_DROP;
		}
		if (!dry_run && set && !conn_insert_allowed()) {
			stat_add(XLB_CNT_CT_INSERT_SKIPPED, p->len);
		} else if (!dry_run && set) {
			struct conn nc = {
				.backend_id = bid,
				.backend_gen = b->gen,
				.vip_id = vip->id,
				.vip_gen = vip->gen,
			};

			if (p->proto == IPPROTO_UDP)
				nc.last_seen = bpf_jiffies64();
			conn_insert(set, &p->key, tag, &nc, cpu, v6);
		}
		new_flow = 1;
	} else if ((flags & XLB_VIP_GUE) || b->family != XLB_AF_INET) {
		/* A hit needs the flow hash only where the outer header carries
		 * it: GUE's source port, IPv6's flow label. */
		hash = key_flow_hash(&p->key, v6);
	}

	/* The dry-run twin (Lookup) wraps l2dsr packets too: the outer
	 * destination is how it tells which host was picked, and it must not
	 * depend on the FIB of whichever namespace asks. */
	if ((flags & XLB_VIP_L2DSR) && !dry_run)
		ret = l2dsr(ctx, p, b, bid);
	else
		ret = encap(ctx, p, b, bid, hash, flags);
	if (ret != XLB_CONTINUE)
		return ret;
	stat_forward(vip_id, bid, p->len, new_flow);
	return forward(p);
}

XLB_INLINE int process_packet(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int ret;

	p->len = data_end - data;
	ret = parse_packet(p, data, data_end);
	if (ret != XLB_CONTINUE)
		return ret;
	if (p->frag)
		return fragment(p);
	if (p->icmp)
		return icmp_error(ctx, p);
	if (p->family == XLB_AF_INET6)
		return forward_flow(ctx, p, 1);
	return forward_flow(ctx, p, 0);
}

SEC("xdp")
int xlb_ingress(struct xdp_md *ctx)
{
	struct pkt p = {};
	int act = process_packet(ctx, &p);

	if (act < XDP_ABORTED || act > XDP_REDIRECT)
		act = XDP_ABORTED;
	stat_pair(XLB_PAIR(p.reason, act), p.len);
	return act;
}
