#!/usr/bin/env bash
# Runs every xlb benchmark, each side by side with its baseline in the same
# run, and writes a report: per benchmark the machine, the command, how long
# it took, each figure and its ratio to the baseline. Needs root (XDP).
#
# Bounded: every benchmark runs under `timeout` (TIMEOUT seconds each) and
# each driver stops by itself; a benchmark that fails or times out is
# reported as such and the others still run (the exit status is then 1).
#
# Environment:
#   BENCH_QUICK=1  short mode (about 1 minute on a 2-vCPU VM): fewer
#                  rounds and iterations, to check the drivers and the report;
#                  its figures are noisy. The full run takes about 28 minutes.
#   REPORT         where the report goes; default docs/benchmarks-latest.md
#                  for a full run, test/bench/results/report-<stamp>.md for a
#                  quick one (so that it never replaces the published figures).
#   ONLY           space-separated benchmark names to run (default: all), e.g.
#                  ONLY="maglev l7-decide".
#   TIMEOUT        per benchmark, seconds (default 900, quick 300).
# Raw outputs go to test/bench/results/<name>-<stamp>.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=test/bench/results
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
quick=${BENCH_QUICK:-0}
[ "$quick" = 1 ] || quick=0
if [ "$quick" = 1 ]; then
	REPORT=${REPORT:-$out/report-$stamp.md}
	TIMEOUT=${TIMEOUT:-300}
else
	REPORT=${REPORT:-docs/benchmarks-latest.md}
	TIMEOUT=${TIMEOUT:-900}
fi
ONLY=${ONLY:-}

# q QUICK FULL: the value for the mode.
q() { if [ "$quick" = 1 ]; then echo "$1"; else echo "$2"; fi; }

