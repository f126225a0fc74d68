#!/usr/bin/env bash
# Shared set-up for the README's two commands: installs what is missing (Debian packages),
# builds or reuses the patched kernel and the Debian kernel fixture (cached outside the repo),
# and configures + builds the project. Idempotent; safe to run on a fresh Debian 12 machine.
# Sourced by tests/run and images/run-demo; sets PEINIT_KERNEL_DIR, PEINIT_DEBIAN_KERNEL_DIR
# and PEINIT_BUILD_DIR.
#
# PEINIT_SETUP_FOR=demo (images/run-demo): only what the demo uses: no test-only packages, no
# Debian kernel or real-root fixture, and only peinit-image with the programs an image ships are
# built (the test suite, probes and benchmark are not); the build dir's other settings are kept.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
setup_for=${PEINIT_SETUP_FOR:-tests}

packages=(
    build-essential cmake ninja-build pkg-config git python3
    libboost-dev libboost-program-options-dev libmount-dev libkmod-dev
    libtomlplusplus-dev libspdlog-dev libgtest-dev libgmock-dev libssl-dev libarchive-dev
    zlib1g-dev liblzma-dev libzstd-dev libtss2-dev libjson-c-dev
    qemu-system-x86 kmod cpio zstd xz-utils e2fsprogs fdisk groff-base man-db dash
    linux-source-6.1 flex bison bc libelf-dev dwarves rsync
)
# Only the tests use these: the real-root fixture (mmdebstrap), the fuzzers (clang), the Debian
# package (dpkg-dev debhelper lintian fakeroot), the TPM (swtpm swtpm-tools: QEMU's TPM and tpm2-tools
# as a second, independent quote verifier).
test_packages=(mmdebstrap clang libclang-rt-14-dev dpkg-dev debhelper lintian fakeroot swtpm swtpm-tools tpm2-tools)
[[ $setup_for == demo ]] || packages+=("${test_packages[@]}")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

export PEINIT_KERNEL_DIR=$("$repo/kernel/build" | tail -n 1)
export PEINIT_BUILD_DIR=${PEINIT_BUILD_DIR:-$repo/build}

if [[ $setup_for == demo ]]; then
    cmake -S "$repo" -B "$PEINIT_BUILD_DIR" -G Ninja -DPEINIT_WERROR=ON \
        -DPEINIT_KERNEL_DIR="$PEINIT_KERNEL_DIR" >&2
    cmake --build "$PEINIT_BUILD_DIR" -j "$(nproc)" --target peinit-image >&2
    return 0 2>/dev/null || exit 0
fi

export PEINIT_DEBIAN_KERNEL_DIR=$("$repo/kernel/debian-kernel" | tail -n 1)
# The real-root fixture: a minimal Debian 12 with systemd (tests/realroot/build, cached).
export PEINIT_REALROOT_DIR=$("$repo/tests/realroot/build" | tail -n 1)
# The same with Debian's kernel installed in it, for the adoption boot test (about 450 MB more).
export PEINIT_REALROOT_KERNEL_DIR=$("$repo/tests/realroot/build" --with-kernel | tail -n 1)

cmake -S "$repo" -B "$PEINIT_BUILD_DIR" -G Ninja -DPEINIT_WERROR=ON \
    -DPEINIT_KERNEL_DIR="$PEINIT_KERNEL_DIR" \
    -DPEINIT_DEBIAN_KERNEL_DIR="$PEINIT_DEBIAN_KERNEL_DIR" \
    -DPEINIT_REALROOT_DIR="$PEINIT_REALROOT_DIR" \
    -DPEINIT_REALROOT_KERNEL_DIR="$PEINIT_REALROOT_KERNEL_DIR" >&2
cmake --build "$PEINIT_BUILD_DIR" -j "$(nproc)" >&2
