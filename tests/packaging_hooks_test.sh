#!/usr/bin/env bash
# The kernel hooks and peinit-initramfs (initramfs/system/) against a scratch root, with a stand-in
# image builder: nothing happens until "enable"; a build writes aside and renames, keeping the
# previous image until the new one is complete; a failed build leaves the old image byte for
# byte, no temporary file, exit status non-zero and the reason on stderr; update-initramfs's
# rewrite of /boot/initrd.img-KVER becomes the fallback; kernel-install acts only for its own
# generator; the GRUB script lists the fallbacks; disable restores initramfs-tools' images.
# Usage: packaging_hooks_test.sh SOURCE_DIR
set -uo pipefail
src=$(realpath "${1:?usage: $0 SOURCE_DIR}")
source "$src/tests/cli_lib.sh" peinit-hooks-test
pk=$src/initramfs/system

root=$work/root
boot=$root/boot
mkdir -p "$boot" "$root/lib/modules" "$root/etc" "$root/var/lib"
cp -r "$pk/etc/peinit" "$root/etc/peinit"
export PEINIT_CONF_DIR=$root/etc/peinit PEINIT_BOOT_DIR=$boot PEINIT_MODULES_DIR=$root/lib/modules
export PEINIT_STATE_DIR=$root/var/lib/peinit PEINIT_UPDATE_GRUB= PEINIT_UPDATE_INITRAMFS=
export PEINIT_INITRAMFS=$pk/peinit-initramfs PEINIT_BUILDER=$work/fake-image
unset DEB_MAINT_PARAMS KERNEL_INSTALL_INITRD_GENERATOR KERNEL_INSTALL_LAYOUT \
      KERNEL_INSTALL_STAGING_AREA INITRD

# The stand-in builder: "build DIR -o OUT --kver KVER". FAKE_MODE=ok writes an image naming the
# kernel and a serial; FAKE_MODE=fail writes half an image to OUT and fails with a reason. Each
# call is logged; FAKE_OLD=FILE makes it check that the image being replaced is still intact
# while the build runs.
cat >"$work/fake-image" <<'EOF'
#!/bin/bash
echo "$*" >>"$FAKE_LOG"
[[ $1 == build && $3 == -o && $5 == --kver ]] || { echo "fake-image: bad arguments: $*" >&2; exit 2; }
[[ $(dirname "$4") == "$PEINIT_BOOT_DIR" || -n ${FAKE_ANY_DIR:-} ]] ||
    { echo "fake-image: output $4 not beside the image" >&2; exit 3; }
if [[ -n ${FAKE_OLD:-} ]] && ! cmp -s "$FAKE_OLD" "$PEINIT_BOOT_DIR/initrd.img-$6"; then
    echo "fake-image: the old image is not intact during the build" >&2; exit 4
fi
if [[ ${FAKE_MODE:-ok} == fail ]]; then
    printf 'half an ima' >"$4"
    echo "fake-image: $2/units/x.toml:3: unknown module \"vxlna\"" >&2
    exit 1
fi
serial=$(($(cat "$FAKE_LOG" | wc -l)))
printf 'peinit image for %s #%s\n' "$6" "$serial" >"$4"
EOF
chmod +x "$work/fake-image"
export FAKE_LOG=$work/builder.log
: >"$FAKE_LOG"

k1=6.1.0-99-amd64
k2=6.1.0-100-amd64
for k in $k1 $k2; do
    mkdir -p "$root/lib/modules/$k"
    echo "kernel $k" >"$boot/vmlinuz-$k"
    head -c 4096 /dev/urandom >"$boot/initrd.img-$k"
    cp "$boot/initrd.img-$k" "$work/itools-$k"
done

hook_inst=$pk/etc/kernel/postinst.d/zz-peinit
hook_rm=$pk/etc/kernel/postrm.d/zz-peinit
hook_upd=$pk/etc/initramfs/post-update.d/peinit
plugin=$pk/usr/lib/kernel/install.d/50-peinit.install
pi=$pk/peinit-initramfs

