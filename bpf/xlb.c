// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* xlb.c — the L4 balancer: XDP on the edge host's NIC. Per packet:
 * parse -> VIP lookup -> connection table -> Maglev table on a miss ->
 * IP-in-IP towards the chosen L7 host -> XDP_TX. Everything that is not for a
 * VIP passes untouched. The verdict is counted once, at the single exit. */
#include "include/consts.h"
#include "include/types.h"
#include "include/maps.h"
#include "include/stats.h"
#include "include/parse.h"
#include "include/hash.h"
#include "include/csum.h"
#include "include/encap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* lookup_vip tries (address, port, protocol), then (address, any port,
 * protocol) when port-wildcard VIPs exist at all, so that traffic that is not
 * for a VIP usually costs one hash lookup. */
XLB_INLINE struct vip_info *lookup_vip(struct pkt *p)
{
	struct vip_key k = {};
	struct vip_info *v;
	struct xlb_ctl *ctl;
	__u32 zero = 0;

	__builtin_memcpy(k.addr, p->dst, sizeof(k.addr));
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

/* conn_lookup returns the backend of a valid connection entry, or NULL on a
 * miss. An entry is valid while its backend and VIP still have the
 * generations it recorded and, for UDP, while it is younger than the idle
 * timeout. */
XLB_INLINE struct backend *conn_lookup(struct pkt *p, const struct vip_info *vip, __u32 *id)
{
	struct conn *c = bpf_map_lookup_elem(&conn_map, &p->key);
	struct backend *b;

	if (!c || c->vip_gen != vip->gen)
		return 0;
	b = backend_of(c->backend_id);
	if (!b || b->gen != c->backend_gen)
		return 0;
	if (p->proto == IPPROTO_UDP) {
		__u64 now = bpf_ktime_get_ns();

		if (now - c->last_seen_ns > udp_timeout_ns) {
			stat_add(XLB_CNT_CT_EXPIRED, p->len);
			return 0;
		}
		if (!dry_run && now - c->last_seen_ns > XLB_UDP_REFRESH_NS)
			c->last_seen_ns = now;
	}
	*id = c->backend_id;
	return b;
}

/* pick_backend looks the flow's slot up in the VIP's current Maglev table. */
XLB_INLINE struct backend *pick_backend(const struct vip_info *vip, __u32 hash, __u32 *id)
{
	__u32 vip_id = vip->id;
	__u32 slot;
	__u32 *bid;
	void *ring;

	ring = bpf_map_lookup_elem(&ring_map, &vip_id);
	if (!ring)
		return 0;
	slot = hash % table_size;
	bid = bpf_map_lookup_elem(ring, &slot);
	if (!bid)
		return 0;
	*id = *bid;
	return backend_of(*bid);
}

XLB_INLINE int process_packet(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct vip_info *vip;
	struct backend *b = 0;
	__u32 hash, bid = 0;
	int new_flow = 0;
	int ret;

	p->len = data_end - data;
	ret = parse_packet(p, data, data_end);
	if (ret != XLB_CONTINUE)
		return ret;

	vip = lookup_vip(p);
	if (!vip) {
		stat_add(XLB_CNT_NOT_VIP, p->len);
		return XDP_PASS;
	}
	p->key.vip_id = vip->id;
	hash = flow_hash(p->key.src, ((__u32)p->key.dport << 16) | p->key.sport, p->proto,
			 p->family == XLB_AF_INET6);

	/* A SYN always takes the current table: a reused client port must not
	 * inherit the previous connection's host. */
	if (!p->syn) {
		b = conn_lookup(p, vip, &bid);
		if (b)
			stat_add(XLB_CNT_CT_HIT, p->len);
	}
	if (!b) {
		stat_add(p->syn ? XLB_CNT_CT_MISS_SYN : XLB_CNT_CT_MISS_NON_SYN, p->len);
		b = pick_backend(vip, hash, &bid);
		if (!b) {
			stat_add(XLB_CNT_NO_BACKEND, p->len);
			return XDP_DROP;
		}
		if (!dry_run) {
			struct conn c = {
				.backend_id = bid,
				.backend_gen = b->gen,
				.vip_gen = vip->gen,
				.last_seen_ns = bpf_ktime_get_ns(),
			};

			bpf_map_update_elem(&conn_map, &p->key, &c, BPF_ANY);
		}
		new_flow = 1;
	}

	ret = encap(ctx, p, b, hash);
	if (ret != XLB_CONTINUE)
		return ret;
	stat_forward(p->key.vip_id, bid, p->len, new_flow);
	return XDP_TX;
}

SEC("xdp")
int xlb_ingress(struct xdp_md *ctx)
{
	struct pkt p = {};
	int act = process_packet(ctx, &p);

	if (act < XDP_ABORTED || act > XDP_REDIRECT)
		act = XDP_ABORTED;
	stat_add(XLB_CNT_XDP_ABORTED + act, p.len);
	return act;
}
