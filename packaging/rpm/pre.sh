# The group must exist before the configuration file is installed with it.
getent group xmpp-token-auth >/dev/null || groupadd -r xmpp-token-auth
exit 0
