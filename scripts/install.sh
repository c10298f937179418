#!/usr/bin/env bash
# Lays out an xlb installation under $DESTDIR: the one binary, the systemd
# units (edge daemon, L7 proxy, decapsulator template), the sysusers entry
# for the xlb user and group, example configs, the Grafana dashboards, the
# suggested Prometheus alert rules and shell completion. `make install` and
# scripts/package.sh both use it, so a package and a hand install are the
# same files.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PREFIX:=/usr/local}" "${UNITDIR:=/lib/systemd/system}" "${BIN:=bin/xlb}" "${DESTDIR:=}"
root="${DESTDIR%/}"
[ -x "$BIN" ] || { echo "install: $BIN is missing: run make build" >&2; exit 1; }

unitdir="$root$UNITDIR"
sysusersdir="$root$(dirname "$UNITDIR")/sysusers.d"
bindir="$root$PREFIX/bin"
share="$root$PREFIX/share"

install -d "$bindir" "$unitdir" "$sysusersdir" "$root/etc/xlb" \
	"$share/xlb/dashboards" "$share/xlb/alerts" "$share/doc/xlb" \
	"$share/bash-completion/completions" "$share/zsh/vendor-completions" "$share/fish/vendor_completions.d"
install -m 0755 "$BIN" "$bindir/xlb"

# The units name the binary by its installed path.
for u in control/xlb-daemon.service control/xlb-dns.service l7/xlb-proxy.service l4/decap/xlb-decap@.service; do
	sed "s|/usr/bin/xlb|$PREFIX/bin/xlb|g" "$u" >"$unitdir/$(basename "$u")"
	chmod 0644 "$unitdir/$(basename "$u")"
done
install -m 0644 control/xlb.sysusers "$sysusersdir/xlb.conf"

install -m 0644 control/example.yaml "$root/etc/xlb/xlb.yaml.example"
install -m 0644 l7/example.yaml "$root/etc/xlb/proxy.yaml.example"
install -m 0644 control/dashboards/*.json "$share/xlb/dashboards/"
install -m 0644 control/alerts/xlb-alerts.yaml "$share/xlb/alerts/"
install -m 0644 README.md "$share/doc/xlb/README.md"
cp -r docs "$share/doc/xlb/docs"

"$BIN" completion bash >"$share/bash-completion/completions/xlb"
"$BIN" completion zsh >"$share/zsh/vendor-completions/_xlb"
"$BIN" completion fish >"$share/fish/vendor_completions.d/xlb.fish"
echo "installed xlb under ${root:-/}"
