#!/usr/bin/env bash
# `peinit-image boot` without -o writes the image to a fresh directory under $TMPDIR that is gone
# when QEMU exits (never into the build or source tree), keeps it with -o, and kills QEMU after
# --timeout. QEMU is a stand-in on PATH that records how it was run.
# Usage: image_boot_cli_test.sh PEINIT_IMAGE DEBIAN_KERNEL_DIR FIXTURES_DIR
set -uo pipefail
image=$(realpath "${1:?usage: $0 PEINIT_IMAGE DEBIAN_KERNEL_DIR FIXTURES_DIR}")
kernel=${2:?usage: $0 PEINIT_IMAGE DEBIAN_KERNEL_DIR FIXTURES_DIR}
fixtures=$(realpath "${3:?usage: $0 PEINIT_IMAGE DEBIAN_KERNEL_DIR FIXTURES_DIR}")
source "$(dirname "$(realpath "$0")")/cli_lib.sh" image-boot-cli-test
[[ -e $kernel/kver ]] || { echo "no Debian kernel fixture at $kernel"; exit 1; }

mkdir bin tmp
cat >bin/qemu-system-x86_64 <<'EOF'
#!/bin/sh
# Records its arguments, the initrd it was given and whether it existed, then sleeps
# $FAKE_QEMU_SLEEP.
printf '%s\n' "$@" >"$FAKE_QEMU_LOG.args"
while [ $# -gt 0 ]; do
    if [ "$1" = -initrd ]; then
        echo "$2" >"$FAKE_QEMU_LOG"
        [ -f "$2" ] && echo present >>"$FAKE_QEMU_LOG"
    fi
    shift
done
exec sleep "${FAKE_QEMU_SLEEP:-0}"
EOF
chmod +x bin/qemu-system-x86_64
run() {  # run STATUS DESCRIPTION -- ARGS... : peinit-image boot with the stand-in QEMU
    local want=$1 what=$2
    shift 3
    expect "$want" "$what" -- env PATH="$work/bin:$PATH" TMPDIR="$work/tmp" \
        FAKE_QEMU_LOG="$work/qemu.log" FAKE_QEMU_SLEEP="${FAKE_QEMU_SLEEP:-0}" PEINIT_CACHE="$work/cache" \
        "$image" boot "$fixtures/images/small" --kernel-dir "$kernel" "$@"
}

run 0 "boot without -o" --
if [[ $(head -n 1 qemu.log) != "$work"/tmp/peinit-image-boot.*/small.cpio.zst ]]; then
    echo "FAIL: the image was not written under \$TMPDIR: $(head -n 1 qemu.log)"; failures=$((failures + 1))
fi
contains qemu.log present "QEMU got an existing image"
if [[ -n $(ls -A tmp) ]]; then
    echo "FAIL: the temporary image was left behind: $(ls -A tmp)"; failures=$((failures + 1))
fi

run 0 "boot -o OUT keeps the image" -- -o "$work/kept.cpio.zst"
[[ $(head -n 1 qemu.log) == "$work/kept.cpio.zst" ]] || { echo "FAIL: -o not used"; failures=$((failures + 1)); }
[[ -f kept.cpio.zst ]] || { echo "FAIL: -o OUT not kept"; failures=$((failures + 1)); }

FAKE_QEMU_SLEEP=30 run 124 "--timeout kills QEMU" -- --timeout 1
contains err "QEMU killed after 1 s" "timeout reported"
if [[ -n $(ls -A tmp) ]]; then
    echo "FAIL: the temporary image was left behind after a timeout"; failures=$((failures + 1))
fi
expect 0 "the default timeout is documented" -- "$image" boot --help
contains out "(default: 600)" "boot --help names the default timeout"

# --collect DIR: a second serial port backed by DIR/records.tar, the console logged to
# DIR/console.log, peinit.collect= on the command line; a guest that wrote nothing (as this
# stand-in) is exit 1, saying so.
run 1 "boot --collect without records" -- --collect "$work/collected"
contains err "peinit-image: --collect: the guest wrote no records to /dev/ttyS1" "no records reported"
contains qemu.log.args "file:$work/collected/records.tar" "second serial port"
contains qemu.log.args "logfile=$work/collected/console.log" "console log"
contains qemu.log.args "peinit.collect=/dev/ttyS1" "kernel parameter"
[[ -d collected ]] || { echo "FAIL: --collect DIR not created"; failures=$((failures + 1)); }
run 1 "boot --collect under a missing directory" -- --collect "$work/no/such"
contains err "peinit-image: --collect $work/no/such: mkdir: No such file or directory" "missing parent"
[[ ! -e no ]] || { echo "FAIL: --collect created missing parents"; failures=$((failures + 1)); }

# --results FILE and --disk: the results channel is the guest's ttyS2 (the console stays the
# first serial port), each disk a virtio drive.
echo disk >disk.img
run 0 "boot --results --disk" -- --results "$work/results" --disk "$work/disk.img"
contains qemu.log.args "file,id=results,path=$work/results" "results channel file"
contains qemu.log.args "isa-serial,chardev=results,index=2" "results channel on ttyS2"
contains qemu.log.args "file=$work/disk.img,if=virtio,format=raw" "disk"
console=$(grep -nxF mon:stdio qemu.log.args | cut -d: -f1)
channel=$(grep -nF "chardev=results,index=2" qemu.log.args | cut -d: -f1)
if [[ -z $console || -z $channel || $console -ge $channel ]]; then
    echo "FAIL: the console is not the first serial port (mon:stdio at line ${console:-none}," \
        "results at ${channel:-none})"; failures=$((failures + 1))
fi

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "peinit-image boot CLI: all checks passed"
