-- mod_auth_xmpp_token: Prosody logs users in with mod_auth_token-style
-- tokens, checked by the xmpp-token-auth daemon (`xmpp-token-auth listen`)
-- over its Unix socket. Part of xmpp-token-auth; see its README.md and
-- docs/protocol.md.
--
--     plugin_paths = { "/usr/share/xmpp-token-auth/prosody" } -- global
--     authentication = "xmpp_token"                           -- global or per VirtualHost
--     xmpp_token_socket = "/run/xmpp-token-auth/auth.sock"    -- the default
--     xmpp_token_timeout = 5                                  -- seconds, the default
--
-- Prosody's user must be allowed to open the socket (the daemon's
-- socket_group, `xmpp-token-auth` by default).
--
-- How it works. One persistent connection per host to the daemon, which
-- speaks the line protocol: `auth:USER:HOST:PASSWORD\n` and
-- `isuser:USER:HOST\n`, each answered `1\n` or `0\n` in the order asked.
-- Requests are pipelined: each one joins a queue of waiters and its login
-- waits in the session's async runner (util.async), so Prosody never blocks.
-- Replies are matched to waiters strictly in order. The module fails closed
-- and never lets replies drift out of step: a request not answered within
-- xmpp_token_timeout is refused, the connection is dropped with every request
-- still on it refused, and the next request opens a new connection, so a late
-- reply can never answer a later request. A daemon that cannot be reached
-- refuses the login at once. A connection the daemon closed while idle (a
-- restart) is noticed before the next request is written on it.
--
-- SASL: PLAIN (as mod_auth_external_insecure offers it, through plain_test)
-- and X-TOKEN, the mechanism of mod_auth_token's companion mod_sasl_token,
-- so that clients written for mod_auth_token log in unchanged.
--
-- Written for Prosody 0.12 (Debian 12) with the default network backend
-- (epoll), using nothing deprecated in Prosody 13. Needs LuaSocket's Unix
-- sockets (`socket.unix`, Debian package lua-socket, which Prosody depends
-- on).

local async = require "util.async";
local sasl = require "util.sasl";
local stringprep = require "util.encodings".stringprep;
local server = require "net.server";

local saslprep, nodeprep = stringprep.saslprep, stringprep.nodeprep;

local have_unix, unix = pcall(require, "socket.unix");
if not have_unix then
	error("mod_auth_xmpp_token needs LuaSocket's Unix sockets (require \"socket.unix\" failed: "
		..tostring(unix)..")");
end

local host = module.host;
local DEFAULT_SOCKET = "/run/xmpp-token-auth/auth.sock";
local DEFAULT_TIMEOUT = 5;

local socket_path = module:get_option_string("xmpp_token_socket", DEFAULT_SOCKET);
local timeout = module:get_option_number("xmpp_token_timeout", DEFAULT_TIMEOUT);
if type(timeout) ~= "number" or timeout <= 0 or timeout ~= timeout or timeout == math.huge then
	module:log("warn", "xmpp_token_timeout must be a number of seconds above 0; using %d", DEFAULT_TIMEOUT);
	timeout = DEFAULT_TIMEOUT;
end

local MANAGED = "Accounts are managed by your application (xmpp-token-auth checks its tokens); Prosody cannot change them";

-- A reply is "1" or "0" and a line break; anything longer is out of step.
local MAX_REPLY = 16;

--------------------------------------------------------------------------
-- The connection to the daemon.
--
-- A channel is one connection: its socket, the net.server interface around
-- it, the requests in flight on it (queue[head..tail], oldest first), and
-- the bytes of a reply not yet complete. `current` is the channel new
-- requests go to; a retired channel is never used again.
--
-- An entry is one request in flight: the waiter's done(), its timer, and
-- once settled either `verdict` (true/false from the daemon) or `err`.
--
-- done() resumes the waiting session at once, inside the net.server or
-- timer callback that calls it, and that session may ask again at once. So
-- every function here first settles all the state (queues, timers,
-- `current`) and only then wakes the waiters (wake()).
--------------------------------------------------------------------------

local current = nil;

local function wake(entries)
	for i = 1, #entries do
		entries[i].done();
	end
end

local function in_flight(ch)
	return ch.tail - ch.head + 1;
end