same() {  # same FILE1 FILE2 DESCRIPTION: byte for byte
    if ! cmp -s "$1" "$2"; then
        echo "FAIL: $3: $1 differs from $2"; failures=$((failures + 1))
    fi
}
no_temp_files() {  # nothing but the expected files in /boot
    local extra
    extra=$(find "$boot" -mindepth 1 -name '.*' | tr '\n' ' ')
    if [[ -n $extra ]]; then
        echo "FAIL: $1: temporary files left in /boot: $extra"; failures=$((failures + 1))
    fi
}
builder_calls() { wc -l <"$FAKE_LOG"; }
calls_are() {
    if [[ $(builder_calls) != "$1" ]]; then
        echo "FAIL: $2: $(builder_calls) builder calls, wanted $1"; failures=$((failures + 1))
    fi
}
absent() {
    if [[ -e $1 ]]; then echo "FAIL: $2: $1 exists"; failures=$((failures + 1)); fi
}

# --- not enabled: every hook is a no-op -----------------------------------------------------
expect 0 "postinst hook, not enabled" -- "$hook_inst" "$k1" "$boot/vmlinuz-$k1"
expect 0 "post-update hook, not enabled" -- "$hook_upd" "$k1" "$boot/initrd.img-$k1"
expect 0 "postrm hook, not enabled" -- "$hook_rm" "$k1" "$boot/vmlinuz-$k1"
expect 0 "kernel-install add, not enabled" -- "$plugin" add "$k1" "$work/entry" "$boot/vmlinuz-$k1"
expect 0 "update, not enabled" -- "$pi" update "$k1"
contains err "not enabled" "update says it is not enabled"
calls_are 0 "no build while not enabled"
same "$boot/initrd.img-$k1" "$work/itools-$k1" "image untouched while not enabled"
absent "$boot/initrd.img-$k1.initramfs-tools" "no fallback while not enabled"
expect 1 "is-enabled, not enabled" -- "$pi" is-enabled

# "build" works without enabling (to try the configuration first).
expect 0 "build KVER OUT" -- env FAKE_ANY_DIR=1 "$pi" build "$k1" "$work/try.img"
contains "$work/try.img" "peinit image for $k1" "build wrote the image"
contains "$FAKE_LOG" "build $PEINIT_CONF_DIR -o $work/.try.img.peinit-" "builder gets the conf dir and a temp output"
contains "$FAKE_LOG" "--kver $k1" "builder gets the release"
: >"$FAKE_LOG"

# --- enable, failing: nothing changes --------------------------------------------------------
expect 1 "enable with a failing build" -- env FAKE_MODE=fail "$pi" enable
contains err 'unknown module "vxlna"' "the builder's reason is on stderr"
contains err "nothing changed" "enable says nothing changed"
expect 1 "still not enabled" -- "$pi" is-enabled
for k in $k1 $k2; do
    same "$boot/initrd.img-$k" "$work/itools-$k" "failed enable keeps $k's image"
    absent "$boot/initrd.img-$k.initramfs-tools" "failed enable leaves no fallback for $k"
done
no_temp_files "failed enable"

# --- enable ----------------------------------------------------------------------------------
: >"$FAKE_LOG"
expect 0 "enable" -- "$pi" enable
expect 0 "is-enabled" -- "$pi" is-enabled
calls_are 2 "enable builds every installed kernel"
for k in $k1 $k2; do
    contains "$boot/initrd.img-$k" "peinit image for $k" "enable installed peinit's image for $k"
    same "$boot/initrd.img-$k.initramfs-tools" "$work/itools-$k" "enable kept $k's initramfs-tools image"
done
no_temp_files "enable"
expect 0 "status" -- "$pi" status
contains out "peinit: enabled" "status says enabled"
contains out "$k1: $boot/initrd.img-$k1 is peinit's" "status: the image is peinit's"

