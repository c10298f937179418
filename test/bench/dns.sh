#!/usr/bin/env bash
# DNS benchmark: `xlb dns` against gdnsd with its geoip plugin (the same
# GeoIP database, the same sites' coordinates), PowerDNS with a LUA
# `pickclosest` record (the geoip backend on the same database, where each
# VIP lies in its site's region) and NSD (a static-only
# authoritative server: the same zone with the GSLB name as a plain A
# record, the floor of what answering costs), on loopback, in one run,
# interleaved round by round. Load from dnsperf (Debian's package).
#
# Each server gets one CPU (taskset -c 1; xlb dns with GOMAXPROCS=1, gdnsd,
# PowerDNS and NSD with one UDP worker; PowerDNS keeps its packet cache, as
# deployed) and dnsperf the other (taskset -c 0). Every
# query carries an EDNS Client Subnet option for a Tokyo network, so the
# geo servers place the client and echo the scope; the mix is half GSLB
# name (geo: the nearest site's VIP) and half ordinary records (A, SOA, NS,
# an NXDOMAIN).
#
# Per server and round, two dnsperf runs of DURATION seconds:
#   qps: closed loop, 4 clients with 100 queries outstanding in all: the
#        most the server answers;
#   p99: open loop at RATE queries/s (under every server's most): the
#        latency percentiles from dnsperf's per-query report.
# Prints one `dnsbench server=... round=...` line per run and a `dnsbench
# ratio` line per figure (the median over rounds; qps ratio xlb ÷ other,
# higher is better; p99 ratio xlb ÷ other, lower is better).
#
# Bounded: ROUNDS × 4 servers × 2 runs × DURATION seconds plus start-up
# (about 3 minutes at the defaults); each dnsperf and server runs under
# `timeout`.
#
# Environment: DURATION (seconds, default 10), ROUNDS (default 2), RATE
# (default 5000), KEEP=1 keeps the work directory; BENCH_QUICK=1 (make
# bench's short mode) defaults to one round of 3 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	DURATION=${DURATION:-3}
	ROUNDS=${ROUNDS:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
RATE=${RATE:-5000}
for c in dnsperf nsd gdnsd pdns_server dig taskset; do
	command -v "$c" >/dev/null || { echo "dns.sh: $c is missing (make deps installs it)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/xlb-dnsbench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-0}" = 1 ]; then echo "dns.sh: work directory $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

srv_cpu=() cli_cpu=()
if [ "$(nproc)" -ge 2 ]; then srv_cpu=(taskset -c 1) cli_cpu=(taskset -c 0); fi

go build -o "$work/xlb" ./cmd/xlb
go build -o "$work/dnsgeo" ./test/bench/dnsgeo
"$work/dnsgeo" -o "$work/geo.mmdb"

# The sites: name, lat, lon, VIP.
sites=("us 39.0 -77.5 192.0.2.10" "eu 53.3 -6.3 198.51.100.10" "ap 35.7 139.7 203.0.113.10")
ZONE=gslb.example
# The static records, in zone-file syntax relative to the zone.
records=(
	"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 60"
	"@ 3600 IN NS ns1"
	"@ 3600 IN NS ns2"
	"ns1 3600 IN A 192.0.2.53"
	"ns2 3600 IN A 192.0.2.54"
	"www 3600 IN A 192.0.2.80"
)

# xlb dns on 5301.
{
	echo "listen: 127.0.0.1:5301"
	echo "geoip: $work/geo.mmdb"
	echo "zones:"
	echo "  - name: $ZONE"
	echo "    records:"
	for r in "${records[@]}"; do echo "      - \"$r\""; done
	echo "sites:"
	for s in "${sites[@]}"; do
		read -r n lat lon vip <<<"$s"
		echo "  - {name: $n, location: {lat: $lat, lon: $lon}, vips: [$vip]}"
	done
	echo "names:"
	echo "  - {name: shop.$ZONE, policy: geo, sites: [us, eu, ap], ttl: 30s}"
} >"$work/xlb-dns.yaml"

# gdnsd on 5302: the GSLB name is a geoip DYNA resource over the same
# sites (auto_dc_coords: nearest by coordinates, as xlb dns does).
mkdir -p "$work/gdnsd/zones" "$work/gdnsd-run"
{
	echo "options => { listen => [ 127.0.0.1:5302 ], run_dir => $work/gdnsd-run, state_dir => $work/gdnsd-run, udp_threads => 1, tcp_threads => 1 }"
	echo "plugins => { geoip => {"
	echo "  maps => { regions => { geoip2_db => $work/geo.mmdb, datacenters => [us, eu, ap], auto_dc_coords => {"
	for s in "${sites[@]}"; do read -r n lat lon vip <<<"$s"; echo "    $n => [ $lat, $lon ]"; done
	echo "  } } }"
	echo "  resources => { shop => { map => regions, service_types => up, dcmap => {"
	for s in "${sites[@]}"; do read -r n lat lon vip <<<"$s"; echo "    $n => $vip"; done
	echo "  } } }"
	echo "} }"
} >"$work/gdnsd/config"
{
	for r in "${records[@]}"; do echo "$r"; done
	echo "shop 30 DYNA geoip!shop"
} >"$work/gdnsd/zones/$ZONE"

# NSD on 5303: the same zone, the GSLB name a static A record; response
# rate limiting off (it is on by default), as in the other two.
mkdir -p "$work/nsd"
{
	echo "\$ORIGIN $ZONE."
	for r in "${records[@]}"; do echo "$r"; done
	echo "shop 30 IN A 203.0.113.10"
} >"$work/nsd/$ZONE.zone"
cat >"$work/nsd/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@5303
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$work/nsd"
  database: ""
  zonelistfile: "$work/nsd/zone.list"
  xfrdfile: "$work/nsd/xfrd.state"
  xfrdir: "$work/nsd"
  pidfile: "$work/nsd/nsd.pid"
  logfile: "$work/nsd/nsd.log"
  rrl-ratelimit: 0
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: $ZONE
  zonefile: $ZONE.zone
EOF

# PowerDNS on 5304: the zone from a BIND zone file, the GSLB name a LUA
# record picking the VIP closest to the client (ECS, else its address).
mkdir -p "$work/pdns"
vips=""
for s in "${sites[@]}"; do read -r n lat lon vip <<<"$s"; vips="$vips${vips:+,}'$vip'"; done
{
	echo "\$ORIGIN $ZONE."
	for r in "${records[@]}"; do echo "$r"; done
	echo "shop 30 IN LUA A \"pickclosest({$vips})\""
} >"$work/pdns/$ZONE.zone"
echo "zone \"$ZONE\" { type master; file \"$work/pdns/$ZONE.zone\"; };" >"$work/pdns/named.conf"
echo "domains: []" >"$work/pdns/geo-zones.yaml"
cat >"$work/pdns/pdns.conf" <<EOF
launch=bind,geoip
bind-config=$work/pdns/named.conf
geoip-database-files=mmdb:$work/geo.mmdb
geoip-zones-file=$work/pdns/geo-zones.yaml
enable-lua-records=yes
edns-subnet-processing=yes
local-address=127.0.0.1:5304
socket-dir=$work/pdns
guardian=no
daemon=no
disable-syslog=yes
write-pid=no
receiver-threads=1
distributor-threads=1
EOF

bound=$((ROUNDS * 8 * (DURATION + 15) + 120))
GOMAXPROCS=1 timeout "$bound" "${srv_cpu[@]}" "$work/xlb" dns --config "$work/xlb-dns.yaml" --log-level warn >"$work/xlb-dns.log" 2>&1 &
pids+=($!)
timeout "$bound" "${srv_cpu[@]}" gdnsd -c "$work/gdnsd" start >"$work/gdnsd.log" 2>&1 &
pids+=($!)
timeout "$bound" "${srv_cpu[@]}" nsd -d -c "$work/nsd/nsd.conf" >"$work/nsd.log" 2>&1 &
pids+=($!)
timeout "$bound" "${srv_cpu[@]}" pdns_server --config-dir="$work/pdns" >"$work/pdns.log" 2>&1 &
pids+=($!)

servers=(xlb gdnsd pdns nsd)
declare -A port=([xlb]=5301 [gdnsd]=5302 [nsd]=5303 [pdns]=5304)
declare -A want=([xlb]=203.0.113.10 [gdnsd]=203.0.113.10 [nsd]=203.0.113.10 [pdns]=203.0.113.10)
for s in "${servers[@]}"; do
	got=""
	for _ in $(seq 1 100); do
		got=$(dig @127.0.0.1 -p "${port[$s]}" +short +norecurse +time=1 +tries=1 +subnet=203.0.113.0/24 "shop.$ZONE" A 2>/dev/null || true)
		[ "$got" = "${want[$s]}" ] && break
		sleep 0.1
	done
	if [ "$got" != "${want[$s]}" ]; then
		echo "dns.sh: $s does not answer shop.$ZONE with ${want[$s]} (got '$got'); its log:" >&2
		tail -20 "$work/$s"*.log "$work/nsd/nsd.log" 2>/dev/null >&2 || true
		exit 1
	fi
done

# The query mix: half the GSLB name, half ordinary records.
{
	for _ in 1 2 3 4 5; do echo "shop.$ZONE A"; done
	echo "www.$ZONE A"
	echo "$ZONE SOA"
	echo "$ZONE NS"
	echo "ns1.$ZONE A"
	echo "nosuch.$ZONE A"
} >"$work/queries.txt"
# EDNS Client Subnet (option 8): IPv4, source /24, scope 0, 203.0.113.
ECS=8:00011800cb0071

# run SERVER ROUND: one qps run and one p99 run; prints their lines.
run() {
	local s=$1 r=$2 out="$work/$1-$2"
	timeout $((DURATION + 20)) "${cli_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$s]}" -d "$work/queries.txt" \
		-E "$ECS" -l "$DURATION" -c 4 -T 1 -q 100 >"$out-qps.txt" 2>&1
	local qps lost
	qps=$(awk '/Queries per second:/ {print $4}' "$out-qps.txt")
	lost=$(awk '/Queries lost:/ {print $3}' "$out-qps.txt")
	timeout $((DURATION + 20)) "${cli_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$s]}" -d "$work/queries.txt" \
		-E "$ECS" -l "$DURATION" -c 4 -T 1 -q 100 -Q "$RATE" -v >"$out-lat.txt" 2>&1
	# Per-query lines: "> RCODE NAME TYPE SECONDS".
	local pct
	pct=$(awk '/^> / {print $NF}' "$out-lat.txt" | sort -g | awk '{a[NR] = $1} END {
		if (NR == 0) { print "0 0 0 0"; exit }
		printf "%d %.0f %.0f %.0f\n", NR, a[int(NR * 0.50) + 1] * 1e6, a[int(NR * 0.99) + 1] * 1e6, a[NR] * 1e6 }')
	local n p50 p99 pmax
	read -r n p50 p99 pmax <<<"$pct"
	local latlost
	latlost=$(awk '/Queries lost:/ {print $3}' "$out-lat.txt")
	echo "dnsbench server=$s round=$r qps=$qps lost=$lost rate=$RATE answered=$n lost_at_rate=$latlost p50_us=$p50 p99_us=$p99 max_us=$pmax"
}

echo "dnsbench setup: $(nproc) cores, server cpu '${srv_cpu[*]:-any}', dnsperf cpu '${cli_cpu[*]:-any}', duration ${DURATION}s, rounds $ROUNDS, rate $RATE/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
results="$work/results.txt"
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
	# Interleaved, the order rotated per round.
	order=()
	for i in 0 1 2 3; do order+=("${servers[$(((i + r - 1) % 4))]}"); done
	for s in "${order[@]}"; do run "$s" "$r" | tee -a "$results"; done
done

# The median over rounds of each figure, and the ratios.
median() { sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fig() { grep "server=$1 " "$results" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}' | median; }
for s in "${servers[@]}"; do
	echo "dnsbench median server=$s qps=$(fig "$s" qps) p50_us=$(fig "$s" p50_us) p99_us=$(fig "$s" p99_us)"
done
for o in gdnsd pdns nsd; do
	awk -v o="$o" -v xq="$(fig xlb qps)" -v oq="$(fig "$o" qps)" -v xp="$(fig xlb p99_us)" -v op="$(fig "$o" p99_us)" 'BEGIN {
		printf "dnsbench ratio xlb/%s qps=%.2f (higher is better) p99=%.2f (lower is better)\n", o, xq / oq, (op > 0 ? xp / op : 0) }'
done
