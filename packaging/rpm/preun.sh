# %systemd_preun: on erase (not upgrade), disable and stop the socket and the
# daemon.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now xmpp-token-auth.socket xmpp-token-auth.service >/dev/null 2>&1 || :
fi
exit 0
