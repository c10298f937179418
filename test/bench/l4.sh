#!/usr/bin/env bash
# L4 benchmarks of the XDP balancer. Needs root. Two parts, both bounded:
#
# 1. Per-packet cost through BPF_PROG_TEST_RUN (repeat = 1 in a loop of N
#    runs per case, kernel-reported durations averaged per round, median over
#    ROUNDS interleaved rounds), against a MAC-swap XDP_TX floor measured in
#    the same run on the same pinned CPU. One line per case:
#      l4bench case=<name> ns=<median> floor_ns=<floor> over_floor_ns=<difference>
#    N runs per case (default 200000), a few seconds in all.
#
# 2. Packet rate on veth (test/bench/l4rate): TCP ACK frames of 4096 flows
#    generated with BPF_PROG_TEST_RUN live frames in one namespace (with two
#    generator threads each sends its own half of the flows, as a NIC's RSS
#    receives each flow on one CPU; RATE_FLOWSPLIT=shared or rss,shared
#    measures every thread sending every flow too), forwarded
#    over a 2-queue veth pair by native XDP in another, counted by an XDP sink
#    on the way back; the balancer (one VIP, 8 backends, Maglev, IP-in-IP;
#    next hops from the FIB, and as xlb-mac with a configured next-hop MAC)
#    side by side with a MAC-swap XDP_TX bounce and an nftables DNAT balancer
#    to the same backends, for 1 and 2 generator threads, interleaved rounds:
#      l4rate threads=<n> flows=<rss|shared> case=<bounce|xlb|xlb-mac|nftables> mpps=<median> cpu_ns=<median>
#      l4rate threads=<n> flows=<rss|shared> xlb_over_bounce=<median> xlb_over_nftables=<median> ...
#    then a markdown table. RATE_ROUNDS × 2 × 4 samples of about 1 s each
#    (about 80 s), capped by `timeout`.
#
# A/B: with BASE=<git revision>, the packet part builds test/bench/l4 both
# at that revision (from `git archive`, so the revision's committed BPF
# object) and from the working tree (or NEW=<git revision>), and runs the
# two builds alternately
# (base new, new base, ...) AB_RUNS times (default 6), each run ROUNDS
# interleaved rounds of N runs per case (defaults 5 and 100000 in this mode).
# Both builds are measured by the working tree's driver (test/bench/l4 and
# benchxdp are copied over the base's), so only the data path differs.
# AB_STAT picks the figure: iqm (default; the interquartile mean of each
# round's runs, which preemption by other processes does not move) or mean.
# One line per case, over the floor, medians over the runs and the range of
# the per-run differences (new minus base, each pair run back to back), the
# best (lowest) run of each build, and every run's difference:
#   l4ab case=<name> base=<ns> new=<ns> diff=<median> diff_min=<ns> diff_max=<ns> base_best=<ns> new_best=<ns> diffs=<d1,d2,...>
#
# Everything the rate part creates (namespaces, veths, XDP programs, the nft
# table inside its namespace) is removed when it exits, also on failure or
# Ctrl-C; what a killed run left is removed by the next run and on exit here.
#
# Environment: PARTS ("packet rate"), N (200000), ROUNDS (10), CPU (0),
# CASES (the per-packet cases to run, comma-separated; default all),
# BASE and NEW (unset), AB_RUNS (6), AB_STAT (iqm);
# RATE_ROUNDS (9), RATE_INTERVAL (500ms), RATE_THREADS ("1,2"), RATE_FLOWSPLIT (rss),
# RATE_CASES ("bounce,xlb,xlb-mac,nftables"; nftables needs the nft tool).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
	echo "l4.sh: needs root to load XDP programs (sudo make bench)" >&2
	exit 1
fi
PARTS=${PARTS:-packet rate}
RATE_CASES=${RATE_CASES:-bounce,xlb,xlb-mac,nftables}
for p in $PARTS; do
	case $p in packet | rate) ;; *) echo "l4.sh: unknown part $p in PARTS (want packet, rate)" >&2; exit 1 ;; esac
done
case " $PARTS " in *" rate "*)
	case ",$RATE_CASES," in *,nftables,*)
		command -v nft >/dev/null 2>&1 || {
			echo "l4.sh: the nftables baseline needs nft (make deps installs nftables), or set RATE_CASES=bounce,xlb,xlb-mac" >&2
			exit 1
		} ;;
	esac ;;
esac

