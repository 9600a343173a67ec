# Fresh secrets on first installation, next to the %config(noreplace) file
# that names them; the state folder. Upgrades keep existing values. (pre.sh
# has checked the group.)
conf=/etc/xmpp-token-auth
for key in token_secret otp_seed; do
    if [ ! -e "$conf/$key" ]; then
        value=$(/usr/bin/xmpp-token-auth gen-secret | sed -n "s/^$key = \"\\(.*\\)\"\$/\\1/p")
        if [ -z "$value" ]; then
            echo "xmpp-token-auth: ERROR: could not generate $key (\`/usr/bin/xmpp-token-auth gen-secret\` printed no value); $conf/$key was NOT written and the helper will not start. Run \`xmpp-token-auth gen-secret\` and put the $key value alone in $conf/$key (root:xmpp-token-auth, 0640)." >&2
            exit 1
        fi
        rm -f "$conf/$key.rpmtmp"
        (umask 077 && printf '%s\n' "$value" > "$conf/$key.rpmtmp") || exit 1
        chown root:xmpp-token-auth "$conf/$key.rpmtmp" || exit 1
        chmod 0640 "$conf/$key.rpmtmp" || exit 1
        mv -f "$conf/$key.rpmtmp" "$conf/$key" || exit 1
    fi
done
# setgid: the replay store made in it by any member belongs to the group.
install -d -o root -g xmpp-token-auth -m 2770 /var/lib/xmpp-token-auth || exit 1
if [ "$1" -eq 1 ]; then
    echo "xmpp-token-auth: secrets are in $conf/token_secret and $conf/otp_seed."
    echo "Add the XMPP server's user to the group: usermod -a -G xmpp-token-auth ejabberd (or prosody)."
    echo "Prosody's socket daemon: systemctl enable --now xmpp-token-auth.socket (if the preset did not)."
fi
# %systemd_post: on first installation, enable the units if the
# distribution's preset policy says so (Fedora's default policy does not;
# the administrator enables them).
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset xmpp-token-auth.socket xmpp-token-auth.service >/dev/null 2>&1 || :
fi
exit 0
