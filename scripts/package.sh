#!/usr/bin/env bash
# Builds the Debian package $OUT_DIR/xlb_<version>_<arch>.deb (default bin/) with dpkg-deb from
# the same layout `make install` writes (PREFIX=/usr). The package creates
# the xlb user and group (systemd-sysusers, or adduser where systemd is
# absent), installs the units without starting them, and keeps the
# operator's /etc/xlb/*.yaml: only *.example files are shipped there.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BIN:=bin/xlb}" "${VERSION:=dev}" "${OUT_DIR:=bin}"
arch=$(dpkg --print-architecture)
# Debian versions must start with a digit.
deb_version=$(printf '%s' "$VERSION" | sed -e 's/^v//' -e 's/[^A-Za-z0-9.+~-]/~/g')
case "$deb_version" in [0-9]*) ;; *) deb_version="0~$deb_version" ;; esac

stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" PREFIX=/usr UNITDIR=/lib/systemd/system BIN="$BIN" bash scripts/install.sh >/dev/null

install -d "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: xlb
Version: $deb_version
Architecture: $arch
Maintainer: xlb maintainers <xlb@localhost>
Section: net
Priority: optional
Depends: libc6, iproute2
Recommends: ethtool
Installed-Size: $(du -sk "$stage" | cut -f1)
Description: XDP layer-4 and Go layer-7 edge load balancer
 xlb balances traffic in two tiers: an XDP program on the edge host's NIC
 picks an L7 proxy host per flow with Maglev consistent hashing, and the L7
 proxy routes each HTTP request to an app-server pool. One binary: the edge
 daemon, the L7 proxy, the decapsulator and the operator CLI.
CONTROL
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers xlb.conf
	else
		getent group xlb >/dev/null || addgroup --system xlb
		getent passwd xlb >/dev/null || adduser --system --ingroup xlb --home /var/lib/xlb-proxy --no-create-home --shell /usr/sbin/nologin xlb
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"

out="$OUT_DIR/xlb_${deb_version}_${arch}.deb"
mkdir -p "$OUT_DIR"
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