bin=$(mktemp -d)
cleanup() {
	if [ -x "$bin/l4rate" ]; then "$bin/l4rate" -cleanup || true; fi
	rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ab_packet runs the packet part for BASE and the working tree alternately
# and prints the l4ab lines (see the top).
ab_packet() {
	local runs=${AB_RUNS:-6} key=over_floor_ns r b order
	case ${AB_STAT:-iqm} in
	iqm) key=over_floor_iqm_ns ;;
	mean) ;;
	*) echo "l4.sh: AB_STAT is iqm or mean, not ${AB_STAT}" >&2; exit 1 ;;
	esac
	for b in base new; do
		local rev=$BASE
		if [ $b = new ]; then
			rev=${NEW:-}
			if [ -z "$rev" ]; then
				cp "$bin/l4bench" "$bin/l4bench.new"
				continue
			fi
		fi
		mkdir "$bin/$b"
		git archive "$rev" | tar -x -C "$bin/$b"
		rm -rf "$bin/$b/test/bench/l4" "$bin/$b/test/bench/benchxdp"
		cp -r test/bench/l4 test/bench/benchxdp "$bin/$b/test/bench/"
		(cd "$bin/$b" && go build -o "$bin/l4bench.$b" ./test/bench/l4)
	done
	local new="working tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- bpf l4 test/bench || echo +changes))"
	[ -n "${NEW:-}" ] && new=$(git rev-parse --short "$NEW")
	echo "# A/B ($key): base=$(git rev-parse --short "$BASE") new=$new, $runs runs of each, alternating, cpu ${CPU:-0}"
	: >"$bin/ab"
	for r in $(seq 1 "$runs"); do
		order="base new"
		[ $((r % 2)) = 0 ] && order="new base"
		for b in $order; do
			"$bin/l4bench.$b" -n "${N:-100000}" -rounds "${ROUNDS:-5}" -cpu "${CPU:-0}" >"$bin/out.$b.$r"
			[ "$r" = 1 ] && grep '^# case=' "$bin/out.$b.$r" | sed "s/^# /# $b /"
			awk -v r="$r" -v b="$b" -v key="$key" '/^l4bench case=/ {
				c = o = ""
				for (i = 2; i <= NF; i++) {
					split($i, kv, "=")
					if (kv[1] == "case") c = kv[2]
					if (kv[1] == key) o = kv[2]
				}
				print r, b, c, o
			}' "$bin/out.$b.$r" >>"$bin/ab"
		done
	done
	awk -v runs="$runs" '
	function med(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ v[$1, $2, $3] = $4; if (!($3 in seen)) { seen[$3] = 1; cs[++nc] = $3 } }
	END {
		for (i = 1; i <= nc; i++) {
			c = cs[i]; n = 0
			for (r = 1; r <= runs; r++) {
				if (!((r, "base", c) in v) || !((r, "new", c) in v)) continue
				n++; a[n] = v[r, "base", c]; b[n] = v[r, "new", c]; d[n] = b[n] - a[n]
				if (n == 1 || d[n] < lo) lo = d[n]
				if (n == 1 || d[n] > hi) hi = d[n]
			}
			if (!n) continue
			ds = ""
			for (j = 1; j <= n; j++) {
				if (j == 1 || a[j] < amin) amin = a[j]
				if (j == 1 || b[j] < bmin) bmin = b[j]
				ds = ds (j > 1 ? "," : "") sprintf("%.1f", d[j])
			}
			printf "l4ab case=%s base=%.1f new=%.1f diff=%.1f diff_min=%.1f diff_max=%.1f base_best=%.1f new_best=%.1f diffs=%s\n", c, med(a, n), med(b, n), med(d, n), lo, hi, amin, bmin, ds
		}
	}' "$bin/ab"
}

case " $PARTS " in *" packet "*)
	go build -o "$bin/l4bench" ./test/bench/l4
	if [ -n "${BASE:-}" ]; then
		ab_packet
	else
		echo "# targets on the reference machine (0.8x Katran, ns over floor): tcp_syn<=130 tcp_hit<=60 udp_hit<=78 non_vip<=20"
		"$bin/l4bench" -n "${N:-200000}" -rounds "${ROUNDS:-10}" -cpu "${CPU:-0}" -cases "${CASES:-}"
	fi
	;;
esac

case " $PARTS " in *" rate "*)
	go build -o "$bin/l4rate" ./test/bench/l4rate
	echo "# packet rate targets: xlb >= 0.8x the bounce, >= 4x nftables"
	# The cap is far above the run's own length and sends SIGINT first, so
	# the driver removes what it made. --foreground keeps the driver in this
	# process group, where Ctrl-C reaches it.
	timeout --foreground --signal=INT --kill-after=30 900 "$bin/l4rate" \
		-rounds "${RATE_ROUNDS:-9}" -interval "${RATE_INTERVAL:-500ms}" \
		-threads "${RATE_THREADS:-1,2}" -flowsplit "${RATE_FLOWSPLIT:-rss}" -cases "$RATE_CASES"
	;;
esac
