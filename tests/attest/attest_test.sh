#!/usr/bin/env bash
# Quote and verify against a software TPM (issue 25 part 2, R-34): starts its own swtpm on free
# ports in a scratch directory, extends PCRs the way PID 1 does (tpm2_pcrextend) while writing
# the matching event log (systemd's JSON-SEQ format, peinit's and systemd's records), runs
# `peinitctl attest` against it, and checks what `peinit-verify` (and `tpm2_checkquote` on the
# exported files) make of it. One CASE per run, each with its own swtpm(s), killed at the end:
#   good       the boot as the reference wants it: verified; tpm2_checkquote agrees; the AK is
#              the one tpm2_createprimary makes from the documented template
#   edited     a record's content changed after the fact (and, second, its digest fixed too)
#   removed    a module record removed from the log
#   nonce      a quote made for another challenge
#   module     a module outside the reference loaded (and measured) before the lock
#   unlocked   LockAfterBoot=false: the lock not requested, not applied
#   late       root after boot extends a forged lock record after leave-initrd
#   othertpm   the same measurements on a second TPM: not the enrolled AK
#   forged     the bundle edited: a quote byte changed, a PCR value changed
#   notpm      no TPM: attest says not measured (exit 3), the verifier too (exit 1)
# Usage: attest_test.sh CASE PEINITCTL PEINIT_VERIFY
set -uo pipefail
case_name=${1:?usage: $0 CASE PEINITCTL PEINIT_VERIFY}
ctl=$(realpath "${2:?}")
verify=$(realpath "${3:?}")
source "$(dirname "$(realpath "$0")")/../cli_lib.sh" "peinit-attest-$case_name"
swtpm_pids=()
cleanup() {
    for pid in "${swtpm_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
export TSS2_LOG=all+none

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

listening() { ss -Htln "sport = :$1" | grep -q .; }

# start_swtpm NAME: a fresh TPM in $work/NAME on two free ports; sets $port.
start_swtpm() {
    local dir=$work/$1 try pid
    mkdir -p "$dir"
    for try in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        listening "$port" || listening $((port + 1)) && continue
        swtpm socket --tpm2 --server type=tcp,port=$port --ctrl type=tcp,port=$((port + 1)) \
            --flags not-need-init,startup-clear --tpmstate dir="$dir" 2>"$dir/swtpm.log" &
        pid=$!
        for _ in $(seq 1 50); do
            listening "$port" && { swtpm_pids+=("$pid"); return 0; }
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    done
    echo "FAIL: cannot start swtpm"; cat "$dir/swtpm.log"; exit 1
}

use_tpm() {  # use_tpm PORT: tpm2-tools and peinitctl talk to that swtpm
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$1" PEINIT_TPM_TCTI="swtpm:host=127.0.0.1,port=$1"
}

# measure LOG PCR CONTENT_TYPE EVENT_TYPE STRING: extends PCR with SHA-256(STRING) and appends
# the record, as PID 1 (or systemd) does. (Plain bash: a python3 start per record would cost
# a second each on a loaded machine.)
measure() {
    local log=$1 pcr=$2 type=$3 event=$4 string=$5 digest escaped
    digest=$(printf '%s' "$string" | sha256sum | cut -c1-64)
    tpm2_pcrextend "$pcr:sha256=$digest" || fail "tpm2_pcrextend $pcr"
    escaped=${string//\\/\\\\}
    escaped=${escaped//\"/\\\"}
    printf '\x1e{"pcr":%d,"digests":[{"hashAlg":"sha256","digest":"%s"}],"content_type":"%s","content":{"string":"%s","eventType":"%s"}}\n' \
        "$pcr" "$digest" "$type" "$escaped" "$event" >>"$log"
}

# pe LOG EVENT FIELD...: a peinit record; each FIELD is '"key":value' in JSON. The content
# string is compact JSON with sorted keys, "event" and "v" added.
pe() {
    local log=$1 event=$2 s
    shift 2
    s=$(printf '%s\n' "\"event\":\"$event\"" '"v":1' "$@" | LC_ALL=C sort | paste -sd,)
    measure "$log" 13 peinit "peinit-$event" "{$s}"
}

signer=$(printf 'image signing key' | sha256sum | cut -c1-64)
sha() { printf '%s' "$1" | sha256sum | cut -c1-64; }

# boot LOG [lock=1] [modules="virtio_blk ext4"] [late=0]: one boot's measurements.
boot() {
    local log=$1 lock=${2:-1} modules=${3:-"virtio_blk ext4"} late=${4:-0} lines="" m n=0
    : >"$log"
    measure "$log" 11 systemd phase "enter-initrd"
    pe "$log" image "\"image_sha256\":\"$(sha image)\"" '"kernel_release":"6.1.0-test"' \
        "\"key_fingerprint\":\"$signer\""
    local lab=true req=true locked=true mech=syscall
    [[ $lock == 1 ]] || { lab=false req=false locked=false mech=none; }
    pe "$log" policy "\"hive_sha256\":\"$(sha hive)\"" '"cmdline":["quiet"]' \
        "\"lock_after_boot\":$lab" '"autoload_policy":"disabled"' '"signing_policy":"enforce"' \
        "\"blacklist_sha256\":\"$(sha blacklist)\""
    for m in $modules; do
        pe "$log" module "\"name\":\"$m\"" "\"sha256\":\"$(sha "$m.ko")\"" \
            '"package":"boot-modules"' "\"signer\":\"$signer\""
        lines+="$m $(sha "$m.ko")"$'\n'
        n=$((n + 1))
    done
    local set_digest
    set_digest=$(printf '%s' "$lines" | LC_ALL=C sort | sha256sum | cut -c1-64)
    pe "$log" module-set "\"count\":$n" "\"sha256\":\"$set_digest\""
    pe "$log" lock "\"requested\":$req" "\"locked\":$locked" "\"mechanism\":\"$mech\"" \
        '"trigger":"registry"'
    pe "$log" leave-initrd
    measure "$log" 11 systemd phase "leave-initrd"
    if [[ $late == 1 ]]; then
        # Root after boot: extends PCR 13 with a lock record of its own and appends it.
        pe "$log" lock '"requested":true' '"locked":true' '"mechanism":"syscall"' \
            '"trigger":"registry"'
    fi
}

# reference REF: enrols the current TPM's AK and writes the reference policy.
reference() {
    "$ctl" attest --enroll >"$1" || fail "attest --enroll"
    cat >>"$1" <<EOT

[image]
kernel_release = "6.1.0-test"
key_fingerprints = ["$signer"]

[modules]
signers = ["$signer"]
allowed = ["virtio_blk", "ext4"]

[lock]
required = true
mechanisms = ["syscall"]

[policy]
lock_after_boot = true
autoload_policy = "disabled"
signing_policy = "enforce"

[log]
require_leave_initrd = true
EOT
}

nonce=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
attest() {  # attest LOG [NONCE]: bundle.json and export/
    expect 0 "peinitctl attest" -- "$ctl" attest --nonce "${2:-$nonce}" --log "$1" --out bundle.json \
        --export-dir export
}
verify_expect() {  # verify_expect STATUS [--nonce N]: runs peinit-verify on bundle.json, ref.toml
    local want=$1
    shift
    expect "$want" "peinit-verify" -- "$verify" --bundle bundle.json --reference ref.toml "$@"
    sed 's/^/  | /' out
}
deviation() {  # deviation TEXT: the last verifier output names it
    contains out "$1" "deviation reported: $1"
}

start_swtpm tpm
use_tpm "$port"
log=$work/tpm2-measure.log

case $case_name in
good)
    boot "$log"
    reference ref.toml
    attest "$log"
    verify_expect 0 --nonce "$nonce"
    contains out "posture verified: locked by syscall, 2 modules, signed by ${signer:0:16}" "summary"
    [[ $(grep -c DEVIATION out) == 0 ]] || fail "deviations in a good boot"
    python3 - bundle.json <<'PY' || fail "bundle fields"
import json, sys, base64
d = json.load(open(sys.argv[1]))
assert d["version"] == 1 and d["kind"] == "peinit-attestation" and d["measured"] is True
assert set(d["pcrs"]) == {"13"}, d["pcrs"]  # only the PCR of peinit's records by default
assert d["pcr_bank"] == "sha256" and d["ak"]["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")
assert base64.b64decode(d["log"]) == open("tpm2-measure.log", "rb").read()
PY
    # The PCR value in the bundle is the TPM's own.
    want=$(tpm2_pcrread sha256:13 | sed -n 's/.*13 *: 0x//p' | tr A-F a-f)
    contains bundle.json "\"13\" : \"$want\"" "bundle's PCR 13 is the TPM's"
    # tpm2-tools, an independent verifier, accepts the exported quote; and not with another nonce.
    expect 0 "tpm2_checkquote" -- tpm2_checkquote -u export/ak.pem -m export/quote.msg \
        -s export/quote.sig -f export/quote.pcrs -g sha256 -q "$nonce"
    expect 1 "tpm2_checkquote, other nonce" -- tpm2_checkquote -u export/ak.pem -m export/quote.msg \
        -s export/quote.sig -f export/quote.pcrs -g sha256 -q 00112233
    # The documented template: tpm2-tools makes the same key from it.
    tpm2_createprimary -Q -C e -g sha256 -G ecc256:ecdsa-sha256:null \
        -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda' \
        -c ak.ctx || fail "tpm2_createprimary"
    name=$(tpm2_readpublic -c ak.ctx | sed -n 's/^name: //p')
    contains ref.toml "name = \"$name\"" "AK name equals tpm2_createprimary's from the template"
    tpm2_flushcontext -t
    # Two PCRs on request: systemd's PCR 11 records replay too.
    expect 0 "attest --pcrs 13,11" -- "$ctl" attest --nonce "$nonce" --log "$log" --pcrs 13,11 \
        --out bundle.json --export-dir export2
    verify_expect 0 --nonce "$nonce"
    python3 -c 'import json,sys; d=json.load(open("bundle.json")); assert set(d["pcrs"])=={"11","13"}, d["pcrs"]' ||
        fail "--pcrs 13,11 quotes both"
    expect 0 "tpm2_checkquote, two PCRs" -- tpm2_checkquote -u export2/ak.pem -m export2/quote.msg \
        -s export2/quote.sig -f export2/quote.pcrs -g sha256 -q "$nonce"
    # Without --nonce: verified, with a note that freshness was not checked.
    verify_expect 0
    contains out "note: no --nonce given" "freshness note"
    # The verifier's command line.
    expect 0 "peinit-verify --help" -- "$verify" --help
    contains out "usage: peinit-verify --bundle FILE --reference REF.toml" "usage"
    expect 0 "peinit-verify --version" -- "$verify" --version
    contains out "peinit-verify (peinit) " "version"
    expect 2 "peinit-verify without --bundle" -- "$verify" --reference ref.toml
    contains err "peinit-verify: option --bundle is required" "missing --bundle named"
    expect 2 "peinit-verify unknown option" -- "$verify" --bogus
    contains err 'peinit-verify: unknown option "--bogus"' "unknown option named"
    expect 2 "peinit-verify bad nonce" -- "$verify" --bundle bundle.json --reference ref.toml --nonce zz
    echo '{"kind":"other"}' >other.json
    expect 2 "not a bundle" -- "$verify" --bundle other.json --reference ref.toml
    contains err 'other.json: not an attestation bundle: kind: not "peinit-attestation"' "not a bundle"
    # Unreadable input: exit 2, naming the file.
    expect 2 "bundle missing" -- "$verify" --bundle nothere.json --reference ref.toml
    contains err "nothere.json: cannot read" "missing bundle named"
    printf '[modules]\nsigners = 3\n' >bad.toml
    expect 2 "bad reference" -- "$verify" --bundle bundle.json --reference bad.toml
    contains err "bad.toml:2: modules.signers must be an array of strings, not integer" "reference error with line"
    contains err "bad.toml: missing table [attestation_key]" "reference missing table"
    ;;
edited)
    boot "$log"
    reference ref.toml
    # The content of record 5 (module ext4) now says "evil", digest kept.
    sed -i 's/\\"name\\":\\"ext4\\"/\\"name\\":\\"evil\\"/' "$log"
    grep -q '\\"name\\":\\"evil\\"' "$log" || fail "the log was not edited"
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    deviation "record 5: digest "
    deviation "is not the SHA-256 of its content"
    deviation "record 5: module evil is not allowed by the reference"
    contains out "posture NOT verified" "summary"
    # Second: the digest fixed to match the edited content: the PCR no longer replays.
    python3 - "$log" <<'PY'
import json, sys, hashlib
recs = open(sys.argv[1]).read().split("\x1e")[1:]
out = []
for r in recs:
    d = json.loads(r)
    d["digests"][0]["digest"] = hashlib.sha256(d["content"]["string"].encode()).hexdigest()
    out.append("\x1e" + json.dumps(d, separators=(",", ":")) + "\n")
open(sys.argv[1], "w").write("".join(out))
PY
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    deviation "PCR 13 is "
    deviation "but the log replays to"
    ;;
removed)
    boot "$log"
    reference ref.toml
    # Drop record 4 (module virtio_blk).
    python3 - "$log" <<'PY'
