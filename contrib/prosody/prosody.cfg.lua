-- xmpp-token-auth for Prosody: put these lines in /etc/prosody/prosody.cfg.lua,
-- globally or inside the VirtualHost that should use tokens.
--
-- Needs the community module mod_auth_external_insecure (prosody-modules) and
-- the Lua library lpty built for Prosody's Lua version (Debian 12: Lua 5.4;
-- `luarocks --lua-version 5.4 install lpty`, see README.md).

authentication = "external_insecure"

-- "generic" is the line protocol the helper speaks on Prosody's terminal.
external_auth_protocol = "generic"

-- Absolute path and no arguments: lpty runs it without a shell. Configure the
-- helper in /etc/xmpp-token-auth/config.toml (or with XMPP_TOKEN_AUTH_CONFIG in
-- Prosody's environment).
external_auth_command = "/usr/bin/xmpp-token-auth"

-- Do not load mod_legacyauth: it passes passwords without SASLprep, so a
-- newline inside one would split a request in two.
