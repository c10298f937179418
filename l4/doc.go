// Package l4 is the Go face of xlb's XDP balancer (bpf/xlb.c): it loads the
// program with explicit sizes, pins and adopts it under bpffs, attaches it to
// interfaces, and offers typed operations on its maps — VIPs, backends (L7
// hosts), per-VIP Maglev tables swapped atomically — plus a counter snapshot
// and Lookup, which answers "which backend would this flow get" by running
// the real program on a synthesized packet (BPF_PROG_TEST_RUN).
//
// The package knows nothing about health checks or Maglev construction: the
// caller hands it ready-made tables of BackendIDs.
package l4
