#!/usr/bin/env bash
# Start-up errors: a message naming what to fix; the helper under pipes
# stays up refusing (ejabberd would restart one that exits in a loop).
. "$(dirname "$0")/lib.sh"

printf 'otp_window = 99\n' >> "$XMPP_TOKEN_AUTH_CONFIG"
status=0
out=$(frame "isuser:a:b" | "$bin" 2>"$work/err" | hex) || status=$?
check "a bad value: the helper refuses, and exits 0 at end of input" "0|00 02 00 00" "$status|$out"
check "the message names file, line and key" \
    "xmpp-token-auth: error: $XMPP_TOKEN_AUTH_CONFIG:4: otp_window = 99 is out of range: allowed 0 to 10 steps" \
    "$(grep -m1 'out of range' "$work/err")"

status=0
"$bin" --config "$work/none.toml" check-config 2>"$work/err" || status=$?
check "a missing file is named" \
    "2|xmpp-token-auth: error: cannot read $work/none.toml: No such file or directory (os error 2)" \
    "$status|$(cat "$work/err")"

finish
