#!/usr/bin/env bash
# Package tests, run as root by .ci/run after packaging/build.sh: lint both
# packages, then install, upgrade, remove and purge the .deb on this machine,
# checking what an operator would check at each step, and install the .rpm
# with rpm itself; both must refuse an unsafe existing group and never write
# a secret they could not generate. The systemd units are checked where the
# packages put them and in the enablement links their scripts make (no
# systemd runs here: the daemon is started as the unit would start it, with
# systemd-socket-activate). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/shell/lib.sh
unset XMPP_TOKEN_AUTH_CONFIG   # the installed default path is under test

[ "$(id -u)" -eq 0 ] || { echo "packaging/test.sh installs packages: run it as root"; exit 1; }
deb=$(ls target/xmpp-token-auth_*.deb)
rpm=$(ls target/xmpp-token-auth-*.rpm)
conf=/etc/xmpp-token-auth
bin=/usr/bin/xmpp-token-auth
reader=xta-pkg-test    # a stand-in for the XMPP server's user
outsider=xta-pkg-other
login=xta-pkg-login    # a login user whose primary group is xmpp-token-auth
state=/var/lib/xmpp-token-auth
service_user=xmpp-token-auth   # the socket daemon's user, made by the packages
units=/usr/lib/systemd/system
wants=/etc/systemd/system/sockets.target.wants/xmpp-token-auth.socket
daemon=                        # the pid of a daemon started here, while it runs

# systemd's state about the units outside the packages' files: enablement
# links and masks in /etc/systemd/system, deb-systemd-helper's records.
systemd_leftovers() {
    { find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
        /var/lib/systemd/deb-systemd-helper-masked -name '*xmpp-token-auth*' 2>/dev/null || true; } | sort
}

