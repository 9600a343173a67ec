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

name=${0##*/}
fail() {
    printf '%s: %s\n' "$name" "$*" >&2
    exit 1
}

# The keys pass through printf: it must be the shell's builtin, never a
# program whose arguments every local user can read in /proc.
[ "$(command -v printf)" = printf ] || fail "this shell has no builtin printf; run the script with dash or bash"
[ $# -eq 1 ] || { printf 'usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... %s JID\n' "$0" >&2; exit 2; }
jid=$1
[ -n "${XMPP_TOKEN_SECRET:-}" ] || fail "set XMPP_TOKEN_SECRET"
[ -n "${XMPP_OTP_SEED:-}" ] || fail "set XMPP_OTP_SEED"
command -v openssl >/dev/null 2>&1 || fail "openssl not found"

# number VARIABLE VALUE DEFAULT: sets `value` to VALUE, which the variable
# VARIABLE held, as a whole number (DEFAULT if VALUE is empty), without the
# leading zeros that would make the shell read it as octal.
number() {
    value=${2:-$3}
    case $value in
        *[!0123456789]*) fail "$1 must be a whole number, not '$value'" ;;
    esac
    value=${value#"${value%%[!0]*}"}
    [ ${#value} -le 15 ] || fail "$1 is too large: $value"
    value=${value:-0}
}

number XMPP_OTP_DIGITS "${XMPP_OTP_DIGITS:-}" 8
digits=$value
number XMPP_OTP_INTERVAL "${XMPP_OTP_INTERVAL:-}" 30
interval=$value
number XMPP_NONCE_DIGITS "${XMPP_NONCE_DIGITS:-}" 32
nonce_digits=$value
number XMPP_TOKEN_AT "${XMPP_TOKEN_AT:-}" "$(date +%s)"
at=$value
if [ "$nonce_digits" -lt 1 ] || [ "$nonce_digits" -gt 64 ]; then
    fail "nonce_digits must be 1 to 64, not $nonce_digits"
fi
[ "$interval" -ge 1 ] || fail "XMPP_OTP_INTERVAL must be at least 1"

# The nonce: exactly nonce_digits digits, as the helper requires, so that no
# digit can move between the nonce and the user name.
nonce=${XMPP_TOKEN_NONCE:-}
if [ -n "$nonce" ]; then
    case $nonce in
        *[!0123456789]*) fail "nonce must be ASCII digits only" ;;
    esac
    [ ${#nonce} -eq "$nonce_digits" ] ||
        fail "nonce has ${#nonce} digits, but tokens carry exactly $nonce_digits (nonce_digits)"
else
    # Uniformly random digits from the kernel's CSPRNG: bytes of 250 and
    # above are dropped, so that each digit stands for 25 byte values.
    while [ ${#nonce} -lt "$nonce_digits" ]; do
        nonce=$nonce$(od -An -v -N64 -tu1 /dev/urandom | awk -v want=$((nonce_digits - ${#nonce})) '
            { for (i = 1; i <= NF && n < want; i++) if ($i < 250) { printf "%d", $i % 10; n++ } }')
    done
fi

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
seed_key=$(printf '%s\n' "$XMPP_OTP_SEED" | tr 'abcdefghijklmnopqrstuvwxyz' 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' |
    tr -d ' =' | awk '{
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    bits = 0; value = 0
    for (i = 1; i <= length($0); i++) {
        v = index(alphabet, substr($0, i, 1)) - 1
        if (v < 0) exit 1
        value = (value * 32 + v) % 65536; bits += 5
        if (bits >= 8) { bits -= 8; printf "%02x ", int(value / 2 ^ bits) % 256 }
    }
}') || fail "otp_seed is not base32"
[ -n "$seed_key" ] || fail "otp_seed is empty"
# The token key: the bytes of token_secret as written.
secret_key=$(printf '%s' "$XMPP_TOKEN_SECRET" | od -An -v -tx1)

# The TOTP step counter as 8 big-endian bytes.
step=$((at / interval))
counter=
for shift in 56 48 40 32 24 16 8 0; do
    byte=$(((step >> shift) & 255))
    counter="$counter\\$((byte / 64))$((byte / 8 % 8))$((byte % 8))"
done
# shellcheck disable=SC2086 # one argument per byte
mac=$(printf "$counter" | hmac sha1 $seed_key | od -An -v -tx1 | tr -d ' \n')
[ ${#mac} -eq 40 ] || fail "openssl dgst -sha1 failed"

# RFC 4226 dynamic truncation.
offset=$(( 0x$(printf '%s' "$mac" | cut -c40) * 2 ))
word=$(printf '%s' "$mac" | cut -c$((offset + 1))-$((offset + 8)))
modulus=1
i=0
while [ "$i" -lt "$digits" ]; do modulus=$((modulus * 10)); i=$((i + 1)); done
otp=$(printf "%0${digits}d" $(( (0x$word & 0x7fffffff) % modulus )))

# shellcheck disable=SC2086 # one argument per byte
signature=$(printf '%s' "$otp$nonce$jid" | hmac sha256 $secret_key | openssl base64 -A)
[ ${#signature} -eq 44 ] || fail "openssl dgst -sha256 failed"

case $jid in
    *[ABCDEFGHIJKLMNOPQRSTUVWXYZ]*)
        lower=$(printf '%s' "$jid" | tr 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' 'abcdefghijklmnopqrstuvwxyz')
        printf '%s: warning: XMPP servers lower-case the JID before asking the helper; %s\n' "$name" \
            "this token is for $jid exactly and will not log $lower in" >&2
        ;;
esac
printf '%s%s %s\n' "$otp" "$nonce" "$signature"
