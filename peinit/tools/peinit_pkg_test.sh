#!/usr/bin/env bash
# The command-line contract of peinit-pkg: help, --version and usage errors (exit 2), keygen file
# modes and its refusal to write into a git tree or under a missing parent, verify with key files
# and several packages, create/sign/verify/list, verification failures (exit 1
# with the reason on stderr), and module signing through a stand-in sign-file.
# Usage: peinit_pkg_test.sh PATH/TO/peinit-pkg
set -uo pipefail
pkg=$(realpath "${1:?usage: $0 PEINIT_PKG}")
[[ -x $pkg ]] || { echo "no executable $pkg"; exit 1; }
source "$(dirname "$(realpath "$0")")/../../tests/cli_lib.sh" peinit-pkg-test

# Help and usage.
expect 0 "main help" -- "$pkg" --help
contains out "keygen" "main help"
for cmd in keygen create sign verify list; do
    expect 0 "$cmd --help" -- "$pkg" "$cmd" --help
    contains out "usage: peinit-pkg $cmd" "$cmd --help"
done
expect 0 "--version" -- "$pkg" --version
contains out "peinit-pkg (peinit) " "--version"
expect 2 "no command" -- "$pkg"
expect 2 "unknown command" -- "$pkg" frobnicate
expect 2 "unknown option" -- "$pkg" verify --trust keys --bogus x.pkg
contains err 'peinit-pkg verify: unknown option "--bogus"' "unknown option named"
expect 2 "missing trusted key" -- "$pkg" verify x.pkg
contains err "no trusted key" "verify without --trust or --key"
expect 2 "missing required option" -- "$pkg" sign x.pkg
contains err "peinit-pkg sign: option --key is required" "sign without --key"
expect 2 "partial module signing options" -- "$pkg" create --name n --version 1 --kver k -o o.pkg \
    --sign-file /bin/true a.ko

# keygen: modes, fingerprint, no overwrite, no git trees.
expect 0 "keygen" -- "$pkg" keygen --out-dir keys --name test
contains out "fingerprint:" "keygen"
cp out keygen.out
[[ $(stat -c %a keys/test.key) == 600 ]] || { echo "FAIL: key mode $(stat -c %a keys/test.key)"; failures=$((failures + 1)); }
[[ $(stat -c %a keys/test.pub) == 644 ]] || { echo "FAIL: pub mode"; failures=$((failures + 1)); }
expect 1 "keygen refuses to overwrite" -- "$pkg" keygen --out-dir keys --name test
expect 0 "second key" -- "$pkg" keygen --out-dir other --name other
mkdir -p repo/.git
expect 1 "keygen refuses a git tree" -- "$pkg" keygen --out-dir repo/keys
contains err "git work tree" "keygen in a git tree"
# A mistyped path is refused, not created; a new directory under an existing one is made (0700).
expect 1 "keygen refuses a missing parent" -- "$pkg" keygen --out-dir "$work/typo/dir"
contains err "parent directory $work/typo does not exist" "keygen names the missing parent"
[[ ! -e $work/typo ]] || { echo "FAIL: keygen created $work/typo"; failures=$((failures + 1)); }
expect 0 "keygen makes its own directory" -- "$pkg" keygen --out-dir "$work/new-keys/"
[[ $(stat -c %a "$work/new-keys") == 700 ]] || { echo "FAIL: new key dir mode"; failures=$((failures + 1)); }
mkdir trust && cp keys/test.pub trust/