import sys
recs = open(sys.argv[1]).read().split("\x1e")[1:]
del recs[3]
open(sys.argv[1], "w").write("".join("\x1e" + r for r in recs))
PY
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    deviation "but the log replays to"
    deviation "module set counts 2 modules, the log has 1 module records"
    ;;
nonce)
    boot "$log"
    reference ref.toml
    attest "$log" 0badc0de
    verify_expect 1 --nonce "$nonce"
    deviation "the quote's nonce 0badc0de is not the challenge $nonce"
    expect 1 "tpm2_checkquote, the challenge" -- tpm2_checkquote -u export/ak.pem \
        -m export/quote.msg -s export/quote.sig -f export/quote.pcrs -g sha256 -q "$nonce"
    # The bundle's nonce field rewritten to the challenge does not help: the quote is signed.
    sed -i "s/\"nonce\" : \"0badc0de\"/\"nonce\" : \"$nonce\"/" bundle.json
    verify_expect 1 --nonce "$nonce"
    deviation "the quote's nonce 0badc0de is not the challenge $nonce"
    deviation "the bundle's nonce $nonce is not the quote's 0badc0de"
    ;;
module)
    boot "$log" 1 "virtio_blk ext4 evil_mod"
    reference ref.toml
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    deviation "record 6: module evil_mod is not allowed by the reference"
    [[ $(grep -c DEVIATION out) == 1 ]] || fail "one deviation only (the log itself is genuine)"
    ;;
