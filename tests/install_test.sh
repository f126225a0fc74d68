#!/usr/bin/env bash
# `cmake --install BUILD --prefix P` gives a working set of tools: the programs run from P,
# `man -M P/share/man` finds their pages, and the installed peinit-image ships the installed
# peinit and peinitctl (P/share/peinit/binaries.manifest), not the build tree's.
# Usage: install_test.sh BUILD_DIR DEBIAN_KERNEL_DIR FIXTURES_DIR
set -uo pipefail
build=$(realpath "${1:?usage: $0 BUILD_DIR DEBIAN_KERNEL_DIR FIXTURES_DIR}")
kernel=${2-}
fixtures=$(realpath "${3:?usage: $0 BUILD_DIR DEBIAN_KERNEL_DIR FIXTURES_DIR}")
source "$(dirname "$(realpath "$0")")/cli_lib.sh" peinit-install-test
prefix=$work/prefix

expect 0 "cmake --install" -- cmake --install "$build" --prefix "$prefix"
for f in bin/peinit-image bin/peinit-pkg sbin/peinit sbin/peinitctl share/peinit/binaries.manifest \
         share/man/man1/peinit-image.1 share/man/man1/peinit-pkg.1 share/man/man5/peinit-image.5 \
         share/man/man5/peinit-units.5 share/man/man8/peinit.8 share/man/man8/peinitctl.8; do
    [[ -e $prefix/$f ]] || { echo "FAIL: $f not installed"; failures=$((failures + 1)); }
done

expect 0 "installed peinit-image --help" -- "$prefix/bin/peinit-image" --help
contains out "usage: peinit-image" "installed peinit-image --help"
expect 0 "installed peinitctl --version" -- "$prefix/sbin/peinitctl" --version
contains out "peinitctl (peinit) " "installed peinitctl --version"
expect 0 "installed peinit-pkg --version" -- "$prefix/bin/peinit-pkg" --version
expect 0 "installed peinit --version" -- "$prefix/sbin/peinit" --version

for page in peinitctl peinit peinit-image peinit-pkg peinit-units; do
    expect 0 "man -w $page" -- man -M "$prefix/share/man" -w "$page"
    contains out "$prefix/share/man/man" "man -M finds $page under the prefix"
done
expect 0 "man -w 5 peinit-image" -- man -M "$prefix/share/man" -w 5 peinit-image
contains out "$prefix/share/man/man5/peinit-image.5" "section 5 page"

# The installed builder ships the installed programs.
if [[ -n $kernel && -e $kernel/kver ]]; then
    expect 0 "installed peinit-image build" -- env -u PEINIT_IMAGE_BINARIES PEINIT_CACHE="$work/cache" \
        "$prefix/bin/peinit-image" build "$fixtures/images/small" --kernel-dir "$kernel" -o "$work/small.cpio.zst"
    contains err "programs from $prefix/share/peinit/binaries.manifest" "installed manifest used"
    expect 0 "list the installed build" -- "$prefix/bin/peinit-image" list "$work/small.cpio.zst"
    contains out " /init" "image has /init"
    contains out " /usr/bin/peinitctl" "image has peinitctl"
    # PEINIT_IMAGE_BINARIES overrides the installed manifest.
    printf '/init %s required\n' /bin/true >"$work/other.manifest"
    expect 0 "PEINIT_IMAGE_BINARIES" -- env PEINIT_IMAGE_BINARIES="$work/other.manifest" \
        PEINIT_CACHE="$work/cache" "$prefix/bin/peinit-image" build "$fixtures/images/small" \
        --kernel-dir "$kernel" -o "$work/other.cpio.zst"
    contains err "programs from $work/other.manifest" "PEINIT_IMAGE_BINARIES used"
else
    echo "note: no Debian kernel fixture; the installed build is not tried"
fi

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "install: all checks passed"
