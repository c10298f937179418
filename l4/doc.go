// Package l4 is the Go face of xlb's XDP balancer (bpf/xlb.c): it loads the
// program with explicit sizes, pins and adopts it under bpffs, attaches it to
// interfaces, and offers typed operations on its maps — VIPs, backends (L7
// hosts), per-VIP Maglev tables replaced atomically (double-buffered, written
// through a memory mapping, flipped by one store) — plus a counter snapshot
// and Lookup, which answers "which backend would this flow get" by running
// the real program on a synthesized packet (BPF_PROG_TEST_RUN).
//
// The package knows nothing about health checks or Maglev construction: the
// caller hands it ready-made tables of BackendIDs (maglev package), one per
// VIP, of exactly Config.TableSize entries.
//
// Safety rules the data plane enforces, so that callers cannot get them
// wrong: a table slot of 0 or a VIP without a table drops (no_backend)
// instead of forwarding to a stale host; DeleteBackend fails while an
// installed table names the backend; a reused backend or VIP id carries a
// new generation, so connection entries of the previous owner never match.
//
// The connection table is per CPU (see bpf/include/maps.h for why it is a
// set-associative array rather than the kernel's LRU hash); a flow seen on
// another CPU is found there on a miss. A Dataplane is safe for concurrent
// use; every method that changes maps is serialized.
package l4
