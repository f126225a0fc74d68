#!/usr/bin/env bash
# The Debian package built by initramfs/system/build-deb (ctest fixture "deb": deb_build builds it once
# into BUILD/deb). Usage: deb_test.sh lintian|contents SOURCE_DIR DEB_DIR
#   lintian:  lintian reports no error (E:) for the .deb; its other tags are printed
#   contents: files in their places, conffiles, computed Depends, the binaries manifest resolves
#             to the packaged programs, one version everywhere
set -uo pipefail
mode=${1:?usage: $0 lintian|contents SOURCE_DIR DEB_DIR}
src=$(realpath "${2:?source dir}")
debdir=$(realpath "${3:?deb dir}")
source "$src/tests/cli_lib.sh" peinit-deb-test

version=$("$src/initramfs/system/check-version") || { echo "FAIL: versions disagree"; exit 1; }
deb=$debdir/peinit_${version}_amd64.deb
[[ -f $deb ]] || { echo "FAIL: no $deb (the deb_build fixture builds it)"; exit 1; }

case $mode in
lintian)
    command -v lintian >/dev/null || { echo "FAIL: lintian is not installed (tests/setup.sh)"; exit 1; }
    lintian --info --display-info "$deb" >out 2>err
    cat out err
    if grep -q '^E: ' out; then
        echo "FAIL: lintian reports errors:"; grep '^E: ' out
        exit 1
    fi
    echo "lintian: no errors ($(grep -c '^W: ' out) warnings)"
    exit 0
    ;;
contents) ;;
*) echo "usage: $0 lintian|contents SOURCE_DIR DEB_DIR" >&2; exit 2 ;;
esac

expect 0 "dpkg-deb -I" -- dpkg-deb -I "$deb"
cp out info
contains info " Package: peinit" "package name"
contains info " Version: $version" "version from CMakeLists.txt"
contains info " Architecture: amd64" "architecture"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for d in "kmod" "libc6 (>=" "libkmod2" "libssl3" "libarchive13" "libboost-program-options"; do
    [[ $depends == *"$d"* ]] || { echo "FAIL: Depends lacks $d: $depends"; failures=$((failures + 1)); }
done
[[ $depends != *'${'* ]] || { echo "FAIL: unexpanded substitution in Depends"; failures=$((failures + 1)); }

# Conffiles: everything under /etc, the hooks included.
mkdir -p ctrl && dpkg-deb -e "$deb" ctrl
for f in /etc/peinit/image.toml /etc/peinit/hive.toml \
         /etc/kernel/postinst.d/zz-peinit /etc/kernel/postrm.d/zz-peinit \
         /etc/initramfs/post-update.d/peinit /etc/grub.d/15_peinit-fallback; do
    contains ctrl/conffiles "$f" "conffile $f"
done
for s in postinst prerm postrm; do
    [[ -x ctrl/$s ]] || { echo "FAIL: no $s"; failures=$((failures + 1)); }
done
# The maintainer scripts build nothing and touch no /boot unless peinit is enabled.
contains ctrl/postinst "peinit-initramfs is-enabled" "postinst acts only when enabled"

expect 0 "dpkg-deb -c" -- dpkg-deb -c "$deb"
cp out list
for f in ./usr/lib/peinit/peinit ./usr/lib/peinit/peinitctl ./usr/lib/peinit/peinit-modprobe \
         ./usr/sbin/peinit-initramfs \
         ./usr/bin/peinit-image ./usr/bin/peinit-pkg ./usr/bin/peinit-verify \
         ./etc/kernel/postinst.d/zz-peinit \
         ./etc/kernel/postrm.d/zz-peinit ./etc/initramfs/post-update.d/peinit \
         ./etc/grub.d/15_peinit-fallback ./usr/lib/kernel/install.d/50-peinit.install; do
    grep -qE "^-rwxr-xr-x root/root .* $f$" list ||
        { echo "FAIL: $f missing or not 0755 root:root"; grep -F "$f" list; failures=$((failures + 1)); }
done
contains list "./etc/peinit/units/" "the units directory"
contains list "./usr/sbin/peinit -> ../lib/peinit/peinit" "/usr/sbin/peinit links to /usr/lib/peinit"
contains list "./usr/sbin/peinitctl -> ../lib/peinit/peinitctl" "/usr/sbin/peinitctl links to /usr/lib/peinit"
for f in ./etc/peinit/image.toml ./etc/peinit/hive.toml ./usr/share/peinit/binaries.manifest \
         ./usr/share/man/man8/peinit.8.gz ./usr/share/man/man8/peinitctl.8.gz \
         ./usr/share/man/man8/peinit-initramfs.8.gz ./usr/share/man/man1/peinit-image.1.gz \
         ./usr/share/man/man1/peinit-pkg.1.gz ./usr/share/man/man1/peinit-verify.1.gz \
         ./usr/share/man/man5/peinit-image.5.gz \
         ./usr/share/man/man5/peinit-units.5.gz ./usr/share/doc/peinit/copyright; do
    grep -qE " $f$" list || { echo "FAIL: $f not in the package"; failures=$((failures + 1)); }
done
if grep -E ' \./(sbin|bin|lib)/' list; then
    echo "FAIL: files outside /usr"; failures=$((failures + 1))
fi

# The installed peinit-image ships the packaged programs: every manifest path resolves, from
# /usr/share/peinit, to /usr/lib/peinit.
mkdir -p root && dpkg-deb -x "$deb" root
while read -r image_path host_path need; do
    [[ -z $image_path || $image_path == \#* ]] && continue
    resolved=$(realpath -m "root/usr/share/peinit/$host_path")
    case $image_path in
        /init) want=$work/root/usr/lib/peinit/peinit ;;
        /usr/bin/peinitctl) want=$work/root/usr/lib/peinit/peinitctl ;;
        /usr/lib/peinit/peinit-modprobe) want=$work/root/usr/lib/peinit/peinit-modprobe ;;
        *) want=unknown ;;
    esac
    [[ $resolved == "$want" && -x $resolved ]] ||
        { echo "FAIL: manifest $image_path -> $host_path resolves to $resolved, wanted $want ($need)"
          failures=$((failures + 1)); }
done <root/usr/share/peinit/binaries.manifest
contains root/usr/share/peinit/binaries.manifest "/init ../../lib/peinit/peinit required" "manifest names peinit"

expect 0 "packaged peinitctl --version" -- root/usr/lib/peinit/peinitctl --version
contains out "peinitctl (peinit) $version" "peinitctl's version"
expect 0 "packaged peinit-image --version" -- root/usr/bin/peinit-image --version
contains out "$version" "peinit-image's version"
expect 0 "packaged peinit-initramfs is-enabled (scratch state: no)" -- bash -c \
    "PEINIT_STATE_DIR=$work/state root/usr/sbin/peinit-initramfs is-enabled; test \$? = 1"

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "deb contents: all checks passed"