-- Ends a channel: takes every entry still waiting on it, settles it with
-- `err`, closes the connection (unless net.server has already), and returns
-- the entries for the caller to wake.
local function retire(ch, err, already_closed)
	if ch.retired then return {}; end
	ch.retired = true;
	if current == ch then current = nil; end
	local settled = {};
	for i = ch.head, ch.tail do
		local entry = ch.queue[i];
		ch.queue[i] = nil;
		entry.timer:stop();
		entry.err = err;
		settled[#settled+1] = entry;
	end
	ch.head, ch.tail = 1, 0;
	ch.buffer = "";
	if not already_closed then
		-- Calls ondisconnect at once, which ignores a retired channel.
		ch.iface:close();
	end
	return settled;
end

local function listeners_for(ch)
	local listeners = {};

	function listeners.onincoming(_, data)
		if ch.retired then return; end
		local buffer = ch.buffer..data;
		local answered, fault = {}, nil;
		local pos = 1;
		while true do
			local newline = buffer:find("\n", pos, true);
			if not newline then break; end
			local line = buffer:sub(pos, newline - 1);
			pos = newline + 1;
			if ch.head > ch.tail then
				fault = "a reply to no request";
				break;
			elseif line ~= "1" and line ~= "0" then
				fault = "a reply that is neither 1 nor 0";
				break;
			end
			local entry = ch.queue[ch.head];
			ch.queue[ch.head] = nil;
			ch.head = ch.head + 1;
			entry.timer:stop();
			entry.verdict = (line == "1");
			answered[#answered+1] = entry;
		end
		ch.buffer = buffer:sub(pos);
		if ch.head > ch.tail then
			ch.head, ch.tail = 1, 0;
		end
		if not fault and #ch.buffer > MAX_REPLY then
			fault = "a reply longer than any it sends";
		end
		local refused = {};
		if fault then
			module:log("warn", "xmpp-token-auth at %s sent %s: dropped the connection, refusing the %d request(s) waiting on it",
				socket_path, fault, in_flight(ch));
			refused = retire(ch, "out of step");
		end
		wake(answered);
		wake(refused);
	end

	function listeners.ondisconnect(_, err)
		if ch.retired then return; end
		local waiting = in_flight(ch);
		if waiting > 0 then
			module:log("warn", "xmpp-token-auth at %s closed the connection (%s) with %d request(s) in flight; each is asked once more on a new connection",
				socket_path, tostring(err or "closed"), waiting);
		else
			module:log("debug", "xmpp-token-auth at %s closed the idle connection (%s); the next request reconnects",
				socket_path, tostring(err or "closed"));
		end
		wake(retire(ch, "closed", true));
	end

	-- net.server drops a connection that read nothing for 14 minutes unless
	-- this says to keep it; an idle daemon connection is normal.
	function listeners.onreadtimeout()
		return true;
	end

	return listeners;
end

local function open()
	local sock, err = (unix.stream or unix)();
	if not sock then return nil, err; end
	sock:settimeout(0);
	-- A Unix connect succeeds or fails at once ("timeout" here means the
	-- daemon's backlog is full).
	local ok, connect_err = sock:connect(socket_path);
	if not ok then
		sock:close();
		return nil, connect_err;
	end
	local ch = { sock = sock, queue = {}, head = 1, tail = 0, buffer = "" };
	local iface, wrap_err = server.wrapclient(sock, socket_path, 0, listeners_for(ch));
	if not iface then
		sock:close();
		return nil, wrap_err or "net.server could not take the socket";
	end
	ch.iface = iface;
	module:log("debug", "connected to xmpp-token-auth at %s", socket_path);
	return ch;
end

-- The channel to send on, opened if there is none. An idle channel must
-- have nothing to read: if it has, the daemon closed it (it was restarted
-- or stopped) and net.server has not told us yet, so it is retired now,
-- before a request is lost on it.
local function channel()
	local ch = current;
	if ch and ch.head > ch.tail then
		local data, err = ch.sock:receive(1);
		if data or err ~= "timeout" then
			module:log("debug", "xmpp-token-auth at %s closed the idle connection (%s); reconnecting",
				socket_path, data and "it sent data unasked" or tostring(err));
			-- Idle: nobody to wake. Its socket is closed only once net.server
			-- has handled the events of this wake-up: one for its descriptor
			-- may still be pending, and would hit the new connection if that
			-- reused the number (net.server would drop it at once).
			local dead = ch;
			retire(dead, "closed", true);
			module:add_timer(0, function ()
				dead.iface:close();
			end);
			ch = nil;
		end
	end
	if not ch then
		local err;
		ch, err = open();
		if not ch then return nil, err; end
		current = ch;
	end
	return ch;
end

local function on_timeout(ch, entry)
	if entry.verdict ~= nil or entry.err or ch.retired then return; end
	module:log("warn", "xmpp-token-auth at %s did not answer within %g s (xmpp_token_timeout): refused %d request(s) and dropped the connection; the next request reconnects",
		socket_path, timeout, in_flight(ch));
	wake(retire(ch, "timeout"));
end

-- Sends one request line and waits for its verdict, in the caller's async
-- runner. Returns true or false from the daemon, or nil and why not.
local function ask(request)
	if not async.ready() then
		return nil, "not in an async context";
	end
	for attempt = 1, 2 do
		local ch, err = channel();
		if not ch then
			module:log("warn", "cannot reach xmpp-token-auth at %s (%s): request refused; is `xmpp-token-auth listen` running, and may Prosody's user open the socket (socket_group)?",
				socket_path, tostring(err));
			return nil, "unreachable";
		end
		local wait, done = async.waiter();
		local entry = { done = done };
		ch.tail = ch.tail + 1;
		ch.queue[ch.tail] = entry;
		entry.timer = module:add_timer(timeout, function ()
			on_timeout(ch, entry);
		end);
		ch.iface:write(request);
		wait();
		if entry.verdict ~= nil then
			return entry.verdict;
		end
		-- The connection closed under the request (the daemon stopped or
		-- restarted): ask once more on a new one. The verdict still comes
		-- from the daemon; a token it already accepted is refused as used.
		if entry.err ~= "closed" or attempt == 2 then
			return nil, entry.err;
		end
	end
end

-- A field that can go into a request line.
local function sendable(field)
	return type(field) == "string" and field ~= ""
		and not field:find("\n", 1, true) and not field:find("\r", 1, true)
		and not field:find("\0", 1, true);
end

--------------------------------------------------------------------------
-- The auth provider.
--------------------------------------------------------------------------

local provider = {};

function provider.test_password(username, password)
	if not (sendable(username) and sendable(password)) or username:find(":", 1, true) then
		module:log("debug", "refused a login whose user name or password cannot be sent (empty, a line break or NUL, or ':' in the user name)");
		return nil, "Invalid username or password.";
	end
	local verdict, err = ask(("auth:%s:%s:%s\n"):format(username, host, password));
	if verdict then
		return true;
	elseif verdict == false then
		return nil, "Invalid username or password.";
	elseif err == "not in an async context" then
		module:log("warn", "test_password for %s was called outside an async context, where it cannot wait for xmpp-token-auth: refused", username);
	end
	return nil, "Authentication is unavailable: "..tostring(err);
end

function provider.user_exists(username)
	if not sendable(username) or username:find(":", 1, true) then
		return nil, "Invalid username.";
	end
	local verdict, err = ask(("isuser:%s:%s\n"):format(username, host));
	if verdict ~= nil then
		return verdict;
	elseif err == "not in an async context" then
		module:log("debug", "user_exists for %s was called outside an async context, where it cannot wait for xmpp-token-auth: answered no", username);
	end
	return nil, "User lookup is unavailable: "..tostring(err);
end

function provider.set_password()
	return nil, MANAGED;
end

function provider.create_user()
	return nil, MANAGED;
end

function provider.delete_user()
	return nil, MANAGED;
end

-- The accounts live in the application: there is nothing to list.
function provider.users()
	return function () return nil; end;
end

-- X-TOKEN, as mod_auth_token's companion mod_sasl_token defines it: the
-- message is `authzid NUL authcid NUL token`; authcid and token are
-- SASLprepped, authcid nodeprepped (unless the profile turns that off),
-- and the profile's `token` backend decides. Its failures are PLAIN's.
-- Registering it again (both modules loaded) is harmless: both call the
-- profile's `token`, which this module provides too.
local function x_token(self, message)
	if not message then
		return "failure", "malformed-request";
	end
	local authzid, authcid, token = message:match("^([^\0]*)\0([^\0]+)\0([^\0]+)");
	if not authzid then
		return "failure", "malformed-request";
	end
	authcid, token = saslprep(authcid), saslprep(token);
	if not authcid or authcid == "" or not token or token == "" then
		return "failure", "malformed-request", "Invalid username or password.";
	end
	local prep = self.profile.nodeprep;
	if prep ~= false then
		authcid = (prep or nodeprep)(authcid);
		if not authcid or authcid == "" then
			return "failure", "malformed-request", "Invalid username or password.";
		end
	end
	local correct, state = self.profile.token(self, authcid, token, self.realm);
	self.username = authcid;
	if state == false then
		return "failure", "account-disabled";
	elseif state == nil or not correct then
		return "failure", "not-authorized", "Unable to authorize you with the authentication credentials you've sent.";
	end
	return "success";
end

sasl.registerMechanism("X-TOKEN", { "token" }, x_token);

function provider.get_sasl_handler()
	return sasl.new(host, {
		-- SASL runs in the session's async runner, so these may wait.
		plain_test = function (_, username, password)
			return provider.test_password(username, password), true;
		end;
		token = function (_, username, token)
			return provider.test_password(username, token), true;
		end;
	});
end

function module.unload()
	if current then
		wake(retire(current, "module unloaded"));
	end
end

module:provides("auth", provider);