# The benchmarks: name | what is measured | baseline in the same run | the
# lines of the output that carry figures (extended regexp) | command.
# Commands are run by bash -c; drivers take their knobs from the environment.
benches=(
	"maglev|Maglev table build, per N backends and M slots|the paper's pseudocode with the full N×M matrix (impl=textbook)|^Benchmark|go test -run '^\$' -bench Build -benchmem -count $(q 1 3) -benchtime $(q 3x 1s) ./maglev"
	"l7-decide|L7 decision path (route, pool, sticky cookie)|a regexp router with a new HMAC per cookie (naive)|^Benchmark|go test -run '^\$' -bench 'Decide\$' -benchmem -count $(q 1 3) -benchtime $(q 20000x 1s) ./l7/director"
	"l7-proxy-micro|L7 proxy in-process: a request through the handler, header rewrite, metrics observe|none (absolute; see l7 for the baseline proxies)|^Benchmark|go test -run '^\$' -bench . -benchmem -count $(q 1 3) -benchtime $(q 2000x 1s) ./l7/proxy"
	"decap|decapsulator, ns per packet (BPF_PROG_TEST_RUN)|a trivial XDP_PASS program (floor)|decapbench|go test -run '^\$' -bench Decap -benchtime $(q 20000x 200000x) ./l4/decap"
	"l4|XDP balancer: ns per packet, and packets per second on veth|MAC-swap XDP_TX floor; XDP_TX bounce and nftables DNAT on the same topology|^l4bench|^l4rate|^\\||N=$(q 20000 200000) ROUNDS=$(q 3 10) RATE_ROUNDS=$(q 1 9) RATE_THREADS=$(q 1 1,2) bash test/bench/l4.sh"
	"l4-table|installing one VIP's Maglev table in the kernel|none (absolute)|^Benchmark|go test -run '^\$' -bench InstallTable -benchtime $(q 5x 20x) ./l4"
	"l7|L7 proxy req/s, p50/p99 and CPU per request, plain and with TLS (HTTP/1.1, a handshake per request, h2)|HAProxy and nginx in front of the same app server (HAProxy with TLS)|^\\||^metrics cost|DURATION=$(q 2s 10s) ROUNDS=$(q 1 3) CONFIGS='$(q 1w '1w 2w')' bash test/bench/l7.sh"
	"control|failover time and API change to live table|maglev.Build alone in the same run; targets p99 ≤ 1 s and ≤ 10 ms|^controlbench|^Benchmark|bash test/bench/control.sh"
	"fleet|change propagation through three daemons sharing one etcd until the last kernel forwards accordingly|the same change on one daemon with the state file; target p99 ≤ 50 ms|^controlbench|bash test/bench/fleet.sh"
	"edgeha|edge-host failure: a silent host until the BGP router stops using it (FRR)|the BGP hold time (3 s and 9 s)|edgehabench|^(ok|FAIL|---)|bash test/bench/edgeha.sh"
	"control-api|CLI API round trip over the unix socket|none (absolute)|^Benchmark|go test -run '^\$' -bench API -benchtime $(q 300x 3000x) -count $(q 1 3) ./control/api"
)
# Drivers added later (test/bench/<name>.sh, e.g. TLS) run too, with their
# figure lines picked by the usual markers.
for f in test/bench/*.sh; do
	n=$(basename "$f" .sh)
	case $n in run | l4 | l7 | control | fleet | edgeha) continue ;; esac
	benches+=("$n|$n (test/bench/$n.sh)|see the driver|^Benchmark|bench |ratio|^\\||bash $f")
done

machine() {
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
	echo "- kernel: $(uname -r); $(go version | cut -d' ' -f3-)"
	echo "- load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# go_ratios FILE XLB BASE: for each benchmark whose name contains XLB and
# has a twin with BASE instead, the median ns/op of both and BASE ÷ XLB.
go_ratios() {
	awk -v x="$2" -v base="$3" '
	function median(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		for (i = 2; i <= NF; i++) if ($i == "ns/op") ns[name] = ns[name] " " $(i-1)
	}
	END {
		for (name in ns) {
			if (index(name, x) == 0) continue
			twin = name; sub(x, base, twin)
			if (!(twin in ns)) continue
			a = median(ns[name]); b = median(ns[twin])
			printf "| %s | %.0f | %.0f | %.2f |\n", name, a, b, b / a
		}
	}' "$1" | sort
}

failed=()
declare -A took status cmds
start=$(date +%s)
for b in "${benches[@]}"; do
	IFS='|' read -r name _ <<<"$b"
	if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
	cmd=${b##*|}
	cmds[$name]=$cmd
	printf '\n==== %s: %s ====\n' "$name" "$cmd"
	t0=$(date +%s)
	timeout --kill-after=30 "$TIMEOUT" bash -c "$cmd" 2>&1 | tee "$out/$name-$stamp.txt"
	rc=${PIPESTATUS[0]}
	took[$name]=$(($(date +%s) - t0))
	case $rc in
	0) status[$name]=ok ;;
	124) status[$name]="timed out after ${TIMEOUT}s"; failed+=("$name") ;;
	*) status[$name]="failed (exit $rc)"; failed+=("$name") ;;
	esac
done
total=$(($(date +%s) - start))

{
	echo "# Benchmark results ($(date -u +'%Y-%m-%d %H:%M UTC'))"
	echo
	echo "Generated by \`sudo make bench\` (test/bench/run.sh$([ "$quick" = 1 ] && echo ", BENCH_QUICK=1: short mode, noisy figures")); do not edit."
	echo "How each benchmark works and how to read it: [benchmarks.md](benchmarks.md)."
	echo "Ratios are taken within this run; absolute figures on a shared VM move by up to 1.5× between runs."
	echo
	echo "Machine:"
	echo
	machine
	echo
	echo "Total time: ${total} s."
	for b in "${benches[@]}"; do
		IFS='|' read -r name what baseline _ <<<"$b"
		[ -n "${status[$name]:-}" ] || continue
		filter=${b#*|*|*|}
		filter=${filter%|*}
		file="$out/$name-$stamp.txt"
		echo
		echo "## $name"
		echo
		echo "- what: $what"
		echo "- baseline: $baseline"
		echo "- command: \`${cmds[$name]}\`"
		echo "- took: ${took[$name]} s, ${status[$name]}"
		echo
		echo "Figures:"
		echo
		echo '```'
		grep -E -- "$filter" "$file" | grep -v '^|---' | grep -vE '^\|' || true
		echo '```'
		# Markdown tables the driver printed (ratios included) go as they are.
		if grep -qE '^\|' "$file" && [[ $filter == *'\|'* ]]; then
			echo
			grep -E '^\|' "$file"
		fi
		case $name in
		maglev) ratios=$(go_ratios "$file" impl=xlb impl=textbook) ;;
		l7-decide) ratios=$(go_ratios "$file" /xlb /naive) ;;
		*) ratios= ;;
		esac
		if [ -n "$ratios" ]; then
			echo
			echo "| benchmark | xlb ns/op | baseline ns/op | baseline ÷ xlb |"
			echo "|---|---:|---:|---:|"
			echo "$ratios"
		fi
	done
} >"$REPORT"
echo
echo "report: $REPORT (raw outputs: $out/*-$stamp.txt); took ${total} s"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "run.sh: failed: ${failed[*]}" >&2
	exit 1
fi
