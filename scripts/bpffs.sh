#!/usr/bin/env bash
# Mounts bpffs at /sys/fs/bpf when it is not mounted (fresh VMs, CI).
set -euo pipefail
if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
	mkdir -p /sys/fs/bpf
	mount -t bpf bpffs /sys/fs/bpf
fi
