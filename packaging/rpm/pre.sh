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
exit 0
