#!/usr/bin/env bash
# Start-up errors: non-zero exit, nothing on stdout, a message naming what to fix.
. "$(dirname "$0")/lib.sh"

printf 'otp_window = 99\n' >> "$XMPP_TOKEN_AUTH_CONFIG"
status=0
out=$(frame "isuser:a:b" | "$bin" 2>"$work/err") || status=$?
check "a bad value stops the helper with status 2 and no reply" "2|" "$status|$out"
check "the message names file, line and key" \
    "xmpp-token-auth: error: $XMPP_TOKEN_AUTH_CONFIG:4: otp_window = 99 is out of range: allowed 0 to 10 steps" \
    "$(cat "$work/err")"

status=0
"$bin" --config "$work/none.toml" check-config 2>"$work/err" || status=$?
check "a missing file is named" \
    "2|xmpp-token-auth: error: cannot read $work/none.toml: No such file or directory (os error 2)" \
    "$status|$(cat "$work/err")"

finish