# Fake modules: x86-64 ELF relocatables that name themselves where a kernel module does
# (.modinfo name= and vermagic=, struct module's name in .gnu.linkonce.this_module), which
# create and the name binding check. mkmod FILE NAME VERMAGIC [PADDING]
mkmod() {
    cat >"$1.c" <<EOF
__attribute__((section(".modinfo"), used)) static const char info[] = "name=$2\\0vermagic=$3\\0$2-module-bytes";
__attribute__((section(".gnu.linkonce.this_module"), used)) struct { char pad[24]; char name[56]; }
    this_module = {{0}, "$2"};
static const char padding[${4:-1}] __attribute__((used)) = {1};
EOF
    cc -c -o "$1" "$1.c"
}
mkmod alpha.ko alpha "6.1.0-56-amd64 SMP preempt mod_unload modversions"
alpha_size=$(stat -c %s alpha.ko)
mkmod beta.ko beta "6.1.0-56-amd64 SMP preempt mod_unload modversions" 5000

# create refuses what the kernel would refuse, naming each input, and writes nothing.
head -c 3000 /dev/urandom >random.ko
mkmod other.ko notother "6.1.0-56-amd64 SMP"
mkmod foreign.ko foreign "6.1.0-57-amd64 SMP preempt mod_unload modversions"
expect 1 "create refuses non-modules" -- "$pkg" create --name bad --version 1 \
    --kver 6.1.0-56-amd64 -o bad.pkg alpha.ko random.ko other.ko foreign.ko
contains err "random.ko: not a kernel module (no ELF header)" "non-ELF input"
contains err "other.ko: holds module \"notother\", not \"other\"" "misnamed input"
contains err "foreign.ko: built for kernel 6.1.0-57-amd64 (vermagic" "another kernel's module"
contains err "3 input file(s) cannot go into a package" "every input named"
[[ ! -e bad.pkg ]] || { echo "FAIL: bad.pkg written"; failures=$((failures + 1)); }

# create (signed), verify, list.
expect 0 "create signed" -- "$pkg" create --name demo --version 1.0 --kver 6.1.0-56-amd64 \
    -o demo.pkg --sign-key keys/test.key alpha.ko beta.ko
expect 0 "verify" -- "$pkg" verify --trust trust --kver 6.1.0-56-amd64 demo.pkg
contains out "OK: demo 1.0 for 6.1.0-56-amd64, 2 file(s)" "verify"
expect 0 "verify without kver" -- "$pkg" verify --trust trust demo.pkg
# Key files as well as trust directories, several packages in one call.
expect 0 "verify with a key file" -- "$pkg" verify --key keys/test.pub demo.pkg demo.pkg
[[ $(grep -c ": OK: demo 1.0" out) == 2 ]] || { echo "FAIL: one OK line per package"; cat out; failures=$((failures + 1)); }
expect 0 "verify with --key and --trust together" -- "$pkg" verify --trust other --key=keys/test.pub demo.pkg
expect 1 "a private key is no trusted key" -- "$pkg" verify --key keys/test.key demo.pkg
contains err "keys/test.key" "the bad key file is named"
expect 0 "list" -- "$pkg" list demo.pkg
contains out "modules/alpha.ko $alpha_size " "list"
contains out "(not verified)" "list"

# Reproducible: same inputs, same bytes.
expect 0 "create again" -- "$pkg" create --name demo --version 1.0 --kver 6.1.0-56-amd64 \
    -o demo2.pkg --sign-key keys/test.key beta.ko alpha.ko
cmp -s demo.pkg demo2.pkg || { echo "FAIL: create is not reproducible"; failures=$((failures + 1)); }

# Verification failures: exit 1, reason on stderr.
expect 1 "wrong kver" -- "$pkg" verify --trust trust --kver 6.1.0-1-amd64 demo.pkg
contains err "wrong-kernel-release" "wrong kver"
expect 1 "untrusted" -- "$pkg" verify --trust other demo.pkg
contains err "untrusted-key" "untrusted"
cp demo.pkg tampered.pkg
off=$(grep -obaF 'alpha-module-bytes' tampered.pkg | head -1 | cut -d: -f1)
printf 'X' | dd of=tampered.pkg bs=1 seek="$off" conv=notrunc status=none
expect 1 "tampered payload" -- "$pkg" verify --trust trust tampered.pkg
contains err "hash-mismatch: modules/alpha.ko" "tampered payload"
expect 1 "sign refuses tampered contents" -- "$pkg" sign --key keys/test.key tampered.pkg
head -c 3000 /dev/urandom >garbage.pkg
expect 1 "garbage" -- "$pkg" verify --trust trust garbage.pkg
contains err "not-a-package" "garbage"
expect 1 "missing file" -- "$pkg" verify --trust trust nope.pkg
# The exit status is the worst of the packages; each failure is named, the others still pass.
expect 1 "one bad package among good ones" -- "$pkg" verify --trust trust demo.pkg garbage.pkg demo.pkg
[[ $(grep -c ": OK:" out) == 2 ]] || { echo "FAIL: good packages still verified"; cat out; failures=$((failures + 1)); }
contains err "garbage.pkg: not-a-package" "the bad package is named"

