#!/usr/bin/env bash
# Database tier benchmark: pgbench against one PostgreSQL on loopback,
# directly, through `xlb proxy` (a `mode: tcp` listener on a `role: primary`
# pool with the PostgreSQL health check) and through HAProxy `mode tcp`, in
# the same run. Runs are interleaved (direct xlb haproxy, direct xlb
# haproxy, ... for ROUNDS rounds) so that noise from the shared machine hits
# every path alike; the table shows each round's transactions per second and
# average latency, the medians, and the ratios (tps and latency) xlb ÷ HAProxy and
# xlb ÷ direct per round and of the medians.
#
# Bounded: each pgbench runs DURATION seconds under `timeout`; the cluster,
# the proxies and the temp dir are removed on exit, also on failure.
#
# Environment: DURATION (seconds, default 10), ROUNDS (3), CLIENTS (8),
# THREADS (2), SCALE (10), MODES (default "select-only simple-update": the
# pgbench built-in scripts), XLB (the xlb binary, default bin/xlb, built if
# missing), XLB_B (a second xlb binary run as "xlb-b": an A/B of two builds
# in the same run), WORKERS (threads of each proxy: GOMAXPROCS for xlb,
# nbthread for HAProxy; default: each one's own default, all CPUs), OUT
# (optional file that gets the markdown table).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then # make bench's short mode
	DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1}
fi
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
MODES=${MODES:-"select-only simple-update"}
XLB=${XLB:-$ROOT/bin/xlb}
XLB_B=${XLB_B:-}
OUT=${OUT:-}
WORKERS=${WORKERS:-}

PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)")
[ -x "$PGBIN/pg_ctl" ] || { echo "l7pg.sh: PostgreSQL server binaries not found (make deps)" >&2; exit 1; }
for tool in pgbench haproxy psql; do
	command -v "$tool" >/dev/null 2>&1 || { echo "l7pg.sh: $tool is required" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/xlb-pgbench.XXXXXX)
AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(runuser -u postgres --)
	chown postgres "$TMP"
