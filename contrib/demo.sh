#!/usr/bin/env bash
# Builds the helper and shows it at work: a fresh configuration, a token
# minted as the web application would, and the helper answering requests the
# way ejabberd and Prosody send them. Nothing is installed or left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/xmpp-token-auth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export XMPP_TOKEN_AUTH_CONFIG="$work/config.toml"
{
    "$bin" gen-secret
    echo 'log = "stderr"'
} > "$XMPP_TOKEN_AUTH_CONFIG"
chmod 600 "$XMPP_TOKEN_AUTH_CONFIG"
echo "== configuration ($XMPP_TOKEN_AUTH_CONFIG, secrets made by gen-secret)"
"$bin" check-config

token=$("$bin" generate alice@example.org)
echo
echo "== token for alice@example.org, as the application mints it"
echo "$token"
echo
echo "== verify says why"
"$bin" verify alice@example.org "$token" || true
"$bin" verify bob@example.org "$token" || true

frame() {
    printf "\\$(printf %03o $((${#1} / 256)))\\$(printf %03o $((${#1} % 256)))%s" "$1"
}

echo
echo "== ejabberd framing: token, the same token again, isuser (replies in hex; log on stderr)"
{
    frame "auth:alice:example.org:$token"
    frame "auth:alice:example.org:$token"
    frame "isuser:alice:example.org"
} | LC_ALL=C "$bin" | od -An -tx1

echo
echo "== line protocol (Prosody): a fresh token, a wrong password"
token=$("$bin" generate alice@example.org)
printf 'auth:alice:example.org:%s\nauth:alice:example.org:hunter2\n' "$token" | "$bin" --protocol line
