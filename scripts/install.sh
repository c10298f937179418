#!/usr/bin/env bash
# Lays out an xlb installation under $DESTDIR: the one binary, the systemd
# units (edge daemon, L7 proxy, decapsulator template), the sysusers entry
# for the xlb user and group, example configs, the Grafana dashboards, the
# suggested Prometheus alert rules and shell completion. `make install` and
# scripts/package.sh both use it, so a package and a hand install are the
# same files.
#
# A real install (no DESTDIR) also creates the xlb user and group: the units
# run the proxy as xlb, and the CLI's "permission denied" hint tells
# operators to join the group. CREATE_USERS=1 does that under DESTDIR too
# (systemd-sysusers --root), CREATE_USERS=0 never; a package build stages
# files only and leaves it to the package's postinst.
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
install -m 0644 control/gslb/example.yaml "$root/etc/xlb/dns.yaml.example"
install -m 0644 control/dashboards/*.json "$share/xlb/dashboards/"
install -m 0644 control/alerts/xlb-alerts.yaml "$share/xlb/alerts/"
install -m 0644 README.md "$share/doc/xlb/README.md"
cp -r docs "$share/doc/xlb/docs"

"$BIN" completion bash >"$share/bash-completion/completions/xlb"
"$BIN" completion zsh >"$share/zsh/vendor-completions/_xlb"
"$BIN" completion fish >"$share/fish/vendor_completions.d/xlb.fish"
create_users=${CREATE_USERS:-}
if [ -z "$create_users" ]; then
	if [ -z "$root" ]; then create_users=1; else create_users=0; fi
fi
if [ "$create_users" = 1 ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers ${root:+--root="$root"} "$sysusersdir/xlb.conf"
	elif [ -z "$root" ]; then
		getent group xlb >/dev/null || groupadd --system xlb
		getent passwd xlb >/dev/null || useradd --system --gid xlb --home-dir /var/lib/xlb-proxy --no-create-home --shell /usr/sbin/nologin xlb
	else
		echo "install: CREATE_USERS=1 under DESTDIR needs systemd-sysusers" >&2
		exit 1
	fi
fi
echo "installed xlb under ${root:-/}"
