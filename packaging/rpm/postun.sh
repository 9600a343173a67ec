# %systemd_postun_with_restart: after an upgrade, restart the daemon if it
# runs, so that the new version serves; the socket stays and keeps every
# waiting connection. After an erase, systemd forgets the removed units.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart xmpp-token-auth.service >/dev/null 2>&1 || :
    fi
fi
exit 0
