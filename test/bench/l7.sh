#!/usr/bin/env bash
# L7 benchmark: `xlb proxy` (metrics on and off) against HAProxy and nginx in
# front of the same minimal raw HTTP/1.1 backend (test/bench/l7backend), on
# loopback only.
#
# Two configurations:
#   1w: every proxy with one worker (GOMAXPROCS=1 / nbthread 1 /
#       worker_processes 1) pinned to CPU 0; wrk and the backend on CPU 1.
#   2w: two workers each, nothing pinned.
# Runs are interleaved (A B C D, A B C D, ... for ROUNDS rounds) so that noise
# from the shared machine hits every proxy alike; the table shows medians of
# req/s, p50, p99 and proxy CPU µs per request (utime+stime of all the
# proxy's processes ÷ requests), and the ratios to HAProxy in the same
# configuration.
#
# Bounded: each wrk run is DURATION long and killed by `timeout` if it hangs;
# every process started here is stopped on exit, also on failure or Ctrl-C.
#
# Environment: DURATION (default 10s), ROUNDS (3), CONNS (50), CONFIGS
# ("1w 2w"), XLB (path to the xlb binary, default bin/xlb, built if missing),
# OUT (optional file that gets the markdown table), PROXIES (default
# "xlb xlb-nometrics haproxy nginx"), XLB_B (a second xlb binary, run as
# proxy "xlb-b" when PROXIES names it: an A/B of two builds in the same run,
# e.g. PROXIES="xlb xlb-b haproxy" XLB_B=/tmp/xlb-new).
#
# SUITES (default "plain tls") picks the tables. "tls" runs xlb and HAProxy
# with TLS on the same generated certificate (ECDSA P-256, made at the start
# of the run in the temp dir) in front of the same backend, three ways:
#   h1:  HTTP/1.1 keep-alive over TLS (wrk https, CONNS connections);
#   hs:  a new TLS connection per request (wrk -H 'Connection: close'):
#        full handshakes per second;
#   h2:  HTTP/2 multiplexed (h2load, H2_CLIENTS connections × H2_STREAMS
#        concurrent streams).
# With XLB_B set and PROXIES naming xlb-b, the TLS suite runs that build too
# (as xlb-b, interleaved with xlb and HAProxy): an A/B of two builds with TLS.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
CONFIGS=${CONFIGS:-"1w 2w"}
XLB=${XLB:-$ROOT/bin/xlb}
OUT=${OUT:-}
read -r -a PROXIES <<<"${PROXIES:-xlb xlb-nometrics haproxy nginx}"
SUITES=${SUITES:-"plain tls"}
H2_CLIENTS=${H2_CLIENTS:-10}
H2_STREAMS=${H2_STREAMS:-10}
TLS_TESTS=${TLS_TESTS:-"h1 hs h2"}

for tool in wrk haproxy nginx taskset go curl openssl h2load; do
	command -v "$tool" >/dev/null 2>&1 || { echo "l7.sh: $tool is required" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "l7.sh: needs at least 2 CPUs" >&2; exit 1; }

TMP=$(mktemp -d /tmp/xlb-l7bench.XXXXXX)
declare -A PID=()
cleanup() {
	local p
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: 16 free ones outside the ephemeral range (see l7lib/ports.sh).
. "$ROOT/test/bench/l7lib/ports.sh"
pick_ports 17
B1=$((BASE)) B2=$((BASE + 1)) B3=$((BASE + 2)) B4=$((BASE + 3))
declare -A PORT=([xlb]=$((BASE + 4)) [xlb-nometrics]=$((BASE + 5)) [haproxy]=$((BASE + 6)) [nginx]=$((BASE + 7)) [xlb-b]=$((BASE + 10))
	[xlb-tls]=$((BASE + 12)) [haproxy-tls]=$((BASE + 13)) [xlb-b-tls]=$((BASE + 15)))
ADMIN1=$((BASE + 8)) ADMIN2=$((BASE + 9)) ADMIN3=$((BASE + 11)) ADMIN4=$((BASE + 14)) ADMIN5=$((BASE + 16))
TLS_PROXIES=(xlb-tls haproxy-tls)
case " ${PROXIES[*]} " in *" xlb-b "*)
	[ -x "${XLB_B:-}" ] || { echo "l7.sh: xlb-b needs XLB_B=<xlb binary>" >&2; exit 1; }
	TLS_PROXIES=(xlb-tls xlb-b-tls haproxy-tls) ;;
