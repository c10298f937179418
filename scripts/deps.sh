#!/usr/bin/env bash
# Installs what xlb's build, tests, demo and benchmarks need on Debian/Ubuntu.
# Does nothing when everything is already present.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }

have_cmd clang-19   || need+=(clang-19)
have_cmd llvm-strip-19 || need+=(llvm-19)
have_pkg libbpf-dev || need+=(libbpf-dev)
have_cmd bpftool    || need+=(bpftool)
have_cmd ip         || need+=(iproute2)
have_cmd ethtool    || need+=(ethtool)
have_cmd wrk        || need+=(wrk)
have_cmd haproxy    || need+=(haproxy)
have_cmd h2load     || need+=(nghttp2-client)
have_cmd nginx      || need+=(nginx)
have_cmd curl       || need+=(curl)
have_cmd nft        || need+=(nftables)
# cgo toolchain: `go test -race` needs it.
have_cmd gcc        || need+=(gcc libc6-dev)
have_cmd nsenter    || need+=(util-linux)
# The status page's browser tests drive a headless Chromium.
have_cmd chromium   || need+=(chromium)
# Without recommends chromium brings no font: its screenshots would have no text.
have_pkg fonts-dejavu-core || need+=(fonts-dejavu-core)
# The database-tier tests run real PostgreSQL clusters (initdb, pg_ctl,
# pg_basebackup); Debian keeps them in /usr/lib/postgresql/<major>/bin.
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || have_cmd pg_ctl || need+=(postgresql)
# promtool runs the alert rules' unit tests (control/alerts).
have_cmd promtool   || need+=(prometheus)
# The edge-HA tests' router (bgpd + zebra in a namespace).
[ -x /usr/lib/frr/bgpd ] || need+=(frr)
# xlb dns: dig as a real client in its end-to-end test; dnsperf, NSD,
# gdnsd and PowerDNS with its geoip and BIND backends (the reference
# authoritative servers) in test/bench/dns.sh.
have_cmd dig        || need+=(dnsutils)
have_cmd dnsperf    || need+=(dnsperf)
have_cmd nsd        || need+=(nsd)
have_cmd gdnsd      || need+=(gdnsd)
have_cmd pdns_server || need+=(pdns-server)
compgen -G '/usr/lib/*/pdns/libgeoipbackend.so' >/dev/null || need+=(pdns-backend-geoip)
compgen -G '/usr/lib/*/pdns/libbindbackend.so' >/dev/null || need+=(pdns-backend-bind)

if [ "${#need[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${need[*]}; run as root (sudo make ...) to install them" >&2
	exit 1
fi
if ! have_cmd apt-get; then
	echo "deps: missing ${need[*]} and no apt-get here; install them by hand" >&2
	exit 1
fi
echo "deps: installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The benchmark and test peers are run by hand, not as services; of the
# prometheus package only promtool is used.
for svc in haproxy nginx frr postgresql prometheus prometheus-node-exporter nsd gdnsd pdns; do
	if have_cmd systemctl; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
	if have_cmd service; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
