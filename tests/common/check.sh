# check and finish, for every shell test (tests/shell/*.sh through lib.sh,
# and the end-to-end scripts in tests/e2e/): one line per check, then
# "NAME: N passed, M failed" and a status that says whether all passed.
failures=0
passes=0
# check WHAT EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
        passes=$((passes + 1))
    else
        echo "FAIL $1: expected [$2], got [$3]"
        failures=$((failures + 1))
    fi
}

finish() {
    echo "$(basename "$0"): $passes passed, $failures failed"
    [ "$failures" -eq 0 ] || exit 1
}