unlocked)
    boot "$log" 0
    reference ref.toml
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    deviation "record 3: policy LockAfterBoot is false, the reference requires true"
    deviation "record 7: the lock was not requested (LockAfterBoot=false)"
    contains out "posture NOT verified: 2 deviations" "summary"
    ;;
late)
    boot "$log" 0 "virtio_blk ext4" 1
    reference ref.toml
    attest "$log"
    verify_expect 1 --nonce "$nonce"
    # The forged record replays (root can extend), but it comes after leave-initrd.
    deviation "record 10: peinit-lock after leave-initrd (record 8): measured after the handover"
    deviation "record 7: the lock was not requested"
    ;;
othertpm)
    boot "$log"
    reference ref.toml
    first_port=$port
    start_swtpm tpm-b
    use_tpm "$port"
    boot "$work/log-b"
    attest "$work/log-b"
    verify_expect 1 --nonce "$nonce"
    deviation "the quote is signed by AK "
    deviation "not the enrolled AK"
    deviation "a quote from a different TPM"
    use_tpm "$first_port"
    ;;
forged)
    boot "$log"
    reference ref.toml
    attest "$log"
    cp bundle.json good.json
    # The quote's last byte (inside the PCR digest) changed: the signature no longer holds.
    python3 - <<'PY'
