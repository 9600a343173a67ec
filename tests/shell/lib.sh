# Helpers for the shell tests: a private configuration, ejabberd frames made
# with printf, and reply bytes read back with od, as an operator would.
set -eu -o pipefail
export LC_ALL=C

bin=${XMPP_TOKEN_AUTH:-target/debug/xmpp-token-auth}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export XMPP_TOKEN_AUTH_CONFIG="$work/config.toml"
cat > "$XMPP_TOKEN_AUTH_CONFIG" <<'CONFIG'
token_secret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
otp_seed     = "XVGR73KMZH2M4XMY"
log          = "none"
CONFIG
chmod 600 "$XMPP_TOKEN_AUTH_CONFIG"

# frame TEXT: the 2-byte big-endian length, then TEXT.
frame() {
    printf "\\$(printf %03o $((${#1} / 256)))\\$(printf %03o $((${#1} % 256)))%s" "$1"
}

# hex: the bytes on stdin as space-separated hex pairs on one line.
hex() {
    od -An -tx1 -v | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}

. "$(dirname "${BASH_SOURCE[0]}")/../common/check.sh"
