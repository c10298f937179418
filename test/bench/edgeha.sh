#!/usr/bin/env bash
# Edge-host failure benchmark (root, FRR installed by `make deps`): three
# edge hosts running `xlb daemon` announce a VIP to an FRR router; one at a
# time goes silent (link down, daemon killed) and the time until the
# router's kernel route stops listing it is measured. Bounded: 15 trials
# at hold 3 s and 5 at the default hold 9 s, about 2.5 minutes in all.
# Prints `edgehabench case=host_failure ...` lines with p50/p99.
set -euo pipefail
cd "$(dirname "$0")/../.."
XLB_BENCH=edgeha XLB_BENCH_TRIALS=15 XLB_BENCH_HOLD=3s \
	go test -count=1 -run '^TestBenchEdgeHostFailure$' -v -timeout 10m ./test/e2e/ | grep -E 'edgehabench|^(ok|FAIL|---)'
XLB_BENCH=edgeha XLB_BENCH_TRIALS=5 XLB_BENCH_HOLD=9s \
	go test -count=1 -run '^TestBenchEdgeHostFailure$' -v -timeout 10m ./test/e2e/ | grep -E 'edgehabench|^(ok|FAIL|---)'
