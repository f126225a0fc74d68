# Shared by the command-line contract tests (peinit/tools/*_test.sh): a scratch directory to
# work in, and two checks that count failures instead of stopping at the first.
# Sourced with the scratch directory's name prefix as $1; the caller reports $failures at the end.
work=$(mktemp -d "/tmp/${1:?prefix}.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0

# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND and checks its exit status; the output is
# in $work/out and $work/err.
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >out 2>err
    local got=$?
    if [[ $got != "$want" ]]; then
        echo "FAIL: $what: exit $got, wanted $want"; sed 's/^/  stdout: /' out; sed 's/^/  stderr: /' err
        failures=$((failures + 1))
    fi
}

# contains FILE TEXT DESCRIPTION
contains() {
    if ! grep -qF -- "$2" "$1"; then
        echo "FAIL: $3: $1 lacks \"$2\""; sed 's/^/  /' "$1"
        failures=$((failures + 1))
    fi
}