esac

echo "building xlb and the backend..." >&2
case " ${PROXIES[*]} " in *" xlb"*) [ -x "$XLB" ] || (cd "$ROOT" && go build -o "$XLB" ./cmd/xlb) ;; esac
(cd "$ROOT" && go build -o "$TMP/l7backend" ./test/bench/l7backend)

# One certificate for both proxies, made for this run only.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-keyout "$TMP/bench.key" -out "$TMP/bench.crt" -subj /CN=bench.local \
	-addext "subjectAltName=DNS:bench.local,IP:127.0.0.1" 2>/dev/null
cat "$TMP/bench.crt" "$TMP/bench.key" >"$TMP/bench.pem"

# --- configs -----------------------------------------------------------------
# All three proxies see the same shape: /checkout, /browse and /products, and
# /auth to their own pools; the checkout pool gets a sticky cookie where the
# proxy has one (nginx OSS has none); power of two choices where available;
# all set the same four forwarding headers (X-Forwarded-For/-Proto/-Host,
# Forwarded), so that each does the same header work.
gen_xlb() { # $1 listen port, $2 admin port, $3 "tls" for a TLS listener
	local tls=""
	if [ "${3:-}" = tls ]; then
		tls="
    tls:
      certificates: [{cert: $TMP/bench.crt, key: $TMP/bench.key}]"
	fi
	cat <<YAML
listeners:
  - name: http
    addr: 127.0.0.1:$1$tls
admin:
  addr: 127.0.0.1:$2
  socket: $TMP/xlb-proxy-$1.sock
trusted_proxies: [10.0.0.0/8]
access_log: {enabled: true, sample: 0.01}
sticky:
  keys:
    - id: 1
      secret: YmVuY2htYXJrLW9ubHktc2VjcmV0LWtleS0wMDAx
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    pool: checkout
  - name: browse
    match: {path_prefix: /browse}
    pool: browse
  - name: products
    match: {path_prefix: /products}
    pool: browse
  - name: auth
    match: {path_prefix: /auth}
    pool: auth
pools:
  - name: checkout
    policy: p2c
    sticky: {cookie: xlb_sticky}
    health: {active: {path: /healthz, interval: 2s}}
    servers:
      - {name: c1, addr: 127.0.0.1:$B1}
      - {name: c2, addr: 127.0.0.1:$B2}
  - name: browse
    policy: p2c
    health: {active: {path: /healthz, interval: 2s}}
    servers:
      - {name: b1, addr: 127.0.0.1:$B2}
      - {name: b2, addr: 127.0.0.1:$B3}
  - name: auth
    policy: p2c
    health: {active: {path: /healthz, interval: 2s}}
    servers:
      - {name: a1, addr: 127.0.0.1:$B4}
YAML
}

gen_haproxy() { # $1 threads, $2 "tls" for a TLS frontend
	local bind="127.0.0.1:${PORT[haproxy]}" proto=http secure=""
	if [ "${2:-}" = tls ]; then
		bind="127.0.0.1:${PORT[haproxy-tls]} ssl crt $TMP/bench.pem alpn h2,http/1.1"
		proto=https secure=" secure"
	fi
	cat <<CFG
global
    nbthread $1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
frontend fe
    bind $bind
    # The same four forwarding headers xlb sets (2.6 has no "option forwarded").
    http-request set-header X-Forwarded-Proto $proto
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header Forwarded "for=%[src];proto=$proto;host=\\"%[req.hdr(host)]\\""
    acl checkout path_beg /checkout
    acl browse path_beg /browse /products
    acl auth path_beg /auth
    use_backend checkout if checkout
    use_backend browse if browse
    use_backend auth if auth
backend checkout
    balance random(2)
    http-reuse always
    cookie SRVID insert indirect nocache httponly$secure
    server c1 127.0.0.1:$B1 cookie c1
    server c2 127.0.0.1:$B2 cookie c2
backend browse
    balance random(2)
    http-reuse always
    server b1 127.0.0.1:$B2
    server b2 127.0.0.1:$B3
backend auth
    balance random(2)
    http-reuse always
    server a1 127.0.0.1:$B4
CFG
}

