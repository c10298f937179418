/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* abi.h — the balancer's constants that Go needs, as enums so that bpf2go
 * exports them through BTF (bpf/abi.c, l4/abi_bpfel.go): the Go side then
 * reads every number from here instead of keeping a copy. Each value is the
 * macro it names; nothing is defined twice. */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#include "consts.h"

/* Sizes and bounds of the maps' layout. */
enum xlb_abi {
	XLB_ABI_CONN_WAYS = XLB_CONN_WAYS,
	XLB_ABI_MAX_CPUS = XLB_MAX_CPUS,
	XLB_ABI_RINGS_PER_VIP = XLB_RINGS_PER_VIP,
	XLB_ABI_PAIR_ACTIONS = XLB_PAIR_ACTIONS,
	XLB_ABI_PAIR_ROWS = XLB_PAIR_ROWS,
};

/* Address families of struct backend.family and the connection key. */
enum xlb_af {
	XLB_ABI_AF_NONE = XLB_AF_NONE,
	XLB_ABI_AF_INET = XLB_AF_INET,
	XLB_ABI_AF_INET6 = XLB_AF_INET6,
};

/* Flags of struct vip_info and struct vip_live: a VIP's forwarding mode. */
enum xlb_vip_flag {
	XLB_ABI_VIP_L2DSR = XLB_VIP_L2DSR,
	XLB_ABI_VIP_GUE = XLB_VIP_GUE,
};

/* The XDP actions (linux/bpf.h), which the verdict counters are indexed by:
 * slot XLB_CNT_XDP_ABORTED + action (l4/stats.go asserts the layout when it
 * compiles). */
enum xlb_xdp_action {
	XLB_ABI_XDP_ABORTED = XDP_ABORTED,
	XLB_ABI_XDP_DROP = XDP_DROP,
	XLB_ABI_XDP_PASS = XDP_PASS,
	XLB_ABI_XDP_TX = XDP_TX,
	XLB_ABI_XDP_REDIRECT = XDP_REDIRECT,
};

#endif /* XLB_ABI_H */