# Unsigned, then sign, then re-sign with another key.
expect 0 "create unsigned" -- "$pkg" create --name demo --version 1.0 --kver 6.1.0-56-amd64 \
    -o unsigned.pkg alpha.ko
expect 1 "verify unsigned" -- "$pkg" verify --trust trust unsigned.pkg
contains err "unsigned" "verify unsigned"
expect 0 "sign" -- "$pkg" sign --key keys/test.key -o signed.pkg unsigned.pkg
expect 0 "verify signed" -- "$pkg" verify --trust trust signed.pkg
expect 0 "re-sign in place" -- "$pkg" sign --key other/other.key signed.pkg
expect 1 "re-signed is untrusted" -- "$pkg" verify --trust trust signed.pkg
contains err "untrusted-key" "re-signed"

# A private key others can read is refused.
cp keys/test.key loose.key && chmod 644 loose.key
expect 1 "loose key" -- "$pkg" sign --key loose.key unsigned.pkg
contains err "chmod 600" "loose key"

# A public key where the private one belongs is named as such, whatever its mode (a .pub is
# world-readable by design): no "chmod 600" advice.
fp=$(sed -n 's/^fingerprint: //p' keygen.out)
expect 1 "public key as --key" -- "$pkg" sign --key keys/test.pub unsigned.pkg
contains err "keys/test.pub: this is a public key (fingerprint $fp), not a private key" "public key as --key"
if grep -qF "chmod" err; then echo "FAIL: public key as --key: still suggests chmod"; failures=$((failures + 1)); fi

# Module signing through a stand-in for the kernel's scripts/sign-file: it must get
# "sha256 KEY CERT IN OUT" and the package must hold its output, not the input.
cat >sign-file <<'EOF'
#!/bin/sh
[ "$1" = sha256 ] && [ -f "$2" ] && [ -f "$3" ] || exit 3
cat "$4" >"$5" && printf '~Module signature appended~\n' >>"$5"
EOF
chmod +x sign-file
echo key >mod.pem && echo cert >mod.x509
expect 0 "create with module signing" -- "$pkg" create --name demo --version 1.0 \
    --kver 6.1.0-56-amd64 -o modsig.pkg --sign-key keys/test.key \
    --module-sign-key mod.pem --module-sign-cert mod.x509 --sign-file ./sign-file alpha.ko
expect 0 "list module-signed" -- "$pkg" list modsig.pkg
contains out "modules/alpha.ko $((alpha_size + 28)) " "module signed size"
grep -qaF '~Module signature appended~' modsig.pkg || { echo "FAIL: signed module not packaged"; failures=$((failures + 1)); }
[[ $(stat -c %s alpha.ko) == "$alpha_size" ]] || { echo "FAIL: input module modified"; failures=$((failures + 1)); }
expect 1 "failing sign-file" -- "$pkg" create --name demo --version 1.0 --kver k -o x.pkg \
    --module-sign-key mod.pem --module-sign-cert mod.x509 --sign-file /bin/false alpha.ko
[[ ! -e x.pkg ]] || { echo "FAIL: output written despite failure"; failures=$((failures + 1)); }

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "peinit-pkg CLI: all checks passed"
