#!/usr/bin/env bash
# ejabberd framing through the real binary, with printf and od.
. "$(dirname "$0")/lib.sh"

token=$("$bin" generate alice@example.org)
request="auth:alice:example.org:$token"

check "a fresh token is accepted, then refused as a replay" \
    "00 02 00 01 00 02 00 00" \
    "$({ frame "$request"; frame "$request"; } | "$bin" | hex)"

check "isuser for a served domain is true" \
    "00 02 00 01" "$(frame "isuser:bob:example.org" | "$bin" | hex)"

check "an empty frame and garbage are refused, and the stream stays in sync" \
    "00 02 00 00 00 02 00 00 00 02 00 00 00 02 00 01" \
    "$({ printf '\000\000'; frame "hello"; frame "auth:bob:example.org:a:b:c"; frame "isuser:bob:example.org"; } | "$bin" | hex)"

check "a request cut short by end of input gets no reply and exit 0" \
    "00 02 00 01|0" \
    "$({ frame "isuser:bob:example.org"; printf '\000\100auth:'; } | "$bin" | hex)|$?"

token2=$("$bin" generate alice@example.org)
check "the reply to an expired token is false" \
    "00 02 00 00" \
    "$(frame "auth:alice:example.org:$("$bin" generate alice@example.org --at $(( $(date +%s) - 300 )))" | "$bin" | hex)"
check "a token verifies with the verify command and is not recorded by it" \
    "valid: token for alice@example.org|00 02 00 01" \
    "$("$bin" verify alice@example.org "$token2")|$(frame "auth:alice:example.org:$token2" | "$bin" | hex)"

finish
