#!/usr/bin/env bash
# `check-config` is what root is told to run, in a state folder that the XMPP
# server's group can write to. A group member who links the replay store (or
# its lock file) to a block device must not get root to write to it: the
# review saw XTAREPL1 written over an XFS superblock. Needs root (losetup).
# Usage: check_config_writes_nothing.sh PATH-TO-BINARY
set -eu -o pipefail
bin=$(realpath "$1")
work=$(mktemp -d)
device=
cleanup() {
    [ -z "$device" ] || losetup -d "$device"
    rm -rf "$work"
}
trap cleanup EXIT

. "$(dirname "$0")/../common/check.sh"

head -c 1048576 /dev/urandom > "$work/disk.img"
device=$(losetup --find --show "$work/disk.img")
before=$(head -c 4096 "$device" | sha256sum)

mkdir "$work/state"
cat > "$work/config.toml" <<CONFIG
token_secret = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
otp_seed     = "XVGR73KMZH2M4XMY"
log          = "none"
replay_store = "$work/state/replay"
CONFIG
chmod 600 "$work/config.toml"

# A store that does not exist yet: nothing is created.
out=$("$bin" --config "$work/config.toml" check-config) || true
check "check-config passes without a store" "yes" "$(grep -q 'made by the first helper' <<<"$out" && echo yes || echo no)"
check "check-config creates no file" "" "$(ls -A "$work/state")"

for planted in replay replay.lock; do
    ln -s "$device" "$work/state/$planted"
    code=0
    err=$("$bin" --config "$work/config.toml" check-config 2>&1 >/dev/null) || code=$?
    check "check-config refuses a $planted linked to a block device" 2 "$code"
    check "the error names the link" yes "$(grep -q "$work/state/$planted is a symbolic link" <<<"$err" && echo yes || echo no)"
    code=0
    "$bin" --config "$work/config.toml" verify alice@example.org \
        "12345678123456781234567812345678123456781234 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" >/dev/null 2>&1 || code=$?
    check "the device is unchanged after check-config and verify" "$before" "$(head -c 4096 "$device" | sha256sum)"
    rm "$work/state/$planted"
done

# Served as root by mistake: the helper refuses the link too.
ln -s "$device" "$work/state/replay"
code=0
printf '\000\012isuser:a:b' | "$bin" --config "$work/config.toml" >/dev/null 2>&1 || code=$?
check "the device is unchanged after a helper start" "$before" "$(head -c 4096 "$device" | sha256sum)"

finish
