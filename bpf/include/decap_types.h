/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* decap_types.h — counter slots and map keys of the decapsulator
 * (bpf/decap.c). Go reads them through the types bpf2go generates
 * (l4/decap); change them together. */
#ifndef XLB_DECAP_TYPES_H
#define XLB_DECAP_TYPES_H

#include <linux/types.h>
#include "consts.h"

/* Slots of decap_stats_map, one per outcome: every frame is counted in
 * exactly one. Go uses the names as the `reason` metric label; append only,
 * never renumber (the map is pinned across restarts), at most
 * DECAP_COUNTER_SLOTS. */
enum decap_counter {
	DECAP_V4 = 0,         /* IP-in-IP decapsulated, inner IPv4 */
	DECAP_V6 = 1,         /* IP-in-IP decapsulated, inner IPv6 */
	DECAP_NOT_FOR_US = 2, /* tunnel, outer destination not a local address: untouched */
	DECAP_MALFORMED = 3,  /* tunnel for us with a bad outer or inner header: dropped */
	DECAP_PASSED = 4,     /* not a tunnel (or unparsable outer header): untouched */
	DECAP_GUE_V4 = 5,     /* GUE (IP in UDP) decapsulated, inner IPv4 */
	DECAP_GUE_V6 = 6,     /* GUE (IP in UDP) decapsulated, inner IPv6 */
	DECAP_COUNTER_MAX = 7,
};

/* decap_stats_map has room for more slots than are used, so that a new
 * counter does not change the pinned map's layout (which would make a
 * restart refuse the pins instead of adopting them). */
#define DECAP_COUNTER_SLOTS 16
_Static_assert(DECAP_COUNTER_MAX <= DECAP_COUNTER_SLOTS, "decap_stats_map is too small for enum decap_counter");

/* A local address, in wire order. One map per family: hashing a 4-byte
 * key is measurably cheaper than an IPv4-mapped 16-byte one, and IPv4 is
 * the common case. */
struct decap_addr4 {
	__u8 addr[4];
};

struct decap_addr6 {
	__u8 addr[16];
};

#endif /* XLB_DECAP_TYPES_H */
