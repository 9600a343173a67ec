#!/usr/bin/env bash
# Debian's prosodyctl accepts the contrib/prosody snippet, globally and inside
# a VirtualHost, and the same check refuses a broken copy (so it can fail).
. "$(dirname "$0")/../shell/lib.sh"
snippet="$(dirname "$0")/../../contrib/prosody/prosody.cfg.lua"

# prosodyctl reads the configuration as the prosody user.
chmod 755 "$work"
mkdir -p "$work/certs" "$work/data"
base() {
    cat <<CONFIG
pidfile = "$work/prosody.pid"
data_path = "$work/data"
certificates = "$work/certs"
log = { { levels = { min = "error" }, to = "console" } }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; }
c2s_require_encryption = false
s2s_require_encryption = false
CONFIG
}

prosody_check() {
    prosodyctl --config "$1" check config 2>&1 | grep -v -i -e unbound -e '^\*' -e 'obtained in' -e 'resolver library' -e 'prosody.im/doc/depends' -e '^ *$' || true
}

{ base; cat "$snippet"; echo 'VirtualHost "localhost"'; } > "$work/global.cfg.lua"
{ base; echo 'VirtualHost "localhost"'; cat "$snippet"; } > "$work/vhost.cfg.lua"
{ base; echo 'VirtualHost "localhost"'; sed 's/= "generic"/= "generic/' "$snippet"; } > "$work/broken.cfg.lua"

for where in global vhost; do
    check "prosodyctl check config passes with the snippet ($where)" "yes" \
        "$(prosody_check "$work/$where.cfg.lua" | grep -q 'All checks passed' && echo yes || prosody_check "$work/$where.cfg.lua")"
done
check "prosodyctl check config refuses a broken copy of it" "no" \
    "$(prosody_check "$work/broken.cfg.lua" | grep -q 'All checks passed' && echo yes || echo no)"
check "the snippet names an absolute command without arguments" "/usr/bin/xmpp-token-auth" \
    "$(sed -n 's/^external_auth_command = "\(.*\)"$/\1/p' "$snippet")"

finish
