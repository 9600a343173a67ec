# The group must exist before the configuration file is installed with it.
# Its members read the secrets: refuse a group that is not a system group, or
# that a login user has as primary group. Failing here stops the installation
# before any file is written.
getent group xmpp-token-auth >/dev/null || groupadd -r xmpp-token-auth
group=xmpp-token-auth

# The range `groupadd -r` draws from: /etc/login.defs, else shadow's defaults.
defs() {
    value=$(sed -n "s/^[[:space:]]*$1[[:space:]][[:space:]]*\\([0-9][0-9]*\\)[[:space:]]*\$/\\1/p" \
        /etc/login.defs 2>/dev/null | tail -n 1)
    echo "${value:-$2}"
}
gid=$(getent group "$group" | cut -d: -f3)
first=$(defs SYS_GID_MIN 101)
last=$(defs SYS_GID_MAX $(($(defs GID_MIN 1000) - 1)))
if [ -z "$gid" ] || [ "$gid" -lt "$first" ] || [ "$gid" -gt "$last" ]; then
    cat >&2 <<MESSAGE
xmpp-token-auth: the existing group $group (gid $gid) is not a system
group: its gid is outside $first-$last (SYS_GID_MIN-SYS_GID_MAX in
/etc/login.defs). Its members would read the secrets in /etc/xmpp-token-auth.
Rename it (groupmod -n NEW_NAME $group) or remove it
(groupdel $group), then install the package again.
MESSAGE
    exit 1
fi
logins=$(getent passwd | awk -F: -v gid="$gid" \
    '$4 == gid && $7 !~ /\/(nologin|false)$/ { printf "%s%s (shell %s)", sep, $1, ($7 == "" ? "/bin/sh" : $7); sep = ", " }')
if [ -n "$logins" ]; then
    cat >&2 <<MESSAGE
xmpp-token-auth: the group $group is the primary group of the login user(s)
$logins, who would read the secrets in /etc/xmpp-token-auth.
Give them another primary group (usermod -g OTHER_GROUP USER), or a shell
that refuses logins (usermod -s /sbin/nologin USER), or rename the group
(groupmod -n NEW_NAME $group), then install the package again.
MESSAGE
    exit 1
fi

# The socket daemon's user (xmpp-token-auth.service), a member of the group
# so that it reads the secrets: refuse an existing one that is not what
# `useradd -r` makes here (a system uid, the group as primary group; a login
# shell was refused above, as for any user whose primary group it is).
user=xmpp-token-auth
getent passwd "$user" >/dev/null ||
    useradd -r -M -g "$group" -d / -s /sbin/nologin -c "xmpp-token-auth socket daemon" "$user" || exit 1
entry=$(getent passwd "$user")
uid=$(echo "$entry" | cut -d: -f3)
user_gid=$(echo "$entry" | cut -d: -f4)
first=$(defs SYS_UID_MIN 101)
last=$(defs SYS_UID_MAX $(($(defs UID_MIN 1000) - 1)))
if [ -z "$uid" ] || [ "$uid" -lt "$first" ] || [ "$uid" -gt "$last" ]; then
    cat >&2 <<MESSAGE
xmpp-token-auth: the existing user $user (uid $uid) is not a system user:
its uid is outside $first-$last (SYS_UID_MIN-SYS_UID_MAX in /etc/login.defs).
The socket daemon runs as this user and reads the secrets in
/etc/xmpp-token-auth. Rename it (usermod -l NEW_NAME $user) or remove it
(userdel $user), then install the package again.
MESSAGE
    exit 1
fi
if [ "$user_gid" != "$gid" ]; then
    cat >&2 <<MESSAGE
xmpp-token-auth: the existing system user $user has the primary group
$(getent group "$user_gid" | cut -d: -f1) (gid $user_gid), not $group (gid $gid).
Give it that group (usermod -g $group $user), then install the package again.
MESSAGE
    exit 1
fi
exit 0
