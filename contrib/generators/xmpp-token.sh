#!/bin/sh
# Mint a token for xmpp-token-auth (the mod_auth_token format) with POSIX
# sh, awk, od and openssl. Usage:
#   XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... sh xmpp-token.sh JID
set -eu

[ $# -eq 1 ] || { echo "usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... $0 JID" >&2; exit 2; }
jid=$1
secret=${XMPP_TOKEN_SECRET:?set XMPP_TOKEN_SECRET}
seed=${XMPP_OTP_SEED:?set XMPP_OTP_SEED}
digits=${XMPP_OTP_DIGITS:-8}
interval=${XMPP_OTP_INTERVAL:-30}
at=${XMPP_TOKEN_AT:-$(date +%s)}

# The base32 seed as hex: the TOTP key.
seed_hex=$(printf '%s\n' "$seed" | tr 'a-z' 'A-Z' | tr -d ' =' | awk '{
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    bits = 0; value = 0
    for (i = 1; i <= length($0); i++) {
        v = index(alphabet, substr($0, i, 1)) - 1
        if (v < 0) { print "otp_seed is not base32" > "/dev/stderr"; exit 1 }
        value = (value * 32 + v) % 65536; bits += 5
        if (bits >= 8) { bits -= 8; printf "%02x", int(value / 2 ^ bits) % 256 }
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
mac=$(printf "$counter" | openssl dgst -sha1 -mac HMAC -macopt "hexkey:$seed_hex" | sed 's/.*= //')

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

secret_hex=$(printf '%s' "$secret" | od -An -v -tx1 | tr -d ' \n')
signature=$(printf '%s' "$otp$nonce$jid" \
    | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$secret_hex" -binary | openssl base64 -A)

printf '%s%s %s\n' "$otp" "$nonce" "$signature"
