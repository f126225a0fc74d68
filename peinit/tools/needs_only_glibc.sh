#!/usr/bin/env bash
# Asserts that the ELF file $1 needs no shared object beyond glibc's (DT_NEEDED): the handover
# copies peinitctl alone into the real root (stages/handover/handover.cpp).
set -euo pipefail
needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
bad=$(printf '%s\n' "$needed" | grep -Ev '^(libc\.so\.6|libm\.so\.6|ld-linux-x86-64\.so\.2)$' || true)
if [ -n "$bad" ]; then
    echo "FAIL: $1 needs shared objects beyond glibc: $bad" >&2
    exit 1
fi
echo "ok: $1 needs only: $(echo $needed)"
