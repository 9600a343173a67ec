# Fresh secrets on first installation, next to the %config(noreplace) file
# that names them; the state folder. Upgrades keep existing values.
conf=/etc/xmpp-token-auth
for key in token_secret otp_seed; do
    if [ ! -e "$conf/$key" ]; then
        value=$(/usr/bin/xmpp-token-auth gen-secret | sed -n "s/^$key = \"\\(.*\\)\"\$/\\1/p")
        (umask 077 && printf '%s\n' "$value" > "$conf/$key")
        chown root:xmpp-token-auth "$conf/$key"
        chmod 0640 "$conf/$key"
    fi
done
# setgid: the replay store made in it by any member belongs to the group.
install -d -o root -g xmpp-token-auth -m 2770 /var/lib/xmpp-token-auth
if [ "$1" -eq 1 ]; then
    echo "xmpp-token-auth: secrets are in $conf/token_secret and $conf/otp_seed."
    echo "Add the XMPP server's user to the group: usermod -a -G xmpp-token-auth ejabberd (or prosody)."
fi
exit 0