# --- the postinst hook: a failed build leaves the old image byte for byte ---------------------
cp "$boot/initrd.img-$k1" "$work/peinit-$k1"
expect 1 "postinst hook, failing build" -- env FAKE_MODE=fail "$hook_inst" "$k1" "$boot/vmlinuz-$k1"
contains err 'unknown module "vxlna"' "postinst hook: the reason"
contains err "$boot/initrd.img-$k1 is unchanged" "postinst hook: says the image is unchanged"
same "$boot/initrd.img-$k1" "$work/peinit-$k1" "failed rebuild keeps the previous image"
same "$boot/initrd.img-$k1.initramfs-tools" "$work/itools-$k1" "failed rebuild keeps the fallback"
no_temp_files "failed rebuild"

# --- the postinst hook: success replaces it; the old one stays until the new one is complete --
expect 0 "postinst hook" -- env FAKE_OLD="$work/peinit-$k1" "$hook_inst" "$k1" "$boot/vmlinuz-$k1"
if cmp -s "$boot/initrd.img-$k1" "$work/peinit-$k1"; then
    echo "FAIL: the postinst hook did not replace the image"; failures=$((failures + 1))
fi
contains "$boot/initrd.img-$k1" "peinit image for $k1" "postinst hook: peinit's image"
same "$boot/initrd.img-$k1.initramfs-tools" "$work/itools-$k1" "rebuild keeps the fallback"
no_temp_files "postinst hook"
# Called by a kernel package's maintainer script on anything but "configure": nothing.
n=$(builder_calls)
expect 0 "postinst hook, DEB_MAINT_PARAMS=abort-upgrade" -- env DEB_MAINT_PARAMS="abort-upgrade 1" \
    "$hook_inst" "$k1" "$boot/vmlinuz-$k1"
calls_are "$n" "postinst hook acts on configure only"
expect 0 "postinst hook, INITRD=No" -- env INITRD=No "$hook_inst" "$k1" "$boot/vmlinuz-$k1"
calls_are "$n" "postinst hook skips INITRD=No kernels"
expect 2 "postinst hook without a version" -- "$hook_inst"
expect 1 "postinst hook, kernel not installed" -- "$hook_inst" 9.9.9 "$boot/vmlinuz-9.9.9"
contains err "kernel 9.9.9 is not installed" "unknown kernel named"

# --- update-initramfs rewrote the image: it becomes the fallback, peinit's comes back ---------
head -c 4096 /dev/urandom >"$boot/initrd.img-$k1"
cp "$boot/initrd.img-$k1" "$work/itools2-$k1"
expect 0 "post-update hook" -- env FAKE_OLD="$work/itools2-$k1" "$hook_upd" "$k1" "$boot/initrd.img-$k1"
same "$boot/initrd.img-$k1.initramfs-tools" "$work/itools2-$k1" "the fresh initramfs-tools image is the fallback"
contains "$boot/initrd.img-$k1" "peinit image for $k1" "post-update hook: peinit's image is back"
no_temp_files "post-update hook"

# --- kernel-install ----------------------------------------------------------------------------
n=$(builder_calls)
expect 0 "kernel-install add, generator dracut" -- env KERNEL_INSTALL_INITRD_GENERATOR=dracut \
    KERNEL_INSTALL_LAYOUT=bls KERNEL_INSTALL_STAGING_AREA="$work/staging" \
    "$plugin" add "$k1" "$work/entry" "$boot/vmlinuz-$k1"
expect 0 "kernel-install remove, generator dracut" -- env KERNEL_INSTALL_INITRD_GENERATOR=dracut \
    "$plugin" remove "$k1" "$work/entry"
calls_are "$n" "kernel-install plugin leaves other generators alone"
[[ -e $boot/initrd.img-$k1.initramfs-tools ]] || { echo "FAIL: dracut remove acted"; failures=$((failures + 1)); }
mkdir -p "$work/staging"
expect 0 "kernel-install add, bls" -- env KERNEL_INSTALL_LAYOUT=bls FAKE_ANY_DIR=1 \
    KERNEL_INSTALL_STAGING_AREA="$work/staging" "$plugin" add "$k1" "$work/entry" "$boot/vmlinuz-$k1"
