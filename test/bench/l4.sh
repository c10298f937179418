#!/usr/bin/env bash
# L4 benchmark: per-packet cost of the XDP balancer through BPF_PROG_TEST_RUN
# (repeat = 1 in a loop of N runs per case, kernel-reported durations
# averaged per round, median over ROUNDS interleaved rounds), against a
# MAC-swap XDP_TX floor measured in the same run on the same pinned CPU.
# Prints one line per case:
#   l4bench case=<name> ns=<median> floor_ns=<floor> over_floor_ns=<difference>
# Bounded: N runs per case (default 200000), a few seconds in all. Needs root.
# Environment: N (200000), ROUNDS (10), CPU (0).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
	echo "l4.sh: needs root to load XDP programs (sudo make bench)" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/l4bench" ./test/bench/l4
echo "# targets on the reference machine (0.8x Katran, ns over floor): tcp_syn<=130 tcp_hit<=60 udp_hit<=78 non_vip<=20"
"$bin/l4bench" -n "${N:-200000}" -rounds "${ROUNDS:-10}" -cpu "${CPU:-0}"