uninstall() {
    [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
    daemon=
    dpkg --purge xmpp-token-auth >/dev/null 2>&1 || true
    rpm -e xmpp-token-auth >/dev/null 2>&1 || true
    rm -rf /etc/xmpp-token-auth $state
    dpkg-statoverride --remove $state >/dev/null 2>&1 || true
    systemd_leftovers | xargs -r rm -rf
    for user in "$reader" "$outsider" "$login" "$service_user"; do
        userdel "$user" 2>/dev/null || true
    done
    # The packages keep the group and the user on purpose; the tests make
    # them afresh.
    groupdel xmpp-token-auth 2>/dev/null || true
}
trap 'uninstall; rm -rf "$work"' EXIT
uninstall

owner() { stat -c '%U:%G %a' "$1"; }
present() { [ -e "$1" ] && echo present || echo absent; }
# says FILE PATTERN: "yes" if the text of FILE matches, its lines joined
# with one space, comment signs dropped, upper and lower case alike.
says() { tr '\n#' '  ' < "$1" | tr -s ' ' | grep -qiE "$2" && echo yes || true; }

# secrets_unmade SCRIPT ARGS...: runs a maintainer script that makes the
# secrets with /usr/bin/xmpp-token-auth swapped for one that prints nothing
# and an empty /etc/xmpp-token-auth, in a private mount namespace. Prints
# "STATUS|whether it said so|token_secret present or absent".
secrets_unmade() {
    rm -rf "$work/etc" && mkdir "$work/etc"
    printf '#!/bin/sh\nexit 1\n' > "$work/silent" && chmod 755 "$work/silent"
    status=$(unshare --mount --propagation private sh -c '
        mount --bind "$1" /usr/bin/xmpp-token-auth && mount --bind "$2" /etc/xmpp-token-auth || exit 99
        shift 2
        exec sh "$@"' sh "$work/silent" "$work/etc" "$@" >"$work/unmade" 2>&1; echo $?)
    echo "$status|$(grep -q 'could not generate token_secret' "$work/unmade" && echo said)|$(present "$work/etc/token_secret")"
}

# A group xmpp-token-auth that exists before installation: a user group
# (gid from GID_MIN), or a system group that is a login user's primary group.
make_user_group() { groupadd xmpp-token-auth; }
make_login_group() {
    groupadd -r xmpp-token-auth
    useradd -M -N -g xmpp-token-auth -s /bin/bash "$login"
}
# A user xmpp-token-auth that exists before installation, in the system group
# xmpp-token-auth: a user that is not a system user (uid from UID_MIN), or a
# system user whose primary group is another one.
make_user_user() {
    groupadd -r xmpp-token-auth
    useradd -M -N -g xmpp-token-auth -s /usr/sbin/nologin "$service_user"
}
make_foreign_user() {
    groupadd -r xmpp-token-auth
    useradd -r -M -N -g nogroup -s /usr/sbin/nologin "$service_user"
}

# passwd_of USER: "system|primary group|home|shell", system being "system" when
# the uid is within FIRST_SYSTEM_UID-LAST_SYSTEM_UID (adduser's defaults here).
passwd_of() {
    getent passwd "$1" | awk -F: '{ printf "%s|%s|%s|%s", ($3 >= 100 && $3 <= 999 ? "system" : "uid " $3), $4, $6, $7 }' |
        sed "s/|$(getent group xmpp-token-auth | cut -d: -f3)|/|xmpp-token-auth|/"
}

# ask LINE...: the replies of the daemon on the socket $work/auth.sock to
# the lines given, sent together on one connection, joined with spaces.
ask() {
    python3 - "$work/auth.sock" "$@" <<'PYTHON'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall("".join(line + "\n" for line in sys.argv[2:]).encode())
replies = b""
while replies.count(b"\n") < len(sys.argv) - 2:
    chunk = s.recv(4096)
    if not chunk:
        break
    replies += chunk
print(" ".join(replies.decode().split()))
PYTHON
}

# unit_value KEY: the value of KEY= in the installed service unit.
unit_value() { sed -n "s/^$1=//p" $units/xmpp-token-auth.service; }

echo "== lint"
check "lintian finds no error and no unexplained warning" "0" \
    "$(lintian --fail-on error,warning "$deb" >"$work/lintian" 2>&1; echo $?)"
cat "$work/lintian"
rpmlint -r packaging/rpm/rpmlintrc "$rpm" >"$work/rpmlint" 2>&1 || true
cat "$work/rpmlint"
check "rpmlint finds no error" "0" "$(grep -c ' E: ' "$work/rpmlint" || true)"

echo "== an existing group xmpp-token-auth whose members are not only servers is refused"
make_user_group
status=$(dpkg -i "$deb" >"$work/refused" 2>&1; echo $?)
cat "$work/refused"
check "a user group (gid $(getent group xmpp-token-auth | cut -d: -f3)): configure fails, says why and what to do, writes no secret" \
    "1|yes|yes|absent" \
    "$status|$(says "$work/refused" 'is not a system group: its gid is outside [0-9]+-[0-9]+')|$(says "$work/refused" 'then run: dpkg --configure xmpp-token-auth')|$(present $conf/token_secret)"
uninstall
make_login_group
status=$(dpkg -i "$deb" >"$work/refused" 2>&1; echo $?)
cat "$work/refused"
check "a system group that is a login user's primary group: configure fails, names the user, writes no secret" \
    "1|yes|absent" \
    "$status|$(says "$work/refused" "primary group of the login user\\(s\\) $login \\(shell /bin/bash\\)")|$(present $conf/token_secret)"
usermod -s /usr/sbin/nologin "$login"
check "once the user cannot log in (as the message suggests), configure succeeds" "0|present" \
    "$(dpkg --configure xmpp-token-auth >/dev/null 2>&1; echo $?)|$(present $conf/token_secret)"
uninstall

echo "== an existing user xmpp-token-auth that is not the daemon's is refused"
make_user_user
status=$(dpkg -i "$deb" >"$work/refused" 2>&1; echo $?)
cat "$work/refused"
check "a user that is not a system user (uid $(id -u "$service_user")): configure fails, says why and what to do, writes no secret, enables nothing" \
    "1|yes|yes|absent|" \
    "$status|$(says "$work/refused" "existing user $service_user \\(uid [0-9]+\\) is not a system user: its uid is outside [0-9]+-[0-9]+")|$(says "$work/refused" 'then run: dpkg --configure xmpp-token-auth')|$(present $conf/token_secret)|$(systemd_leftovers)"
uninstall
make_foreign_user
status=$(dpkg -i "$deb" >"$work/refused" 2>&1; echo $?)
cat "$work/refused"
check "a system user whose primary group is another: configure fails, names the groups, writes no secret" \
    "1|yes|absent" \
    "$status|$(says "$work/refused" "has the primary group nogroup \\(gid [0-9]+\\), not xmpp-token-auth")|$(present $conf/token_secret)"
usermod -g xmpp-token-auth "$service_user"
check "once its primary group is xmpp-token-auth (as the message suggests), configure succeeds and enables the socket" \
    "0|present|$units/xmpp-token-auth.socket" \
    "$(dpkg --configure xmpp-token-auth >/dev/null 2>&1; echo $?)|$(present $conf/token_secret)|$(readlink -f $wants)"
uninstall

echo "== install"
dpkg -i "$deb" >"$work/install" 2>&1 || { cat "$work/install"; exit 1; }
check "install tells the operator to add the server's user to the group" "yes" \
    "$(grep -q 'adduser ejabberd xmpp-token-auth' "$work/install" && echo yes)"
check "the group exists" "yes" "$(getent group xmpp-token-auth >/dev/null && echo yes)"
check "binary" "root:root 755" "$(owner $bin)"
check "configuration: a conffile, root:xmpp-token-auth 0640" "root:xmpp-token-auth 640|yes" \
    "$(owner $conf/config.toml)|$(dpkg-query -W -f='${Conffiles}' xmpp-token-auth | grep -q "$conf/config.toml" && echo yes)"
for key in token_secret otp_seed; do
    check "$key generated for this machine" "root:xmpp-token-auth 640|32" \
        "$(owner $conf/$key)|$(tr -d '\n' < $conf/$key | grep -cE '^[A-Z2-7]{32}$' | sed 's/^1$/32/')"
done
check "state folder" "root:xmpp-token-auth 2770" "$(owner /var/lib/xmpp-token-auth)"
check "the daemon's user: a system user in the group, no home, no login, no password, no other group" \
    "system|xmpp-token-auth|/nonexistent|/usr/sbin/nologin|absent|L|xmpp-token-auth" \
    "$(passwd_of "$service_user")|$(present /nonexistent)|$(passwd -S "$service_user" | cut -d' ' -f2)|$(id -nG "$service_user")"

echo "== systemd units"
for unit in xmpp-token-auth.socket xmpp-token-auth.service; do
    check "$units/$unit: root:root 0644, as in packaging/systemd/" "root:root 644|same" \
        "$(owner $units/$unit)|$(cmp -s $units/$unit packaging/systemd/$unit && echo same)"
done
check "the socket is enabled (sockets.target wants it), the service is not (the socket starts it)" \
    "$units/xmpp-token-auth.socket|$wants" \
    "$(readlink -f $wants)|$(find /etc/systemd/system -name 'xmpp-token-auth.*' | tr '\n' ' ' | sed 's/ $//')"
check "deb-systemd-helper recorded the link, to remove it on purge" "$wants" \
    "$(cat /var/lib/systemd/deb-systemd-helper-enabled/xmpp-token-auth.socket.dsh-also)"
check "the maintainer scripts carry those snippets: enable, start/restart, stop on removal, mask and purge" \
    "yes|yes|yes|yes|" \
    "$(grep -q 'deb-systemd-helper enable xmpp-token-auth.socket' /var/lib/dpkg/info/xmpp-token-auth.postinst && echo yes)|$(grep -q 'deb-systemd-invoke $_dh_action xmpp-token-auth.service xmpp-token-auth.socket' /var/lib/dpkg/info/xmpp-token-auth.postinst && echo yes)|$(grep -q 'deb-systemd-invoke stop xmpp-token-auth.service xmpp-token-auth.socket' /var/lib/dpkg/info/xmpp-token-auth.prerm && echo yes)|$(grep -q 'deb-systemd-helper purge xmpp-token-auth.service xmpp-token-auth.socket' /var/lib/dpkg/info/xmpp-token-auth.postrm && echo yes)|$(grep -l 'DEBHELPER' /var/lib/dpkg/info/xmpp-token-auth.*inst /var/lib/dpkg/info/xmpp-token-auth.*rm || true)"
# The installed units with the installed helper and man page. verify exits 0
# on some problems (an unknown key is a warning): anything it says fails.
check "systemd-analyze verify accepts the installed units" "0|" \
    "$(systemd-analyze verify $units/xmpp-token-auth.socket $units/xmpp-token-auth.service >"$work/verify" 2>&1; echo $?)|$(cat "$work/verify")"
check "the socket: $(sed -n 's/^ListenStream=//p' $units/xmpp-token-auth.socket), root:xmpp-token-auth 0660" \
    "/run/xmpp-token-auth/auth.sock|xmpp-token-auth|0660" \
    "$(sed -n 's/^ListenStream=//p' $units/xmpp-token-auth.socket)|$(sed -n 's/^SocketGroup=//p' $units/xmpp-token-auth.socket)|$(sed -n 's/^SocketMode=//p' $units/xmpp-token-auth.socket)"
check "the service: runs as the package's user and group, writes only the state folder, reloads with SIGHUP" \
    "$service_user|xmpp-token-auth|$state|/bin/kill -HUP \$MAINPID" \
    "$(unit_value User)|$(unit_value Group)|$(unit_value ReadWritePaths)|$(unit_value ExecReload)"
for file in /usr/share/doc/xmpp-token-auth/examples/redis-network.conf \
            /usr/share/xmpp-token-auth/prosody/mod_auth_xmpp_token.lua; do
    [ -e "$file" ] || check "$file installed" "present" "missing"
done
check "man page" "yes" "$(zcat /usr/share/man/man1/xmpp-token-auth.1.gz | grep -q '^.SH COMMANDS' && echo yes)"
for file in /usr/share/bash-completion/completions/xmpp-token-auth \
            /usr/share/zsh/vendor-completions/_xmpp-token-auth \
            /usr/share/fish/vendor_completions.d/xmpp-token-auth.fish \
            /usr/share/doc/xmpp-token-auth/README.md.gz \
            /usr/share/doc/xmpp-token-auth/README.Debian \
            /usr/share/doc/xmpp-token-auth/NEWS.Debian.gz \
            /usr/share/doc/xmpp-token-auth/copyright \
            /usr/share/doc/xmpp-token-auth/examples/ejabberd.yml \
            /usr/share/doc/xmpp-token-auth/examples/generators/xmpp_token.py; do
    [ -e "$file" ] || [ -e "${file%.gz}" ] || check "$file installed" "present" "missing"
done
check "check-config accepts the installed configuration" "0" "$($bin check-config >/dev/null 2>&1; echo $?)"
check "the package's version is the changelog's latest" \
    "$(sed -n '1s/^xmpp-token-auth (\(.*\)) .*/\1/p' packaging/deb/changelog)" "$(dpkg-query -W -f='${Version}' xmpp-token-auth)"
check "NEWS.Debian tells the upgrading operator about nonce_digits" "yes" \
    "$(zgrep -q 'nonce_digits' /usr/share/doc/xmpp-token-auth/NEWS.Debian.gz 2>/dev/null && echo yes)"
# The header says every key appears in the file: the helper's own list of
# keys (from its error for an unknown one) against the file.
printf 'token_secret = "x"\nno_such_key = 1\n' > "$work/keys.toml"
known=$({ $bin -c "$work/keys.toml" check-config 2>&1 || true; } | sed -n 's/.*expected one of //p' | tr -d '`,')
missing=$(for key in $known; do grep -qE "^#?[[:space:]]*\[?$key[[:space:]=.]" $conf/config.toml || echo "$key"; done)
check "every key the helper knows appears in the packaged configuration" "listed|" \
    "$([ "$(echo $known | wc -w)" -ge 10 ] && echo listed)|$(echo $missing)"
check "the packaged configuration explains nonce_digits and its default" "yes" \
    "$(grep -q '^#nonce_digits = 32 ' $conf/config.toml && grep -q '^# .*nonce.*exactly' $conf/config.toml && echo yes)"
# Uncommenting every default shown must give a valid configuration that
# behaves like the file as shipped.
# Owned and readable as the configuration is, or check-config says otherwise.
(umask 027; sed 's/^#\([a-z_]* *= \)/\1/; /^#\[domains/,$d' $conf/config.toml > $conf/defaults.toml)
chgrp xmpp-token-auth $conf/defaults.toml
check "the commented defaults are valid and are the defaults" "$($bin check-config 2>&1 | tail -n +2)" \
    "$($bin -c $conf/defaults.toml check-config 2>&1 | tail -n +2)"
rm -f $conf/defaults.toml
# Every ejabberd set-up the package documents must say that the pool of
# helpers needs the shared replay store, or a pool of one.
for doc in /usr/share/doc/xmpp-token-auth/examples/ejabberd.yml /usr/share/doc/xmpp-token-auth/README.Debian; do
    check "$doc: an ejabberd set-up that says: replay_store or extauth_pool_size: 1, else once per helper" "yes|yes|yes|yes" \
        "$(grep -q 'extauth_program' $doc && echo yes)|$(grep -q 'replay_store = "/var/lib/xmpp-token-auth/replay"' $doc && echo yes)|$(grep -q 'extauth_pool_size: 1' $doc && echo yes)|$(says $doc 'logs in once per helper')"
done
check "the packaged configuration sets the shared replay store those set-ups rely on" \
    'replay_store = "/var/lib/xmpp-token-auth/replay"' "$(grep '^replay_store' $conf/config.toml)"
check "and no documented ejabberd set-up sets a pool above 1" "" \
    "$(grep -h '^[[:space:]]*extauth_pool_size' /usr/share/doc/xmpp-token-auth/examples/ejabberd.yml | grep -v ': 1$' || true)"

token=$($bin generate alice@example.org)
check "a framed auth request against the installed configuration" "00 02 00 01 00 02 00 00" \
    "$({ frame "auth:alice:example.org:$token"; frame "auth:alice:example.org:$token"; } | $bin | hex)"
# Made by check-config or by the first helper that serves, whichever runs first.
check "the shared replay store is made for the whole group" "root:xmpp-token-auth 660" \
    "$(owner /var/lib/xmpp-token-auth/replay)"

useradd --system --no-create-home --groups xmpp-token-auth "$reader"
useradd --system --no-create-home "$outsider"
check "a member of the group (the XMPP server's user) can use it" "0" \
    "$(runuser -u "$reader" -- $bin check-config >/dev/null 2>&1; echo $?)"
token=$($bin generate alice@example.org)
check "helpers run as root and as a group member share the replay store" "00 02 00 01|00 02 00 00" \
    "$(frame "auth:alice:example.org:$token" | $bin | hex)|$(frame "auth:alice:example.org:$token" | runuser -u "$reader" -- $bin | hex)"
check "another user cannot read the secrets" "2" \
    "$(runuser -u "$outsider" -- $bin check-config >/dev/null 2>&1; echo $?)"

echo "== the daemon as the service unit starts it"
# The unit's ExecStart, as its User and Group with its UMask, on a socket
# passed as systemd passes it (LISTEN_PID, LISTEN_FDS, descriptor 3):
# systemd-socket-activate and setpriv both exec, so the daemon keeps the pid.
# What the sandbox forbids can only be seen under systemd itself.
# The store is made afresh by the daemon, under that UMask.
rm -f $state/replay $state/replay.lock
(umask "$(unit_value UMask)"
 exec systemd-socket-activate --listen="$work/auth.sock" \
     setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups -- \
     $(unit_value ExecStart)) >"$work/daemon.log" 2>&1 &
daemon=$!
token=$($bin generate alice@example.org)
check "it answers on the passed socket: a token, then the same token again" "1 0" \
    "$(ask "auth:alice:example.org:$token" "auth:alice:example.org:$token")"
check "it runs as the unit's user and group, no other group" "$service_user|xmpp-token-auth|xmpp-token-auth" \
    "$(ps -o user:40=,group:40= -p "$daemon" | awk '{ print $1 "|" $2 }')|$(id -nG "$service_user")"
check "the replay store and its lock it made are the group's, despite UMask=$(unit_value UMask)" \
    "$service_user:xmpp-token-auth 660|$service_user:xmpp-token-auth 660" \
    "$(owner $state/replay)|$(owner $state/replay.lock)"
check "it shares the replay store with the helpers: the token is refused by a stdio helper of the XMPP server's user" \
    "00 02 00 00" "$(frame "auth:alice:example.org:$token" | runuser -u "$reader" -- $bin | hex)"
MAINPID=$daemon
eval "$(unit_value ExecReload)"
sleep 0.5
token=$($bin generate alice@example.org)
check "after the unit's ExecReload (SIGHUP) it still runs and answers" "running|1" \
    "$(kill -0 "$daemon" 2>/dev/null && echo running)|$(ask "auth:alice:example.org:$token")"
kill -TERM "$daemon"
for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
status=0
kill -0 "$daemon" 2>/dev/null && status=running || wait "$daemon" || status=$?
check "SIGTERM (systemctl stop) ends it within 5 s with status 0" "0" "$status"
daemon=
grep -q . "$work/daemon.log" && { echo "-- what the daemon logged:"; cat "$work/daemon.log"; }

echo "== upgrade over an edited configuration"
secret_before=$(cat $conf/token_secret)
printf '\n# edited by the operator\notp_window = 2\n' >> $conf/config.toml
dpkg -i "$deb" >"$work/upgrade" 2>&1 || { cat "$work/upgrade"; exit 1; }
check "the edit survived" "otp_window = 2" "$(grep '^otp_window' $conf/config.toml)"
check "the secret survived" "$secret_before" "$(cat $conf/token_secret)"
check "ownership survived" "root:xmpp-token-auth 640" "$(owner $conf/config.toml)"
check "the upgrade printed no first-install notice" "no" \
    "$(grep -q 'adduser ejabberd' "$work/upgrade" && echo yes || echo no)"
check "the upgrade keeps the daemon's user and the socket enabled" "$(getent passwd "$service_user")|$units/xmpp-token-auth.socket" \
    "$(getent passwd "$service_user")|$(readlink -f $wants)"
systemctl disable xmpp-token-auth.socket >/dev/null 2>&1
dpkg -i "$deb" >/dev/null 2>&1 || { echo "reinstall failed"; exit 1; }
check "a socket the administrator disabled (systemctl disable) stays disabled after an upgrade" "absent" "$(present $wants)"
systemctl enable xmpp-token-auth.socket >/dev/null 2>&1
check "and systemctl enables it again" "$units/xmpp-token-auth.socket" "$(readlink -f $wants)"
check "the edited configuration is in force" "  tokens:   8 OTP digits, 30 s steps, ±2 steps, nonces of 32 digits" \
    "$($bin check-config | grep '^  tokens:')"
check "postinst refuses to write a secret it could not generate" "1|said|absent" \
    "$(secrets_unmade /var/lib/dpkg/info/xmpp-token-auth.postinst configure "$(dpkg-query -W -f='${Version}' xmpp-token-auth)")"

echo "== an administrator's dpkg-statoverride on the state folder"
dpkg-statoverride --update --add root root 0750 $state
dpkg -i "$deb" >/dev/null 2>&1 || { echo "reinstall failed"; exit 1; }
check "an upgrade leaves the folder as the override says" "root:root 750" "$(owner $state)"
rm -rf $state
dpkg -i "$deb" >/dev/null 2>&1 || { echo "reinstall failed"; exit 1; }
check "an upgrade makes a missing folder as the override says" "root:root 750" "$(owner $state)"
dpkg-statoverride --remove $state
dpkg -i "$deb" >/dev/null 2>&1 || { echo "reinstall failed"; exit 1; }
check "without the override, the folder is the package's again" "root:xmpp-token-auth 2770" "$(owner $state)"

echo "== remove keeps configuration and secrets, purge removes them"
dpkg -r xmpp-token-auth >/dev/null
check "after remove" "gone|kept|kept|gone|gone" \
    "$([ -e $bin ] && echo present || echo gone)|$([ -e $conf/config.toml ] && echo kept)|$([ -e $conf/token_secret ] && echo kept)|$([ -e $units/xmpp-token-auth.socket ] && echo present || echo gone)|$([ -e $units/xmpp-token-auth.service ] && echo present || echo gone)"
dpkg --purge xmpp-token-auth >/dev/null
check "after purge" "gone|gone" \
    "$([ -e $conf ] && echo present || echo gone)|$([ -e /var/lib/xmpp-token-auth ] && echo present || echo gone)"
check "purge leaves no enablement link, mask or deb-systemd-helper record" "" "$(systemd_leftovers)"
check "the daemon's user and the group stay, as Debian keeps system users" "present|present" \
    "$(getent passwd "$service_user" >/dev/null && echo present)|$(getent group xmpp-token-auth >/dev/null && echo present)"

echo "== rpm"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" > "$work/rpmfiles"
cat "$work/rpmfiles"
check "rpm: configuration is %config(noreplace), root:xmpp-token-auth 0640" "-rw-r----- root:xmpp-token-auth cn /etc/xmpp-token-auth/config.toml" \
    "$(grep ' /etc/xmpp-token-auth/config.toml$' "$work/rpmfiles")"
check "rpm: binary" "-rwxr-xr-x root:root  /usr/bin/xmpp-token-auth" "$(grep ' /usr/bin/xmpp-token-auth$' "$work/rpmfiles")"
check "rpm: man page is documentation" "-rw-r--r-- root:root d /usr/share/man/man1/xmpp-token-auth.1.gz" \
    "$(grep 'man1' "$work/rpmfiles")"
check "rpm: every file listed in --dump too" "$(wc -l < "$work/rpmfiles")" "$(rpm -qp --dump "$rpm" | wc -l)"
check "rpm: the units, root:root 0644" \
    "-rw-r--r-- root:root  $units/xmpp-token-auth.service|-rw-r--r-- root:root  $units/xmpp-token-auth.socket" \
    "$(grep " $units/" "$work/rpmfiles" | tr '\n' '|' | sed 's/|$//')"
check "rpm: the Prosody module and the drop-in example" \
    "-rw-r--r-- root:root  /usr/share/xmpp-token-auth/prosody/mod_auth_xmpp_token.lua|-rw-r--r-- root:root d /usr/share/doc/xmpp-token-auth/examples/redis-network.conf" \
    "$(grep ' /usr/share/xmpp-token-auth/prosody/' "$work/rpmfiles")|$(grep 'redis-network.conf$' "$work/rpmfiles")"
rpm -qp --scripts "$rpm" > "$work/scripts"
check "rpm: %pre creates the group and the user, %post generates secrets" "yes|yes|yes" \
    "$(grep -q 'groupadd -r xmpp-token-auth' "$work/scripts" && echo yes)|$(grep -q 'useradd -r -M -g "$group"' "$work/scripts" && echo yes)|$(grep -q 'xmpp-token-auth gen-secret' "$work/scripts" && echo yes)"
# As %systemd_post, %systemd_preun and %systemd_postun_with_restart expand.
check "rpm: %post presets the units on first installation, %preun disables and stops them on erase, %postun restarts the daemon after an upgrade" \
    "yes|yes|yes" \
    "$(sed -n '/^postinstall scriptlet/,/^[a-z]* scriptlet/p' "$work/scripts" | grep -q 'systemctl --no-reload preset xmpp-token-auth.socket xmpp-token-auth.service' && echo yes)|$(sed -n '/^preuninstall scriptlet/,/^[a-z]* scriptlet/p' "$work/scripts" | grep -q 'systemctl --no-reload disable --now xmpp-token-auth.socket xmpp-token-auth.service' && echo yes)|$(sed -n '/^postuninstall scriptlet/,$p' "$work/scripts" | grep -q 'systemctl try-restart xmpp-token-auth.service' && echo yes)"

echo "== rpm, installed on this machine with rpm itself"
# Only the scriptlets and file attributes are under test: rpm is told to
# ignore that this is Debian and that the dependencies live in dpkg's database.
# As on a fresh machine, %pre makes the group.
uninstall
for bad in make_user_group make_login_group make_user_user make_foreign_user; do
    $bad
    status=$(rpm -i --nodeps --force-debian "$rpm" >"$work/refused" 2>&1; echo $?)
    cat "$work/refused"
    check "rpm ($bad): %pre refuses the group or user, says why, nothing is installed" "fail|yes|absent|absent" \
        "$([ "$status" -eq 0 ] && echo ok || echo fail)|$(says "$work/refused" "is not a system group|primary group of the login user\\(s\\) $login|existing user $service_user \\(uid [0-9]+\\) is not a system user|has the primary group nogroup")|$(rpm -q xmpp-token-auth >/dev/null 2>&1 && echo present || echo absent)|$(present $conf/token_secret)"
    uninstall
done
rpm -i --nodeps --force-debian "$rpm" >"$work/rpm-install" 2>&1 || { cat "$work/rpm-install"; exit 1; }
check "rpm: %pre made a system group" "yes" \
    "$(gid=$(getent group xmpp-token-auth | cut -d: -f3); [ "$gid" -gt 100 ] && [ "$gid" -lt 1000 ] && echo yes)"
check "rpm: %pre made the daemon's system user in it, no login" "system|xmpp-token-auth|/|/sbin/nologin|xmpp-token-auth" \
    "$(passwd_of "$service_user")|$(id -nG "$service_user")"
# No preset file names the socket here, so systemd's default policy, enable,
# applies (Fedora's default policy is disable).
check "rpm: %post's preset enabled the socket, as the preset policy here says" "$units/xmpp-token-auth.socket" \
    "$(readlink -f $wants)"
check "rpm: configuration and generated secrets, root:xmpp-token-auth 0640" \
    "root:xmpp-token-auth 640|root:xmpp-token-auth 640|root:xmpp-token-auth 640" \
    "$(owner $conf/config.toml)|$(owner $conf/token_secret)|$(owner $conf/otp_seed)"
check "rpm: state folder" "root:xmpp-token-auth 2770" "$(owner /var/lib/xmpp-token-auth)"
check "rpm: check-config accepts the installed configuration" "0" "$($bin check-config >/dev/null 2>&1; echo $?)"
rpm -qp --qf '%{POSTIN}' "$rpm" > "$work/post.sh"
check "rpm: %post fails loudly rather than write a secret it could not generate" "1|said|absent" \
    "$(secrets_unmade "$work/post.sh" 1)"
secret_before=$(cat $conf/token_secret)
printf '\n# edited by the operator\notp_window = 3\n' >> $conf/config.toml
rpm -U --replacepkgs --nodeps --force-debian "$rpm" >/dev/null 2>&1
check "rpm: reinstalling keeps the edit and the secret" "otp_window = 3|$secret_before" \
    "$(grep '^otp_window' $conf/config.toml)|$(cat $conf/token_secret)"
check "rpm: reinstalling keeps the socket enabled" "$units/xmpp-token-auth.socket" "$(readlink -f $wants)"
rpm -e xmpp-token-auth >/dev/null 2>&1
check "rpm: erase saves the edited configuration and keeps the secrets" "yes|kept" \
    "$(grep -q '^otp_window = 3' $conf/config.toml.rpmsave && echo yes)|$([ -e $conf/token_secret ] && echo kept)"
check "rpm: erase disables the units (no link left) and removes them, keeps the user" "|gone|present" \
    "$(systemd_leftovers)|$([ -e $units/xmpp-token-auth.socket ] && echo present || echo gone)|$(getent passwd "$service_user" >/dev/null && echo present)"

finish
