#!/usr/bin/env bash
# Checks the systemd units both packages ship, with systemd's own tools:
#
#  1. `systemd-analyze verify` on xmpp-token-auth.socket and .service, then on
#     the service with each drop-in example applied. verify exits 0 on some
#     problems (an unknown or misspelt key is only a warning), so any word it
#     prints is a failure;
#  2. `systemd-analyze security --offline=yes` on the service as shipped and
#     with each drop-in example: prints what is left exposed and the overall
#     score, and fails above the levels below.
#
# The units are checked where the packages install them, in a scratch root
# (--root) that also holds the host's own units (for sockets.target and the
# like), /bin/kill for ExecReload=, and a stand-in for /usr/bin/xmpp-token-auth
# (verify only checks that ExecStart= names an executable). The man page that
# Documentation= names must exist: target/assets/xmpp-token-auth.1.gz from
# packaging/build.sh, else one generated here.
#
# Needs systemd-analyze 250 or later (apt-get install systemd); no root, no
# running systemd. live-test.sh runs the packages under a real systemd.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Exposure levels (systemd-analyze security's scale, 0-100: 0-9 SAFE, 10-49
# OK, 50-74 MEDIUM): the shipped unit must stay SAFE, the unit with a drop-in
# example, which opens the sandbox on purpose, OK.
SHIPPED_THRESHOLD=9
DROPIN_THRESHOLD=49

units=packaging/systemd
service=xmpp-token-auth.service
socket=xmpp-token-auth.socket
dropins=("$units/redis-network.conf")

command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze is missing: apt-get install systemd" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

root=$scratch/root
unitdir=$root/usr/lib/systemd/system
mkdir -p "$root/usr/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
ln -s usr/bin "$root/bin"
host_units=/usr/lib/systemd/system
[ -e "$host_units/sockets.target" ] || host_units=/lib/systemd/system
cp -a "$host_units" "$root/usr/lib/systemd/"
rm -rf "$unitdir"/xmpp-token-auth.*
cp "$units/$service" "$units/$socket" "$unitdir/"
printf '#!/bin/sh\nexit 0\n' > "$root/usr/bin/xmpp-token-auth"
chmod 755 "$root/usr/bin/xmpp-token-auth"
cp "$(type -P kill)" "$root/usr/bin/kill"

mkdir -p "$scratch/man/man1"
cp docs/xmpp-token-auth.1 "$scratch/man/man1/"
export MANPATH=$scratch/man

failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# verify WHAT: verify both units as they now stand in the scratch root.
verify() {
    if ! systemd-analyze --root="$root" --recursive-errors=no verify \
            "/usr/lib/systemd/system/$socket" "/usr/lib/systemd/system/$service" \
            >"$scratch/verify" 2>&1 || [ -s "$scratch/verify" ]; then
        sed "s|$root||g" "$scratch/verify"
        fail "systemd-analyze verify: $1"
    else
        echo "ok   systemd-analyze verify: $1"
    fi
}

# security WHAT THRESHOLD: the service's exposure, at most THRESHOLD.
security() {
    status=0
    systemd-analyze --root="$root" security --offline=yes --threshold="$2" \
        "/usr/lib/systemd/system/$service" >"$scratch/security" 2>&1 || status=$?
    # What is left exposed, then the score.
    grep -E '^✗|Overall exposure' "$scratch/security" | sed "s|$root||g" || true
    if [ "$status" -ne 0 ] || ! grep -q 'Overall exposure' "$scratch/security"; then
        grep -vE '^[✓✗ ] |NAME +DESCRIPTION|Overall exposure|^$' "$scratch/security" || true
        fail "systemd-analyze security: $1: exposure above $2 (0-100)"
    else
        echo "ok   systemd-analyze security: $1: exposure at most $2 (0-100)"
    fi
}

echo "== units as shipped"
verify "$socket and $service"
security "$service" "$SHIPPED_THRESHOLD"

for dropin in "${dropins[@]}"; do
    name=$(basename "$dropin")
    echo "== $service with the drop-in example $name"
    mkdir -p "$unitdir/$service.d"
    cp "$dropin" "$unitdir/$service.d/$name"
    verify "$service + $name"
    security "$service + $name" "$DROPIN_THRESHOLD"
    rm -rf "$unitdir/$service.d"
done

echo "check.sh: $failures failed"
[ "$failures" -eq 0 ]
