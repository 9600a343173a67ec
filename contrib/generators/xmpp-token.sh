#!/bin/sh
# Mint a token for xmpp-token-auth (the mod_auth_token format) with POSIX
# sh, openssl, od, awk, tr and cut. Usage:
#   XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... sh xmpp-token.sh JID
#
# No key ever appears on a command line, where every local user can read it
# (/proc/*/cmdline). Both HMACs are computed here from two plain digests,
# H((K ^ opad) || H((K ^ ipad) || message)) (RFC 2104), and the key bytes
# reach `openssl dgst`, `od` and `awk` only on their standard input, written
# by printf, which is built into the shell (not a process of its own). Keep
# it so: never pass key material to an external program's arguments.
#
# shellcheck disable=SC2059 # bytes are written as octal escapes in formats
set -eu

[ $# -eq 1 ] || { echo "usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... $0 JID" >&2; exit 2; }
jid=$1
secret=${XMPP_TOKEN_SECRET:?set XMPP_TOKEN_SECRET}
seed=${XMPP_OTP_SEED:?set XMPP_OTP_SEED}
name=${0##*/}
fail() {
    printf '%s: %s\n' "$name" "$*" >&2
    exit 1
}
digits=${XMPP_OTP_DIGITS:-8}
interval=${XMPP_OTP_INTERVAL:-30}
at=${XMPP_TOKEN_AT:-$(date +%s)}

# escapes HEX...: the bytes HEX... (two hex digits each) as octal escapes for
# printf's format, which every printf understands, NUL bytes included.
escapes() {
    out=
    for byte in "$@"; do
        byte=$((0x$byte))
        out="$out\\$((byte / 64))$((byte / 8 % 8))$((byte % 8))"
    done
    printf '%s' "$out"
}

# hmac HASH HEX...: the HMAC with HASH (sha1 or sha256, both with 64-byte
# blocks) of standard input under the key whose bytes are HEX..., written
# to standard output in binary.
hmac() {
    hash=$1
    shift
    if [ $# -gt 64 ]; then
        # A key longer than a block is hashed first.
        # shellcheck disable=SC2046 # one argument per byte
        set -- $(printf "$(escapes "$@")" | openssl dgst "-$hash" -binary | od -An -v -tx1)
    fi
    ipad=
    opad=
    for byte in "$@"; do
        byte=$((0x$byte))
        i=$((byte ^ 54))
        o=$((byte ^ 92))
        ipad="$ipad\\$((i / 64))$((i / 8 % 8))$((i % 8))"
        opad="$opad\\$((o / 64))$((o / 8 % 8))$((o % 8))"
    done
    # The key is padded with zero bytes to the block: 0 ^ 0x36, 0 ^ 0x5c.
    length=$#
    while [ "$length" -lt 64 ]; do
        ipad="$ipad\\066"
        opad="$opad\\134"
        length=$((length + 1))
    done
    inner=$({ printf "$ipad"; cat; } | openssl dgst "-$hash" -binary | od -An -v -tx1)
    [ -n "$inner" ] || fail "openssl dgst -$hash failed"
    # shellcheck disable=SC2086 # one argument per byte
    { printf "$opad"; printf "$(escapes $inner)"; } | openssl dgst "-$hash" -binary
}

# The TOTP key: the base32 seed decoded, as hex bytes.
seed_hex=$(printf '%s\n' "$seed" | tr 'a-z' 'A-Z' | tr -d ' =' | awk '{
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    bits = 0; value = 0
    for (i = 1; i <= length($0); i++) {
        v = index(alphabet, substr($0, i, 1)) - 1
        if (v < 0) { print "otp_seed is not base32" > "/dev/stderr"; exit 1 }
        value = (value * 32 + v) % 65536; bits += 5
        if (bits >= 8) { bits -= 8; printf "%02x ", int(value / 2 ^ bits) % 256 }
    }
}')

# The step counter as 8 big-endian bytes, written with octal escapes, which
# every printf understands (NUL bytes included).
counter=$(printf '%016x' $((at / interval)) | awk '{
    for (i = 1; i <= 16; i += 2) {
        n = index("0123456789abcdef", substr($0, i, 1)) * 16 + index("0123456789abcdef", substr($0, i + 1, 1)) - 17
        printf "\\%03o", n
    }
}')
# shellcheck disable=SC2086 # one argument per byte
mac=$(printf "$counter" | hmac sha1 $seed_hex | od -An -v -tx1 | tr -d ' \n')
[ ${#mac} -eq 40 ] || fail "openssl dgst -sha1 failed"

# RFC 4226 dynamic truncation.
offset=$(( 0x$(printf '%s' "$mac" | cut -c40) * 2 ))
word=$(printf '%s' "$mac" | cut -c$((offset + 1))-$((offset + 8)))
modulus=1
i=0
while [ "$i" -lt "$digits" ]; do modulus=$((modulus * 10)); i=$((i + 1)); done
otp=$(printf "%0${digits}d" $(( (0x$word & 0x7fffffff) % modulus )))

# 32 uniformly random digits (bytes of 250 and above are dropped).
nonce=${XMPP_TOKEN_NONCE:-$(od -An -v -N128 -tu1 /dev/urandom | tr -s ' ' '\n' | awk '
    $1 != "" && $1 < 250 && n < 32 { printf "%d", $1 % 10; n++ }')}

# The token key: the bytes of token_secret as written.
secret_hex=$(printf '%s' "$secret" | od -An -v -tx1)
# shellcheck disable=SC2086 # one argument per byte
signature=$(printf '%s' "$otp$nonce$jid" | hmac sha256 $secret_hex | openssl base64 -A)
[ ${#signature} -eq 44 ] || fail "openssl dgst -sha256 failed"

printf '%s%s %s\n' "$otp" "$nonce" "$signature"
