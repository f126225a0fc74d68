#!/usr/bin/env bash
# Issue 24 point 1: nothing the kernel or PID 1 executes finds a library through a search path
# a root process could write. $1 is peinit (PID 1 and, on the sealed tree, the demand-load
# helper): no DT_RPATH and no DT_RUNPATH. $2 is peinit-modprobe (what kernel.modprobe names): a
# static executable, with no program interpreter and no dynamic section at all.
set -euo pipefail
fail=0
if readelf -d "$1" | grep -E '\((RPATH|RUNPATH)\)'; then
    echo "FAIL: $1 carries a library search path" >&2
    fail=1
fi
if readelf -lW "$2" | grep -q 'INTERP'; then
    echo "FAIL: $2 has a program interpreter (it must be static)" >&2
    fail=1
fi
if ! readelf -d "$2" | grep -q 'There is no dynamic section'; then
    echo "FAIL: $2 has a dynamic section:" >&2
    readelf -d "$2" >&2
    fail=1
fi
[ "$fail" -eq 0 ] && echo "ok: $1 has no RPATH/RUNPATH, $2 is static"
exit "$fail"
