#!/usr/bin/env bash
# Control-daemon benchmarks (root; the real XDP program's maps, L7 stand-ins
# on loopback). Bounded: 3 × 20 failover trials and 200 reconcile rounds,
# about 70 s in all. Prints one `controlbench case=...` line per figure.
#   failover_*: a dead L7 host until the data path stops choosing it, at the
#               default health settings (target p99 ≤ 1 s)
#   reconcile_*: an API weight change (N=100, M=65537) until the new table is
#               live in the kernel (target ≤ 10 ms), with maglev.Build alone as
#               the baseline measured in the same run
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'Failover|Reconcile' -benchtime 1x -timeout 10m ./test/bench/control/
go test -run '^$' -bench 'Reconcile' -benchmem ./control/reconcile/
