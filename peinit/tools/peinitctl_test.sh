#!/usr/bin/env bash
# The command-line contract of peinitctl: --help on every command (exit 0), --version, no command
# as status, usage errors (exit 2), status/modules/blame/timeline against fixture roots (tests/fixtures/peinitctl/), exit codes 0/1/2,
# JSON that python's json module accepts with "version": 1, and an SVG that an XML parser accepts
# with one bar per module. The model itself is tested in tests/unit/status_test.cpp.
# Usage: peinitctl_test.sh PATH/TO/peinitctl FIXTURES_DIR
set -uo pipefail
ctl=$(realpath "${1:?usage: $0 PEINITCTL FIXTURES}")
fixtures=$(realpath "${2:?usage: $0 PEINITCTL FIXTURES}")
source "$(dirname "$(realpath "$0")")/../../tests/cli_lib.sh" peinitctl-test
python_check() {  # python_check FILE DESCRIPTION PYTHON-CODE (the parsed document is `d`)
    if ! python3 - "$1" "$3" <<'PY'
import json, sys, xml.dom.minidom
path, code = sys.argv[1], sys.argv[2]
text = open(path).read()
d = xml.dom.minidom.parseString(text) if text.lstrip().startswith("<") else json.loads(text)
exec(code)
PY
    then
        echo "FAIL: $2"; failures=$((failures + 1))
    fi
}

# Help and usage.
expect 0 "--help" -- "$ctl" --help
contains out "usage: peinitctl" "--help prints the usage"
for c in status lock modules blame timeline attest; do
    expect 0 "$c --help" -- "$ctl" "$c" --help
    contains out "usage: peinitctl $c" "$c --help"
done
expect 0 "--version" -- "$ctl" --version
contains out "peinitctl (peinit) " "--version"
expect 2 "unknown command" -- "$ctl" frobnicate
contains err 'unknown command "frobnicate"' "unknown command named"
expect 2 "unknown option" -- "$ctl" status --bogus
contains err 'peinitctl status: unknown option "--bogus"' "unknown option named"
expect 2 "--root without a value" -- "$ctl" status --root
contains err 'peinitctl status: option --root needs a value' "missing value named"
expect 2 "lock takes no --json" -- "$ctl" lock --json
expect 2 "timeline --svg without a file" -- "$ctl" timeline --svg
expect 2 "attest without --nonce" -- "$ctl" attest
contains err 'peinitctl attest: option --nonce is required' "attest needs a nonce"
expect 2 "attest with a nonce that is not hex" -- "$ctl" attest --nonce xyz
contains err 'peinitctl attest: --nonce: "xyz" is not 1 to 64 bytes in hex' "bad nonce named"
expect 2 "attest with a bad PCR list" -- "$ctl" attest --nonce 00 --pcrs 13,x
contains err 'peinitctl attest: --pcrs: "13,x" is not a list of PCRs 0-23' "bad PCR list named"
expect 2 "an operand" -- "$ctl" modules extra
contains err 'unexpected argument "extra"' "operand named"

# No command is `status` (as systemctl is `list-units`): same output, same exit status.
"$ctl" status >status.out 2>/dev/null; status_rc=$?
expect "$status_rc" "no command runs status" -- "$ctl"
cmp -s out status.out || { echo "FAIL: peinitctl without a command differs from status"; diff status.out out | head; failures=$((failures + 1)); }

# A locked boot with everything as configured.
root=$fixtures/locked
expect 0 "status (locked)" -- "$ctl" status --root "$root"
contains out "locked (module_lockdown syscall)" "status shows the lock"
contains out "trigger registry" "status shows the trigger"
contains out "allow-list (hive)" "status shows AutoLoadPolicy"
contains out "pcspkr (cmdline)" "status shows blacklist sources"
expect 0 "status --json (locked)" -- "$ctl" status --json --root "$root"
python_check out "status JSON fields" '
assert d["version"] == 1 and d["exit_code"] == 0, d
assert d["lock"]["locked"] is True and d["lock"]["trigger"] == "registry"
assert d["lock"]["pid"] == 1 and d["lock"]["boot_offset_ms"] == 2344
assert d["kernel"]["sig_enforce"] == "0" and d["kernel"]["lsm_lockdown"] == "none"
assert len(d["modules"]["list"]) == 5
'
expect 0 "modules" -- "$ctl" modules --root "$root"
contains out "jbd2" "modules table"
expect 0 "modules --failed --json" -- "$ctl" modules --failed --json --root "$root"
python_check out "modules --failed lists only the blacklisted one" '
assert [m["name"] for m in d["modules"]] == ["floppy"], d'
expect 0 "timeline" -- "$ctl" timeline --root "$root"
expect 0 "timeline --svg" -- "$ctl" timeline --svg "$work/t.svg" --root "$root"
python_check "$work/t.svg" "SVG has one bar per module" '
bars = [r for r in d.getElementsByTagName("rect") if r.getAttribute("class") == "bar"]
assert len(bars) == 5, len(bars)
'
expect 1 "timeline --svg into a missing directory" -- "$ctl" timeline --svg /nonexistent/x.svg --root "$root"

# blame: the attempted loads, longest first (systemd-analyze blame); the blacklisted floppy,
# never loaded, is not listed.
expect 0 "blame" -- "$ctl" blame --root "$root"
printf '%s\n' "4.0 ms  ext4" "3.0 ms  jbd2" "2.0 ms  mbcache" "1.5 ms  loop" >blame.want
cmp -s out blame.want || { echo "FAIL: blame order"; diff blame.want out; failures=$((failures + 1)); }
expect 0 "blame --json" -- "$ctl" blame --json "--root=$root"
python_check out "blame JSON is sorted by duration" '
assert d["version"] == 1 and d["present"] is True, d
assert [m["name"] for m in d["modules"]] == ["ext4", "jbd2", "mbcache", "loop"], d
assert [m["duration_us"] for m in d["modules"]] == [4000, 3000, 2000, 1500], d
'
expect 2 "blame without a record" -- "$ctl" blame --root "$fixtures/kernel-only"
contains err "peinitctl blame: no module record" "blame without a record"

# A failed module is a problem: exit 1, listed first.
cp -r "$root" failed
sed -i 's/"start_us": 500, "status": "loaded"/"start_us": 500, "status": "failed"/' failed/run/peinit/modules.json
expect 1 "status with a failed module" -- "$ctl" status --root failed
contains out "Problems:" "problems come first"
expect 1 "modules with a failed module" -- "$ctl" modules --failed --root failed
expect 1 "blame with a failed module" -- "$ctl" blame --root failed
contains out "1.5 ms  loop (failed)" "blame shows the outcome of a load that failed"

# The kernel's facts without a record: still reported, the record is missing, exit 0.
expect 0 "kernel facts only" -- "$ctl" status --root "$fixtures/kernel-only"
contains out "record missing" "says the record is missing"
contains out "unlocked" "reports the kernel's lock state"
expect 2 "modules without a record" -- "$ctl" modules --root "$fixtures/kernel-only"
# Nothing readable at all: exit 2.
expect 2 "nothing readable" -- "$ctl" status --root "$fixtures/empty"
expect 2 "nothing readable (json)" -- "$ctl" status --json --root "$fixtures/empty"
python_check out "JSON says exit 2" 'assert d["exit_code"] == 2'

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "peinitctl CLI: all checks passed"
