#!/usr/bin/env bash
# The line protocol (Prosody's "generic") through the real binary.
. "$(dirname "$0")/lib.sh"

token=$("$bin" generate alice@example.org)

check "a valid token, its replay and an isuser, one line each" \
    "31 0a 30 0a 31 0a" \
    "$(printf 'auth:alice:example.org:%s\nauth:alice:example.org:%s\r\nisuser:a:example.org\n' "$token" "$token" | "$bin" --protocol line | hex)"

check "an over-long line is refused once, and the next line is answered" \
    "30 0a 31 0a" \
    "$({ head -c 70000 /dev/zero | tr '\0' x; printf '\nisuser:a:example.org\n'; } | "$bin" --protocol line | hex)"

check "a password with colons is one request" \
    "30 0a 31 0a" \
    "$(printf 'auth:alice:example.org:a:b:c\nisuser:a:example.org\n' | "$bin" --protocol line | hex)"

finish
