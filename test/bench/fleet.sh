#!/usr/bin/env bash
# Fleet change propagation (root; the real XDP program's maps, L7 stand-ins
# on loopback, an embedded etcd). Bounded: 40 alternating trials per side,
# each an add and a delete, well under a minute. Prints one
# `controlbench case=propagation_...` line per figure:
#   etcd_*: `xlb backend add`/`del` through one of three daemons sharing one
#           etcd until the last of the three kernels forwards accordingly
#           (target p99 ≤ 50 ms)
#   file_*: the same change on one daemon with the state file (the baseline)
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'Propagation' -benchtime 1x -timeout 5m ./test/bench/control/
