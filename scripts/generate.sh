#!/usr/bin/env bash
# Regenerates the bpf2go objects with the pinned compiler. The committed output
# must be byte-identical to what this produces (CI checks with make generate-check).
set -euo pipefail
want_clang_major=19
clang=${CLANG:-clang-19}
if ! command -v "$clang" >/dev/null; then
	echo "generate: $clang not found; run 'sudo make deps'" >&2
	exit 1
fi
major=$("$clang" -dumpversion | cut -d. -f1)
if [ "$major" != "$want_clang_major" ]; then
	echo "generate: $clang is version $major, want $want_clang_major (the objects are pinned to it)" >&2
	exit 1
fi
export BPF_CLANG="$clang"
export BPF_CFLAGS="-O2 -g -Wall -Werror -I/usr/include/$(uname -m)-linux-gnu"
cd "$(dirname "$0")/.."
go generate ./l4/...