fi
declare -A PID=()
cleanup() {
	local p
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -d "$TMP/pg" ] && "${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
	[ -n "${KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: 6 free ones outside the ephemeral range (see l7lib/ports.sh).
. "$ROOT/test/bench/l7lib/ports.sh"
pick_ports 6
PGPORT=$BASE
declare -A PORT=([direct]=$PGPORT [xlb]=$((BASE + 1)) [haproxy]=$((BASE + 2)) [xlb-b]=$((BASE + 3)))
ADMIN=$((BASE + 4)) ADMIN_B=$((BASE + 5))
PATHS=(direct xlb haproxy)
[ -n "$XLB_B" ] && PATHS+=(xlb-b)

echo "building xlb..." >&2
[ -x "$XLB" ] || (cd "$ROOT" && go build -o "$XLB" ./cmd/xlb)

echo "initialising PostgreSQL (scale $SCALE)..." >&2
echo "bench-pw" >"$TMP/pw"
chmod 644 "$TMP/pw"
"${AS[@]}" "$PGBIN/initdb" -D "$TMP/pg" -U postgres --pwfile "$TMP/pw" --auth-local=trust \
	--auth-host=scram-sha-256 --no-sync >"$TMP/initdb.log" 2>&1
"${AS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg.log" -w -t 30 \
	-o "-p $PGPORT -k $TMP -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off -c synchronous_commit=off" start >/dev/null
export PGPASSWORD=bench-pw PGUSER=postgres PGDATABASE=postgres PGHOST=127.0.0.1
pgbench -i -q -s "$SCALE" -p "$PGPORT" >"$TMP/pgbench-init.log" 2>&1

gen_xlb() { # $1 listen port, $2 admin port
	cat <<YAML
listeners:
  - {name: write, addr: "127.0.0.1:$1", mode: tcp, pool: primary, connect_timeout: 1s}
admin:
  addr: 127.0.0.1:$2
  socket: $TMP/xlb-proxy-$1.sock
pools:
  - name: primary
    role: primary
    policy: least_conn
    servers:
      - {name: pg1, addr: "127.0.0.1:$PGPORT"}
    health:
      postgres: {credentials_file: $TMP/pg.cred, interval: 2s, timeout: 2s, rise: 1, fall: 3}
YAML
}
echo "user=postgres password=bench-pw dbname=postgres sslmode=disable" >"$TMP/pg.cred"
gen_xlb "${PORT[xlb]}" "$ADMIN" >"$TMP/xlb.yaml"
gen_xlb "${PORT[xlb-b]}" "$ADMIN_B" >"$TMP/xlb-b.yaml"
cat >"$TMP/haproxy.cfg" <<CFG
global
    maxconn 4096${WORKERS:+
    nbthread $WORKERS}
defaults
    mode tcp
    timeout connect 1s
    timeout client 1h
    timeout server 1h
listen pg
    bind 127.0.0.1:${PORT[haproxy]}
    balance leastconn
    server pg1 127.0.0.1:$PGPORT
CFG

start() { # NAME CMD...
	local name=$1; shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
}
[ -n "$WORKERS" ] && export GOMAXPROCS=$WORKERS
start xlb "$XLB" proxy --config "$TMP/xlb.yaml"
[ -n "$XLB_B" ] && start xlb-b "$XLB_B" proxy --config "$TMP/xlb-b.yaml"
start haproxy haproxy -db -f "$TMP/haproxy.cfg"

# Every path answers a query before the runs start (xlb: its first
# PostgreSQL check has found the primary).
for n in "${PATHS[@]}"; do
	ok=""
	for _ in $(seq 1 100); do
		if psql -p "${PORT[$n]}" -Atc 'SELECT 1' >/dev/null 2>&1; then ok=1; break; fi
		sleep 0.1
	done
	if [ -z "$ok" ]; then
		echo "l7pg.sh: $n on port ${PORT[$n]} did not answer" >&2
		for log in "$TMP"/*.log; do [ -s "$log" ] && { echo "--- $(basename "$log")" >&2; tail -5 "$log" >&2; }; done
		exit 1
	fi
done

# cpu_ticks PID: utime+stime of PID (all its threads).
cpu_ticks() {
	local f
	f=$(cut -d')' -f2 "/proc/$1/stat")
	set -- $f
	echo $(( ${12} + ${13} ))
}
HZ=$(getconf CLK_TCK)

declare -A TPS LAT CPU
run_one() { # MODE PATH ROUND
	local mode=$1 n=$2 round=$3 out tps lat t0=0 t1=0 txs cpu=-
	[ -n "${PID[$n]:-}" ] && t0=$(cpu_ticks "${PID[$n]}")
	out=$(timeout $((DURATION + 30)) pgbench -n -b "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -p "${PORT[$n]}" 2>&1) ||
		{ echo "l7pg.sh: pgbench through $n failed: $out" >&2; exit 1; }
	[ -n "${PID[$n]:-}" ] && t1=$(cpu_ticks "${PID[$n]}")
	tps=$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")
	lat=$(awk '/^latency average = / {print $4}' <<<"$out")
	txs=$(awk '/^number of transactions actually processed:/ {print $NF}' <<<"$out")
	if [ -n "${PID[$n]:-}" ]; then
		cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$txs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
		CPU[$mode,$n]+="$cpu "
	fi
	TPS[$mode,$n]+="$tps "
	LAT[$mode,$n]+="$lat "
	printf '%s round %s %-8s %8s tps  latency %s ms  proxy cpu %s us/tx\n' "$mode" "$round" "$n" "$tps" "$lat" "$cpu" >&2
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
nth() { tr ' ' '\n' <<<"$1" | grep . | sed -n "${2}p"; }

for mode in $MODES; do
	for n in "${PATHS[@]}"; do # warm up caches and connections
		timeout 30 pgbench -n -b "$mode" -c "$CLIENTS" -j "$THREADS" -T 2 -p "${PORT[$n]}" >/dev/null 2>&1
	done
	for round in $(seq 1 "$ROUNDS"); do
		for n in "${PATHS[@]}"; do run_one "$mode" "$n" "$round"; done
	done
done

table() {
	echo "pgbench -n -b MODE -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $(nproc) CPUs, proxy threads ${WORKERS:-default}, $(postgres_version), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}')"
	echo
	local hdr="| mode | round | direct tps | xlb tps | HAProxy tps |" sep="|---|---|---:|---:|---:|"
	[ -n "$XLB_B" ] && { hdr+=" xlb-b tps |"; sep+="---:|"; }
	echo "$hdr direct / xlb / HAProxy latency ms | xlb ÷ HAProxy | xlb ÷ direct | latency xlb ÷ HAProxy | latency xlb ÷ direct |"
	echo "$sep---|---:|---:|---:|---:|"
	local mode r d x h b row ld lx lh
	for mode in $MODES; do
		for r in $(seq 1 "$ROUNDS") median; do
			if [ "$r" = median ]; then
				d=$(median "${TPS[$mode,direct]}") x=$(median "${TPS[$mode,xlb]}") h=$(median "${TPS[$mode,haproxy]}")
				ld=$(median "${LAT[$mode,direct]}") lx=$(median "${LAT[$mode,xlb]}") lh=$(median "${LAT[$mode,haproxy]}")
				b=$([ -n "$XLB_B" ] && median "${TPS[$mode,xlb-b]}" || true)
			else
				d=$(nth "${TPS[$mode,direct]}" "$r") x=$(nth "${TPS[$mode,xlb]}" "$r") h=$(nth "${TPS[$mode,haproxy]}" "$r")
				ld=$(nth "${LAT[$mode,direct]}" "$r") lx=$(nth "${LAT[$mode,xlb]}" "$r") lh=$(nth "${LAT[$mode,haproxy]}" "$r")
				b=$([ -n "$XLB_B" ] && nth "${TPS[$mode,xlb-b]}" "$r" || true)
			fi
			row="| $mode | $r | $d | $x | $h |"
			[ -n "$XLB_B" ] && row+=" $b |"
			awk -v row="$row" -v d="$d" -v x="$x" -v h="$h" -v ld="$ld" -v lx="$lx" -v lh="$lh" \
				'BEGIN { printf "%s %s / %s / %s | %.2f | %.2f | %.2f | %.2f |\n", row, ld, lx, lh, x / h, x / d, lx / lh, lx / ld }'
		done
	done
}
cpu_table() {
	echo
	echo "Proxy CPU per transaction (utime+stime of the proxy process ÷ transactions; steadier than tps on a shared machine):"
	echo
	local names="xlb haproxy" n mode
	[ -n "$XLB_B" ] && names+=" xlb-b"
	for mode in $MODES; do
		for n in $names; do
			echo "- $mode $n: $(median "${CPU[$mode,$n]}") µs/tx (rounds: ${CPU[$mode,$n]% })"
		done
	done
}
postgres_version() { "$PGBIN/postgres" --version | awk '{print "PostgreSQL " $3}'; }

{ table; cpu_table; } | tee ${OUT:+"$OUT"}
