#!/usr/bin/env bash
# Every peinit tool reads its command line the same way (peinit/core/args.h): the same mistake
# gives the same message form and exit status 2 from each of them, `--opt VALUE` and
# `--opt=VALUE` are one thing, `--` ends the options, and every tool has --help on every command
# and --version.
# Usage: cli_uniform_test.sh PEINIT PEINITCTL PEINIT_PKG PEINIT_IMAGE VERSION FIXTURES_DIR
set -uo pipefail
peinit=$(realpath "${1:?usage: $0 PEINIT PEINITCTL PEINIT_PKG PEINIT_IMAGE VERSION FIXTURES}")
ctl=$(realpath "${2:?}")
pkg=$(realpath "${3:?}")
image=$(realpath "${4:?}")
version=${5:?}
fixtures=$(realpath "${6:?}")
source "$(dirname "$(realpath "$0")")/cli_lib.sh" cli-uniform-test
declare -A bin=([peinit]=$peinit [peinitctl]=$ctl [peinit-pkg]=$pkg [peinit-image]=$image)

# first_line FILE WANT DESCRIPTION: the first line of FILE is exactly WANT.
first_line() {
    local got
    got=$(head -n 1 "$1")
    if [[ $got != "$2" ]]; then
        echo "FAIL: $3: first line of $1 is \"$got\", wanted \"$2\""; failures=$((failures + 1))
    fi
}

# Every command, with one option that takes a value ("-" where the command has none).
commands=(
    "peinit check --root"
    "peinit plan --root"
    "peinitctl status --root"
    "peinitctl lock -"
    "peinitctl modules --root"
    "peinitctl blame --root"
    "peinitctl timeline --svg"
    "peinit-pkg keygen --out-dir"
    "peinit-pkg create --output"
    "peinit-pkg sign --key"
    "peinit-pkg verify --trust"
    "peinit-pkg list -"
    "peinit-image build --output"
    "peinit-image boot --timeout"
    "peinit-image list -"
)
for spec in "${commands[@]}"; do
    read -r tool command option <<<"$spec"
    exe=${bin[$tool]}
    prog="$tool $command"
    expect 0 "$prog --help" -- "$exe" "$command" --help
    contains out "usage: $prog" "$prog --help"
    expect 0 "$prog -h" -- "$exe" "$command" -h
    contains out "usage: $prog" "$prog -h"
    expect 2 "$prog --bogus" -- "$exe" "$command" --bogus
    first_line err "$prog: unknown option \"--bogus\"" "$prog --bogus"
    contains err "usage: $prog" "$prog --bogus shows the usage"
    expect 2 "$prog --bogus=1" -- "$exe" "$command" --bogus=1
    first_line err "$prog: unknown option \"--bogus\"" "$prog --bogus=1"
    expect 2 "$prog --help=1" -- "$exe" "$command" --help=1
    first_line err "$prog: option --help takes no value" "$prog --help=1"
    if [[ $option != - ]]; then
        expect 2 "$prog $option (no value)" -- "$exe" "$command" "$option"
        first_line err "$prog: option $option needs a value" "$prog $option"
        expect 2 "$prog $option= (empty value)" -- "$exe" "$command" "$option="
        first_line err "$prog: option $option needs a value" "$prog $option="
    fi
done

for tool in peinit peinitctl peinit-pkg peinit-image; do
    exe=${bin[$tool]}
    expect 0 "$tool --version" -- "$exe" --version
    first_line out "$tool (peinit) $version" "$tool --version"
    expect 0 "$tool --help" -- "$exe" --help
    contains out "usage: $tool" "$tool --help"
    expect 2 "$tool --bogus" -- "$exe" --bogus
    first_line err "$tool: unknown option \"--bogus\"" "$tool --bogus"
    expect 2 "$tool frobnicate" -- "$exe" frobnicate
    first_line err "$tool: unknown command \"frobnicate\"" "$tool frobnicate"
done

# --opt=VALUE is --opt VALUE.
same() {  # same DESCRIPTION -- COMMAND... : runs COMMAND and compares with the previous run
    local what=$1
    shift 2
    cp out prev.out; cp err prev.err; local prev_rc=$rc
    "$@" >out 2>err; rc=$?
    if [[ $rc != "$prev_rc" ]] || ! cmp -s out prev.out || ! cmp -s err prev.err; then
        echo "FAIL: $what: differs from the spaced form"; diff prev.out out; diff prev.err err
        failures=$((failures + 1))
    fi
}
locked=$fixtures/peinitctl/locked
"$ctl" modules --root "$locked" >out 2>err; rc=$?
same "peinitctl modules --root=DIR" -- "$ctl" modules "--root=$locked"
[[ $rc == 0 ]] || { echo "FAIL: peinitctl modules on the fixture: exit $rc"; failures=$((failures + 1)); }
"$peinit" check --root "$fixtures/units" --no-trust-check >out 2>err; rc=$?
same "peinit check --root=DIR" -- "$peinit" check "--root=$fixtures/units" --no-trust-check
"$pkg" verify --trust "$work" nothing.pkg >out 2>err; rc=$?
same "peinit-pkg verify --trust=DIR" -- "$pkg" verify "--trust=$work" nothing.pkg
"$image" build "$work/no-image" --output "$work/x.cpio" >out 2>err; rc=$?
same "peinit-image build --output=OUT" -- "$image" build "$work/no-image" "--output=$work/x.cpio"
same "peinit-image build -o OUT" -- "$image" build "$work/no-image" -o "$work/x.cpio"
[[ $rc == 1 ]] || { echo "FAIL: peinit-image build of a missing image: exit $rc"; failures=$((failures + 1)); }

# -- ends the options: what follows is an operand even when it looks like an option.
expect 1 "peinit check -- --dir" -- "$peinit" check --no-trust-check -- --no-such-dir
contains out "--no-such-dir" "peinit check names the operand after --"
expect 1 "peinit-pkg list -- --file" -- "$pkg" list -- --no-such.pkg
contains err "--no-such.pkg" "peinit-pkg list names the operand after --"
expect 1 "peinit-image list -- --file" -- "$image" list -- --no-such.img
contains err "--no-such.img" "peinit-image list names the operand after --"
expect 2 "peinitctl status -- --json" -- "$ctl" status -- --json
first_line err 'peinitctl status: unexpected argument "--json"' "peinitctl takes no operand"

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "uniform CLI: all checks passed"