gen_nginx() { # $1 workers
	cat <<CFG
daemon off;
master_process on;
worker_processes $1;
user root root;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx-body;
    proxy_temp_path $TMP/nginx-proxy;
    fastcgi_temp_path $TMP/nginx-fcgi;
    uwsgi_temp_path $TMP/nginx-uwsgi;
    scgi_temp_path $TMP/nginx-scgi;
    upstream checkout { random two least_conn; server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
    upstream browse   { random two least_conn; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 64; }
    upstream auth     { server 127.0.0.1:$B4; keepalive 64; }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header X-Forwarded-Host \$host;
        proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\\"\$http_host\\"";
        location /checkout { proxy_pass http://checkout; }
        location /browse   { proxy_pass http://browse; }
        location /products { proxy_pass http://browse; }
        location /auth     { proxy_pass http://auth; }
    }
}
CFG
}

# wrk cycles through the routes with prebuilt requests (cheap for wrk).
cat >"$TMP/paths.lua" <<'LUA'
local paths = {"/checkout/cart", "/browse/shoes", "/products/42", "/auth/session"}
local reqs, i = {}, 0
function init(args)
  for k, p in ipairs(paths) do reqs[k] = wrk.format("GET", p) end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
LUA

# --- process control ---------------------------------------------------------
# start NAME CPUSET CMD...: start in the background, pinned when CPUSET is set.
start() {
	local name=$1 cpus=$2; shift 2
	if [ -n "$cpus" ]; then
		taskset -c "$cpus" "$@" >"$TMP/$name.log" 2>&1 &
	else
		"$@" >"$TMP/$name.log" 2>&1 &
	fi
	PID[$name]=$!
}

stop_all() {
	local n
	for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done
	for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null || true; done
	PID=()
}

wait_http() { # URL [curl flags]: up to 10 s for an answer
	local i
	for i in $(seq 1 100); do
		if curl -s ${2:-} -o /dev/null -m 1 "$1"; then return 0; fi
		sleep 0.1
	done
	echo "l7.sh: $1 did not come up" >&2
	local log
	for log in "$TMP"/*.log; do
		[ -s "$log" ] && { echo "--- $(basename "$log") (last lines)" >&2; tail -5 "$log" >&2; }
	done
	return 1
}

# cpu_ticks PID: utime+stime of PID and its threads' children processes
# (nginx workers are children of the master).
cpu_ticks() {
	local root=$1 total=0 p f
	for p in $root $(pgrep -P "$root" || true); do
		f=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
		# fields after "comm)": state=1 ... utime=12 stime=13
		set -- $f
		total=$(( total + ${12} + ${13} ))
	done
	echo "$total"
}

to_us() { # wrk latency like 812.00us, 1.20ms, 1.01s -> µs
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.0f", v }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.0f", v * 1000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.0f", v * 1000000 }
		else { printf "%.0f", v } }'
}

declare -A RPS P50 P99 CPU
HZ=$(getconf CLK_TCK)
secs=${DURATION%s}

run_one() { # CONF NAME ROUND
	local conf=$1 name=$2 round=$3 port=${PORT[$2]} t0 t1 out wrkcpu=""
	[ "$conf" = 1w ] && wrkcpu=1
	local cookie="xlb_sticky=$XLBCOOKIE; SRVID=c1"
	t0=$(cpu_ticks "${PID[$name]}")
	if [ -n "$wrkcpu" ]; then
		out=$(timeout $((secs + 20)) taskset -c "$wrkcpu" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
			-H "Cookie: $cookie" -s "$TMP/paths.lua" "http://127.0.0.1:$port/")
	else
		out=$(timeout $((secs + 20)) wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
			-H "Cookie: $cookie" -s "$TMP/paths.lua" "http://127.0.0.1:$port/")
	fi
	t1=$(cpu_ticks "${PID[$name]}")
	local rps reqs p50 p99 errs
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
	if [ -n "$errs" ]; then echo "l7.sh: $name answered $errs non-2xx responses" >&2; fi
	local cpu
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	RPS[$conf,$name]+="$rps "
	P50[$conf,$name]+="$p50 "
	P99[$conf,$name]+="$p99 "
	CPU[$conf,$name]+="$cpu "
	printf '%s round %s %-14s %10s req/s  p50 %6s us  p99 %6s us  cpu %6s us/req\n' \
		"$conf" "$round" "$name" "$rps" "$p50" "$p99" "$cpu" >&2
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

suite() { case " $SUITES " in *" $1 "*) return 0 ;; esac; return 1; }

for conf in $CONFIGS; do
	suite plain || break
	if [ "$conf" = 1w ]; then
		pcpu=0 bcpu=1 workers=1
	else
		pcpu="" bcpu="" workers=2
	fi
	gen_xlb "${PORT[xlb]}" "$ADMIN1" >"$TMP/xlb.yaml"
	gen_xlb "${PORT[xlb-nometrics]}" "$ADMIN2" >"$TMP/xlb-nometrics.yaml"
	gen_xlb "${PORT[xlb-b]}" "$ADMIN3" >"$TMP/xlb-b.yaml"
	gen_haproxy "$workers" >"$TMP/haproxy.cfg"
	gen_nginx "$workers" >"$TMP/nginx.conf"

	GOMAXPROCS=$workers start backend "$bcpu" "$TMP/l7backend" -addr "127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3,127.0.0.1:$B4"
	for b in $B1 $B2 $B3 $B4; do wait_http "http://127.0.0.1:$b/"; done
	for n in "${PROXIES[@]}"; do
		case $n in
		xlb) GOMAXPROCS=$workers start xlb "$pcpu" "$XLB" proxy --config "$TMP/xlb.yaml" ;;
		xlb-nometrics) GOMAXPROCS=$workers start xlb-nometrics "$pcpu" "$XLB" proxy --config "$TMP/xlb-nometrics.yaml" --metrics=false ;;
		xlb-b) GOMAXPROCS=$workers start xlb-b "$pcpu" "$XLB_B" proxy --config "$TMP/xlb-b.yaml" ;;
		haproxy) start haproxy "$pcpu" haproxy -db -f "$TMP/haproxy.cfg" ;;
		nginx) start nginx "$pcpu" nginx -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" ;;
		*) echo "l7.sh: unknown proxy $n" >&2; exit 1 ;;
		esac
	done

	for n in "${PROXIES[@]}"; do wait_http "http://127.0.0.1:${PORT[$n]}/browse/warmup"; done
	XLBCOOKIE=none
	if [ -n "${PID[xlb]:-}" ]; then
		wait_http "http://127.0.0.1:$ADMIN1/ready" -f
		# A real sticky cookie, so the checkout requests take the sticky-hit path.
		XLBCOOKIE=$(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[xlb]}/checkout/cart" |
			awk -F'[=;]' 'tolower($0) ~ /^set-cookie: xlb_sticky=/ {print $2; exit}')
		[ -n "$XLBCOOKIE" ] || { echo "l7.sh: xlb proxy set no sticky cookie" >&2; exit 1; }
	fi

	for n in "${PROXIES[@]}"; do # warm up connection pools and caches
		timeout 10 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${PORT[$n]}/browse/warmup" >/dev/null
	done
	for round in $(seq 1 "$ROUNDS"); do
		for n in "${PROXIES[@]}"; do run_one "$conf" "$n" "$round"; done
	done
	stop_all
done

# --- table -------------------------------------------------------------------
# CPU per request is the steadiest figure on a shared machine: req/s and p99
# move with whatever else runs, CPU µs per request much less.
table() {
	suite plain || return 0
	echo "| config | proxy | req/s | p50 µs | p99 µs | CPU µs/req | req/s ÷ HAProxy | p99 ÷ HAProxy | CPU ÷ HAProxy |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	local conf n rps p50 p99 cpu hrps hp99 hcpu
	for conf in $CONFIGS; do
		hrps=$(median "${RPS[$conf,haproxy]:-1}")
		hp99=$(median "${P99[$conf,haproxy]:-1}")
		hcpu=$(median "${CPU[$conf,haproxy]:-1}")
		for n in "${PROXIES[@]}"; do
			rps=$(median "${RPS[$conf,$n]}")
			p50=$(median "${P50[$conf,$n]}")
			p99=$(median "${P99[$conf,$n]}")
			cpu=$(median "${CPU[$conf,$n]}")
			awk -v c="$conf" -v n="$n" -v r="$rps" -v a="$p50" -v b="$p99" -v u="$cpu" -v hr="$hrps" -v hb="$hp99" -v hu="$hcpu" \
				'BEGIN { printf "| %s | %s | %.0f | %.0f | %.0f | %.1f | %.2f | %.2f | %.2f |\n", c, n, r, a, b, u, r / hr, b / hb, u / hu }'
		done
	done
	[ -n "${RPS[${CONFIGS%% *},xlb-nometrics]:-}" ] || return 0
	echo
	local m off mc offc
	for conf in $CONFIGS; do
		m=$(median "${RPS[$conf,xlb]}")
		off=$(median "${RPS[$conf,xlb-nometrics]}")
		mc=$(median "${CPU[$conf,xlb]}")
		offc=$(median "${CPU[$conf,xlb-nometrics]}")
		awk -v c="$conf" -v m="$m" -v o="$off" -v mc="$mc" -v oc="$offc" \
			'BEGIN { printf "metrics cost (%s): %+.1f %% CPU per request, %+.1f %% req/s lost\n", c, (mc - oc) / oc * 100, (o - m) / o * 100 }'
	done
}

# --- TLS: xlb and HAProxy on the same certificate ----------------------------
declare -A TRPS TP99 TCPU
# run_tls CONF TEST NAME ROUND
run_tls() {
	local conf=$1 test=$2 name=$3 round=$4 port=${PORT[$3]} t0 t1 out pin=()
	[ "$conf" = 1w ] && pin=(taskset -c 1)
	local cookie="xlb_sticky=$XLBCOOKIE; SRVID=c1" rps reqs p99="" errs
	local base="https://127.0.0.1:$port"
	t0=$(cpu_ticks "${PID[$name]}")
	case $test in
	h1 | hs)
		local close=()
		[ "$test" = hs ] && close=(-H "Connection: close")
		out=$(timeout $((secs + 20)) "${pin[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" --latency \
			-H "Cookie: $cookie" "${close[@]}" -s "$TMP/paths.lua" "$base/")
		rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
		reqs=$(awk '/requests in/ {print $1}' <<<"$out")
		p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
		errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
		local sockerr
		sockerr=$(grep -o 'Socket errors:.*' <<<"$out" || true)
		[ -z "$sockerr" ] || echo "l7.sh: $name $test: $sockerr" >&2
		;;
	h2)
		out=$(timeout $((secs + 20)) "${pin[@]}" h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D"$secs" --warm-up-time=1 \
			-H "cookie: $cookie" "$base/checkout/cart" "$base/browse/shoes" "$base/products/42" "$base/auth/session")
		grep -q 'Application protocol: h2' <<<"$out" || { echo "l7.sh: $name did not negotiate h2" >&2; echo "$out" >&2; exit 1; }
		rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
		reqs=$(awk '/^requests:/ {print $8}' <<<"$out") # succeeded
		errs=$(awk '/^requests:/ {if ($10 + $12 > 0) print $10 " failed, " $12 " errored"}' <<<"$out")
		;;
	esac
	t1=$(cpu_ticks "${PID[$name]}")
	if [ -n "${errs:-}" ]; then echo "l7.sh: $name $test: $errs non-2xx/failed responses" >&2; fi
	local cpu
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
	TRPS[$conf,$test,$name]+="$rps "
	TP99[$conf,$test,$name]+="${p99:-0} "
	TCPU[$conf,$test,$name]+="$cpu "
	printf '%s %s round %s %-12s %10s req/s  p99 %6s us  cpu %6s us/req\n' \
		"$conf" "$test" "$round" "$name" "$rps" "${p99:--}" "$cpu" >&2
}

for conf in $CONFIGS; do
	suite tls || break
	if [ "$conf" = 1w ]; then
		pcpu=0 bcpu=1 workers=1
	else
		pcpu="" bcpu="" workers=2
	fi
	gen_xlb "${PORT[xlb-tls]}" "$ADMIN4" tls >"$TMP/xlb-tls.yaml"
	gen_haproxy "$workers" tls >"$TMP/haproxy-tls.cfg"
	GOMAXPROCS=$workers start backend "$bcpu" "$TMP/l7backend" -addr "127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3,127.0.0.1:$B4"
	for b in $B1 $B2 $B3 $B4; do wait_http "http://127.0.0.1:$b/"; done
	GOMAXPROCS=$workers start xlb-tls "$pcpu" "$XLB" proxy --config "$TMP/xlb-tls.yaml"
	if [ -n "${PORT[xlb-b-tls]:-}" ] && [[ " ${TLS_PROXIES[*]} " == *" xlb-b-tls "* ]]; then
		gen_xlb "${PORT[xlb-b-tls]}" "$ADMIN5" tls >"$TMP/xlb-b-tls.yaml"
		GOMAXPROCS=$workers start xlb-b-tls "$pcpu" "$XLB_B" proxy --config "$TMP/xlb-b-tls.yaml"
	fi
	start haproxy-tls "$pcpu" haproxy -db -f "$TMP/haproxy-tls.cfg"
	for n in "${TLS_PROXIES[@]}"; do wait_http "https://127.0.0.1:${PORT[$n]}/browse/warmup" "--cacert $TMP/bench.crt"; done
	wait_http "http://127.0.0.1:$ADMIN4/ready" -f
	XLBCOOKIE=$(curl -s --cacert "$TMP/bench.crt" -D - -o /dev/null "https://127.0.0.1:${PORT[xlb-tls]}/checkout/cart" |
		awk -F'[=;]' 'tolower($0) ~ /^set-cookie: xlb_sticky=/ {print $2; exit}')
	[ -n "$XLBCOOKIE" ] || { echo "l7.sh: xlb proxy set no sticky cookie over TLS" >&2; exit 1; }
	for n in "${TLS_PROXIES[@]}"; do
		echo "$n: $(curl -s --http2 --cacert "$TMP/bench.crt" -o /dev/null -w '%{http_version}' "https://127.0.0.1:${PORT[$n]}/browse/x") over ALPN," \
			"$(openssl s_client -connect "127.0.0.1:${PORT[$n]}" </dev/null 2>/dev/null | awk '/^New,/ {print $2, $NF}')" >&2
		timeout 10 wrk -t1 -c"$CONNS" -d2s "https://127.0.0.1:${PORT[$n]}/browse/warmup" >/dev/null
	done
	for round in $(seq 1 "$ROUNDS"); do
		for test in $TLS_TESTS; do
			for n in "${TLS_PROXIES[@]}"; do run_tls "$conf" "$test" "$n" "$round"; done
		done
	done
	stop_all
done

tls_table() {
	suite tls || return 0
	echo
	echo "| config | test | proxy | req/s | p99 µs | CPU µs/req | req/s ÷ HAProxy | CPU ÷ HAProxy |"
	echo "|---|---|---|---:|---:|---:|---:|---:|"
	local conf test n rps p99 cpu hrps hcpu
	for conf in $CONFIGS; do
		for test in $TLS_TESTS; do
			hrps=$(median "${TRPS[$conf,$test,haproxy-tls]}")
			hcpu=$(median "${TCPU[$conf,$test,haproxy-tls]}")
			for n in "${TLS_PROXIES[@]}"; do
				rps=$(median "${TRPS[$conf,$test,$n]}")
				p99=$(median "${TP99[$conf,$test,$n]}")
				cpu=$(median "${TCPU[$conf,$test,$n]}")
				awk -v c="$conf" -v t="$test" -v n="${n%-tls}" -v r="$rps" -v b="$p99" -v u="$cpu" -v hr="$hrps" -v hu="$hcpu" \
					'BEGIN { printf "| %s | %s | %s | %.0f | %s | %.1f | %.2f | %.2f |\n", c, t, n, r, (b > 0 ? sprintf("%.0f", b) : "–"), u, r / hr, u / hu }'
			done
		done
	done
}
{ table; tls_table; } | tee ${OUT:+"$OUT"}
