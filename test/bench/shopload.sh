#!/usr/bin/env bash
# The load generator's own overhead: shopload (test/shopload, closed loop,
# the "get" flow) and wrk, each with CONNS keep-alive connections doing a
# plain GET against the same minimal HTTP/1.1 server (test/bench/l7backend)
# on loopback. Runs alternate (wrk, shopload, wrk, shopload, ... ROUNDS
# times) so that noise on a shared machine hits both; the table shows the
# median req/s of each, the ratio shopload/wrk, and the client CPU µs per
# request (utime+stime of the client ÷ requests).
#
# shopload users do PAGES requests each on their own connection, then a new
# user (new cookie jar, new connection) takes the slot: the figure includes
# that churn, which wrk does not have.
#
# Bounded: every run lasts DURATION and is killed by `timeout` if it hangs;
# the server is stopped on exit, also on failure or Ctrl-C.
#
# Environment: DURATION (default 5s), ROUNDS (3), CONNS (8), PAGES (1000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-8}
PAGES=${PAGES:-1000}
for tool in wrk go; do
	command -v "$tool" >/dev/null 2>&1 || { echo "shopload.sh: $tool is required" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "shopload.sh: /usr/bin/time is required" >&2; exit 1; }

TMP=$(mktemp -d /tmp/xlb-shopbench.XXXXXX)
SRV=
cleanup() {
	[ -z "$SRV" ] || { kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; }
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$ROOT/test/bench/l7lib/ports.sh"
pick_ports 1
ADDR=127.0.0.1:$BASE

echo "building the server and shopload..." >&2
(cd "$ROOT" && go build -o "$TMP/l7backend" ./test/bench/l7backend && go build -o "$TMP/shopload" ./test/shopload/cmd/shopload)
"$TMP/l7backend" -addr "$ADDR" & SRV=$!
for _ in $(seq 50); do curl -fs "http://$ADDR/" >/dev/null 2>&1 && break; sleep 0.1; done

secs=${DURATION%s}
limit=$(( ${secs%.*} + 30 ))

# run_wrk prints "req/s cpu_us_per_req".
run_wrk() {
	local out
	out=$(/usr/bin/time -f 'CPU %U %S' timeout "$limit" wrk -t1 -c"$CONNS" -d"$DURATION" "http://$ADDR/" 2>&1)
	awk '/^Requests\/sec:/ {rps=$2} /requests in/ {n=$1} /^CPU/ {cpu=$2+$3}
		END {printf "%.0f %.1f\n", rps, cpu*1e6/n}' <<<"$out"
}

run_shopload() {
	local out
	out=$(/usr/bin/time -f 'CPU %U %S' timeout "$limit" "$TMP/shopload" -target "http://$ADDR" -flow get -path / \
		-concurrency "$CONNS" -pages "$PAGES" -duration "$DURATION" -grace 1ms -q -o json 2>&1)
	local n rps cpu
	n=$(grep -o '"requests": [0-9]*' <<<"$out" | head -1 | awk '{print $2}')
	rps=$(grep -o '"requests_per_s": [0-9.]*' <<<"$out" | awk '{print $2}')
	cpu=$(awk '/^CPU/ {print $2+$3}' <<<"$out")
	errs=$(tr -d '\n ' <<<"$out" | grep -o '"errors":{[^}]*}' | tail -1)
	echo "shopload errors: $errs" >&2
	awk -v r="$rps" -v c="$cpu" -v n="$n" 'BEGIN {printf "%.0f %.1f\n", r, c*1e6/n}'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$TMP/wrk" ; : >"$TMP/shop"
for i in $(seq "$ROUNDS"); do
	echo "round $i/$ROUNDS: wrk" >&2; run_wrk | tee -a "$TMP/wrk" >&2
	echo "round $i/$ROUNDS: shopload" >&2; run_shopload | tee -a "$TMP/shop" >&2
done

w_rps=$(cut -d' ' -f1 "$TMP/wrk" | median); w_cpu=$(cut -d' ' -f2 "$TMP/wrk" | median)
s_rps=$(cut -d' ' -f1 "$TMP/shop" | median); s_cpu=$(cut -d' ' -f2 "$TMP/shop" | median)
echo
echo "plain GET, $CONNS keep-alive connections, $DURATION × $ROUNDS rounds (medians), $(nproc) CPUs"
printf '| client   | req/s | client CPU µs/req |\n|---|---:|---:|\n'
printf '| wrk      | %s | %s |\n' "$w_rps" "$w_cpu"
printf '| shopload | %s | %s |\n' "$s_rps" "$s_cpu"
awk -v s="$s_rps" -v w="$w_rps" -v sc="$s_cpu" -v wc="$w_cpu" \
	'BEGIN {printf "shopload/wrk: %.2f× the rate, %.1f× the CPU per request\n", s/w, sc/wc}'
