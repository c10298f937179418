#!/usr/bin/env bash
# Runs every xlb benchmark, each side by side with its baseline in the same
# run. Bounded: each driver stops by itself. Results go to test/bench/results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=test/bench/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

section() { printf '\n==== %s ====\n' "$1"; }

section "maglev: table build vs textbook matrix"
go test -run XXX -bench Build -benchmem -count 3 ./maglev | tee "$out/maglev-$stamp.txt"

section "decap: per-packet cost over an XDP_PASS floor"
go test -run '^$' -bench Decap -benchtime 200000x ./l4/decap | tee "$out/decap-$stamp.txt"

for driver in test/bench/l4.sh test/bench/l7.sh test/bench/control.sh test/bench/edgeha.sh; do
	if [ -x "$driver" ]; then
		section "$driver"
		bash "$driver" 2>&1 | tee "$out/$(basename "$driver" .sh)-$stamp.txt"
	fi
done
echo "results in $out/*-$stamp.txt"
