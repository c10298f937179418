// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* abi.c — no program: compiled only so that bpf2go exports the constants of
 * include/abi.h to Go (l4/abi_bpfel.go). clang emits the BTF of a type only
 * when something uses it, hence one read-only anchor per enum; nothing loads
 * this object. */
#include "include/abi.h"
#include <bpf/bpf_helpers.h>

volatile const enum xlb_abi xlb_abi_anchor = 0;
volatile const enum xlb_af xlb_af_anchor = 0;
volatile const enum xlb_xdp_action xlb_xdp_action_anchor = 0;
volatile const enum xlb_vip_flag xlb_vip_flag_anchor = 0;

char LICENSE[] SEC("license") = "Dual BSD/GPL";