contains "$work/staging/initrd" "peinit image for $k1" "kernel-install: the initrd in the staging area"
n=$(builder_calls)
expect 0 "kernel-install add with an initrd given" -- env KERNEL_INSTALL_LAYOUT=bls \
    KERNEL_INSTALL_STAGING_AREA="$work/staging" "$plugin" add "$k1" "$work/entry" \
    "$boot/vmlinuz-$k1" "$boot/initrd.img-$k1"
calls_are "$n" "kernel-install: a given initrd is used as it is"

# --- GRUB: a submenu of the fallbacks while enabled ----------------------------------------------
mkdir -p "$work/grub"
cat >"$work/grub/grub-mkconfig_lib" <<'EOF'
make_system_path_relative_to_its_root() { echo "$1"; }
prepare_grub_to_access_device() { echo "search --no-floppy --fs-uuid --set=root test"; }
grub_add_tab() { sed -e 's/^/	/'; }
EOF
expect 0 "grub script" -- env pkgdatadir="$work/grub" GRUB_DEVICE=/dev/vda1 \
    "$pk/etc/grub.d/15_peinit-fallback"
contains out "submenu 'Fallback: initramfs-tools images (peinit)'" "grub: the submenu"
contains out "linux $boot/vmlinuz-$k1 root=/dev/vda1 ro" "grub: the kernel"
contains out "initrd $boot/initrd.img-$k1.initramfs-tools" "grub: the fallback image of $k1"
contains out "initrd $boot/initrd.img-$k2.initramfs-tools" "grub: the fallback image of $k2"

# --- kernel removal ---------------------------------------------------------------------------
expect 0 "postrm hook, DEB_MAINT_PARAMS=upgrade" -- env DEB_MAINT_PARAMS=upgrade "$hook_rm" "$k2" "$boot/vmlinuz-$k2"
[[ -e $boot/initrd.img-$k2.initramfs-tools ]] || { echo "FAIL: postrm acted on upgrade"; failures=$((failures + 1)); }
expect 0 "postrm hook" -- "$hook_rm" "$k2" "$boot/vmlinuz-$k2"
absent "$boot/initrd.img-$k2" "postrm removes peinit's image"
absent "$boot/initrd.img-$k2.initramfs-tools" "postrm removes the fallback"
absent "$PEINIT_STATE_DIR/images/$k2.sha256" "postrm removes the record"
rm -rf "$root/lib/modules/$k2" "$boot/vmlinuz-$k2"

# --- disable: initramfs-tools' images back, exactly ----------------------------------------------
expect 0 "disable" -- "$pi" disable
expect 1 "not enabled after disable" -- "$pi" is-enabled
same "$boot/initrd.img-$k1" "$work/itools2-$k1" "disable restores initramfs-tools' image"
absent "$boot/initrd.img-$k1.initramfs-tools" "no fallback after disable"
absent "$PEINIT_STATE_DIR/images/$k1.sha256" "no record after disable"
expect 0 "grub script, disabled" -- env pkgdatadir="$work/grub" "$pk/etc/grub.d/15_peinit-fallback"
[[ ! -s out ]] || { echo "FAIL: grub script prints entries while disabled"; failures=$((failures + 1)); }
no_temp_files "disable"

expect 2 "usage error" -- "$pi" bogus

# --- one version: CMakeLists.txt's project(VERSION), repeated by debian/changelog -------------------
expect 0 "check-version" -- "$pk/check-version"
contains out "$(sed -n 's/^project(peinit VERSION \([0-9.]*\) .*/\1/p' "$src/CMakeLists.txt")" "check-version prints it"
mkdir -p "$work/v/initramfs/system" "$work/v/debian"
cp "$pk/check-version" "$work/v/initramfs/system/"
sed 's/^project(peinit VERSION [0-9.]*/project(peinit VERSION 9.9.9/' "$src/CMakeLists.txt" >"$work/v/CMakeLists.txt"
cp "$src/debian/changelog" "$work/v/debian/"
expect 1 "check-version, versions differ" -- "$work/v/initramfs/system/check-version"
contains err '"9.9.9" but debian/changelog says' "check-version names both versions"

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "packaging hooks: all checks passed"