import json
d = json.load(open("good.json"))
m = d["quote"]["message"]
d["quote"]["message"] = m[:-2] + ("00" if m[-2:] != "00" else "01")
json.dump(d, open("bundle.json", "w"))
PY
    verify_expect 1 --nonce "$nonce"
    deviation "the quote's signature does not verify with the AK"
    deviation "the bundle's PCR values are not the ones quoted"
    # PCR 13 in the bundle replaced (say, by what a shortened log replays to): not what was quoted.
    python3 - <<'PY'
import json
d = json.load(open("good.json"))
d["pcrs"]["13"] = "ab" * 32
json.dump(d, open("bundle.json", "w"))
PY
    verify_expect 1 --nonce "$nonce"
    deviation "the bundle's PCR values are not the ones quoted"
    deviation "PCR 13 is abababab"
    ;;
notpm)
    reference ref.toml
    PEINIT_TPM_TCTI="swtpm:host=127.0.0.1,port=1" expect 3 "attest without a TPM" -- \
        "$ctl" attest --nonce "$nonce" --out bundle.json
    contains err "not measured: no TPM (" "attest says not measured"
    verify_expect 1 --nonce "$nonce"
    deviation "not measured: no TPM ("
    contains out "posture NOT verified: not measured" "summary"
    ;;
*)
    echo "unknown case $case_name"; exit 2 ;;
esac

if ((failures > 0)); then
    echo "$failures failure(s) in case $case_name"
    exit 1
fi
echo "ok: attest case $case_name"
