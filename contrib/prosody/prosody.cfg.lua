-- xmpp-token-auth for Prosody (0.12 and later): lines for
-- /etc/prosody/prosody.cfg.lua. See README.md, section Prosody.
--
-- Before: the daemon runs (`systemctl enable --now xmpp-token-auth.socket`,
-- or `xmpp-token-auth listen`) and Prosody's user may open its socket:
-- `adduser prosody xmpp-token-auth`, then restart Prosody.

-- Global section only: the folder that holds mod_auth_xmpp_token.lua
-- (contrib/prosody/ in the source tree).
plugin_paths = { "/usr/share/xmpp-token-auth/prosody" }

-- Globally, or inside the VirtualHost that should use tokens. Offers SASL
-- PLAIN and X-TOKEN (the mechanism of mod_auth_token's mod_sasl_token).
authentication = "xmpp_token"

-- Optional, with their defaults:
-- xmpp_token_socket = "/run/xmpp-token-auth/auth.sock" -- the daemon's `socket`
-- xmpp_token_timeout = 5 -- seconds; a login not answered by then is refused
