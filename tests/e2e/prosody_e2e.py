#!/usr/bin/env python3
"""End to end with a real Prosody, contrib/prosody/mod_auth_xmpp_token.lua,
the socket daemon (`xmpp-token-auth listen`) and a real XMPP client.

Runs Debian's Prosody in the foreground as the prosody user, on a free
loopback port, with its own data folder, pid file and log in a temporary
folder, the module through `plugin_paths` and `authentication =
"xmpp_token"`; the daemon listens on a socket in the same folder (group
prosody, mode 0660, as in production where Prosody's user is in the
socket's group). slixmpp logs in over SASL PLAIN with tokens from
`xmpp-token-auth generate`; X-TOKEN and legacy auth are spoken raw. The
daemon is stopped, killed, restarted and removed under Prosody to check
that logins never block Prosody, never get another login's verdict, and
work again after a restart.

    python3 tests/e2e/prosody_e2e.py [path/to/xmpp-token-auth]

Run as root (it starts Prosody as the prosody user). Needs prosody,
lua-socket and slixmpp. Prints one line per case and a closing
`N passed, M failed` line; exits 1 if any case failed, after printing the
logs. Every wait is bounded. XTA_KEEP=1 keeps the temporary folder (logs,
configurations) for a look afterwards.
"""

import asyncio
import base64
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import slixmpp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/debug/xmpp-token-auth").resolve()
MODULE = ROOT / "contrib/prosody/mod_auth_xmpp_token.lua"
SNIPPET = ROOT / "contrib/prosody/prosody.cfg.lua"
DOMAIN = "localhost"
OTHER = "other.test"  # a VirtualHost the daemon does not serve
TIMEOUT = 1  # xmpp_token_timeout in the test's Prosody
LOGIN_TIMEOUT = 8  # no single login may take longer, whatever happens
PROSODY_USER = "prosody"

logging.basicConfig(level=logging.CRITICAL)  # slixmpp is chatty on refusals


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, timeout=30, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def case(self, name, expected, actual):
        if expected == actual:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: expected {expected!r}, got {actual!r}", flush=True)

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)


# --------------------------------------------------------------------------
# The daemon


class Daemon:
    """`xmpp-token-auth listen` on a socket in the work folder."""

    def __init__(self, work, config, socket_path):
        self.config = config
        self.socket = socket_path
        self.log = work / "daemon.log"
        self.process = None

    def start(self):
        assert self.process is None or self.process.poll() is not None
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN), "--config", str(self.config), "listen"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited at start with status {self.process.returncode}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(str(self.socket))
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the daemon did not listen within 10 s")

    def send(self, sig):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def alive(self):
        return self.process is not None and self.process.poll() is None


# --------------------------------------------------------------------------
# Prosody


def base_config(work, port):
    return f"""
pidfile = "{work}/prosody/prosody.pid"
data_path = "{work}/prosody/data"
certificates = "{work}/certs"
log = {{ {{ levels = {{ min = "debug" }}, to = "console" }} }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "offline"; "legacyauth"; }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
"""


class Prosody:
    def __init__(self, work, plugins, socket_path):
        self.work = work
        self.port = free_port()
        self.log = work / "prosody.log"
        self.config = work / "prosody.cfg.lua"
        self.config.write_text(base_config(work, self.port) + f"""
plugin_paths = {{ "{plugins}" }}
authentication = "xmpp_token"
xmpp_token_socket = "{socket_path}"
xmpp_token_timeout = {TIMEOUT}

VirtualHost "{DOMAIN}"
VirtualHost "{OTHER}"
""")
        self.process = None

    def start(self):
        output = open(self.log, "ab")
        try:
            self.process = subprocess.Popen(
                ["prosody", "-F", "--config", str(self.config)],
                cwd=self.work, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                user=PROSODY_USER, group=PROSODY_USER, extra_groups=[], start_new_session=True)
        finally:
            output.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prosody exited at start with status {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("prosody did not listen within 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# --------------------------------------------------------------------------
# Clients


def new_client(jid, password):
    client = slixmpp.ClientXMPP(jid, password, sasl_mech="PLAIN")
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.register_plugin("xep_0199")
    return client


async def open_session(port, jid, password):
    """A logged-in client (after a roster round trip), or None if refused."""
    client = new_client(jid, password)
    outcome = asyncio.get_running_loop().create_future()

    async def started(_):
        try:
            await client.get_roster(timeout=LOGIN_TIMEOUT)
        except Exception as error:
            if not outcome.done():
                outcome.set_exception(AssertionError(f"logged in, but the roster failed: {error!r}"))
        if not outcome.done():
            outcome.set_result(True)

    def refused(_):
        if not outcome.done():
            outcome.set_result(False)

    client.add_event_handler("session_start", started)
    client.add_event_handler("failed_all_auth", refused)
    client.connect("127.0.0.1", port)
    try:
        accepted = await asyncio.wait_for(outcome, LOGIN_TIMEOUT)
    except asyncio.TimeoutError:
        client.disconnect()
        raise AssertionError(f"no verdict within {LOGIN_TIMEOUT} s")
    if not accepted:
        client.disconnect()
        await asyncio.sleep(0.05)
        return None
    return client


async def close_session(client):
    client.disconnect()
    await asyncio.sleep(0.05)


async def login(port, jid, password):
    """True if the server accepts the login (session bound, roster fetched)."""
    client = await open_session(port, jid, password)
    if client is None:
        return False
    await close_session(client)
    return True


async def timed_login(port, jid, password):
    start = time.monotonic()
    result = await login(port, jid, password)
    return result, time.monotonic() - start


async def ping(client, timeout=2):
    """Seconds for the server to answer an XEP-0199 ping, or None."""
    start = time.monotonic()
    try:
        await client.plugin["xep_0199"].send_ping(DOMAIN, timeout=timeout)
    except Exception:
        return None
    return time.monotonic() - start


class RawStream:
    """XMPP spoken by hand, for what slixmpp cannot send (X-TOKEN, control
    characters in a legacy auth password)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=LOGIN_TIMEOUT)
        self.data = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_until(self, pattern):
        regex = re.compile(pattern, re.S)
        deadline = time.monotonic() + LOGIN_TIMEOUT
        while True:
            match = regex.search(self.data)
            if match:
                self.data = self.data[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {LOGIN_TIMEOUT} s; got {self.data[-300:]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"stream closed before {pattern!r}; got {self.data[-300:]!r}")
            self.data += chunk

    def open(self):
        self.send(f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
        return self.read_until(rb"<stream:features.*?</stream:features>").group(0).decode()

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()


def mechanisms(features):
    return sorted(re.findall(r"<mechanism>([^<]*)</mechanism>", features))


def x_token_login(port, user, token, authzid="", bind=True):
    """The SASL X-TOKEN exchange by hand: 'success' (and a bound resource when
    bind), or the failure condition."""
    stream = RawStream(port)
    try:
        stream.open()
        payload = base64.b64encode(f"{authzid}\0{user}\0{token}".encode()).decode()
        stream.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>{payload}</auth>")
        match = stream.read_until(rb"<success[^>]*(/>|>.*?</success>)|<failure.*?</failure>")
        text = match.group(0).decode()
        if not text.startswith("<success"):
            condition = re.search(r"<(?!failure)([a-z-]+)", text)
            return condition.group(1) if condition else text
        if not bind:
            return "success"
        stream.open()
        stream.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                    "<resource>raw</resource></bind></iq>")
        bound = stream.read_until(rb"<jid>([^<]*)</jid>").group(1).decode()
        return f"success, bound {bound}"
    finally:
        stream.close()


def legacy_login(port, user, password_xml):
    """XEP-0078 iq:auth, whose password reaches the auth module without
    SASLprep: 'result' or 'error'. password_xml is already XML-escaped."""
    stream = RawStream(port)
    try:
        stream.open()
        stream.send(f"<iq type='set' id='l1'><query xmlns='jabber:iq:auth'><username>{user}</username>"
                    f"<password>{password_xml}</password><resource>legacy</resource></query></iq>")
        match = stream.read_until(rb"<iq[^>]*id=['\"]l1['\"][^>]*>")
        return re.search(r"type=['\"](\w+)['\"]", match.group(0).decode()).group(1)
    finally:
        stream.close()


async def message_error(client, to):
    """Sends a chat message to `to` (offline), then a ping: Prosody handles a
    session's stanzas in order, so once the ping is answered any error for
    the message has arrived. Returns the error condition or None."""
    errors = []
    client.add_event_handler("message_error", lambda m: errors.append(m["error"]["condition"]))
    client.send_message(mto=to, mbody="hello", mtype="chat")
    if await ping(client, timeout=LOGIN_TIMEOUT) is None:
        return "no answer to the ping after it"
    return errors[0] if errors else None


# --------------------------------------------------------------------------
# The helper's other framing


def stdio_helper(config, request):
    """One request to the ejabberd-framed stdio helper over pipes; its reply."""
    body = request.encode()
    result = subprocess.run([str(BIN), "--config", str(config)], input=struct.pack(">H", len(body)) + body,
                            capture_output=True, timeout=20)
    return result.stdout


def freeze(process):
    """SIGSTOP, and wait until the process is stopped: until then it may still
    take events that arrive meanwhile."""
    process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {process.pid} did not stop within 5 s")


def generate(config, jid, *extra):
    return run([BIN, "--config", config, "generate", jid, *extra], check=True).stdout.strip()


# --------------------------------------------------------------------------
# The cases


async def basic_cases(prosody, config, report):
    port = prosody.port
    token = generate(config, f"alice@{DOMAIN}")
    report.case("a fresh token logs in (session bound, roster fetched)", True, await login(port, f"alice@{DOMAIN}", token))
    report.case("the same token again is refused", False, await login(port, f"alice@{DOMAIN}", token))
    report.case("a wrong password is refused", False, await login(port, f"alice@{DOMAIN}", "hunter2"))
    bobs = generate(config, f"bob@{DOMAIN}")
    report.case("another user's token is refused", False, await login(port, f"alice@{DOMAIN}", bobs))
    report.case("...and still logs its own user in", True, await login(port, f"bob@{DOMAIN}", bobs))
    expired = generate(config, f"alice@{DOMAIN}", "--at", str(int(time.time()) - 300))
    report.case("an expired token is refused", False, await login(port, f"alice@{DOMAIN}", expired))
    carols = generate(config, f"carol@{DOMAIN}")
    report.case("a user typed in capitals logs in with the lower-case token", True,
                await login(port, f"Carol@{DOMAIN}", carols))

    # Twenty logins at once on the one pipelined connection, valid and not
    # interleaved: each must get its own verdict.
    jobs, expected = [], []
    for i in range(20):
        user = f"user{i}@{DOMAIN}"
        if i % 3 == 2:
            jobs.append(login(port, user, generate(config, f"user{i - 1}@{DOMAIN}")))  # another user's token
            expected.append(False)
        else:
            jobs.append(login(port, user, generate(config, user)))
            expected.append(True)
    report.case("20 concurrent logins, valid and not, each get their own verdict", expected,
                list(await asyncio.gather(*jobs)))


def sasl_cases(prosody, config, report):
    port = prosody.port
    stream = RawStream(port)
    try:
        offered = mechanisms(stream.open())
    finally:
        stream.close()
    report.case("Prosody offers PLAIN and X-TOKEN (as mod_auth_token + mod_sasl_token did)", ["PLAIN", "X-TOKEN"], offered)
    token = generate(config, f"dave@{DOMAIN}")
    report.case("X-TOKEN (authzid NUL authcid NUL token) logs in and binds", f"success, bound dave@{DOMAIN}/raw",
                x_token_login(port, "dave", token))
    report.case("X-TOKEN with the same token again is refused", "not-authorized", x_token_login(port, "dave", token))
    erins = generate(config, f"erin@{DOMAIN}")
    report.case("X-TOKEN with an authzid and a user in capitals (nodeprep) logs in", "success",
                x_token_login(port, "Erin", erins, authzid=f"erin@{DOMAIN}", bind=False))
    report.case("X-TOKEN with another user's token is refused", "not-authorized",
                x_token_login(port, "frank", generate(config, f"grace@{DOMAIN}")))
    stream = RawStream(port)
    try:
        stream.open()
        stream.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>"
                    f"{base64.b64encode(b'no separators').decode()}</auth>")
        text = stream.read_until(rb"<failure.*?</failure>").group(0).decode()
    finally:
        stream.close()
    report.check("X-TOKEN without NUL separators is malformed-request", "malformed-request" in text, text)


def control_character_cases(prosody, config, report):
    """mod_legacyauth hands passwords over without SASLprep: a line break in
    one would, if written, smuggle a second request onto the socket whose
    verdict would answer the next login. The module refuses such a password
    before writing anything: the smuggled token stays unused, and the
    verdicts stay in step."""
    port = prosody.port
    for name, separator in (("a line feed", "&#10;"), ("a carriage return", "&#13;")):
        hidden = generate(config, f"heidi@{DOMAIN}")
        smuggled = f"x{separator}auth:heidi:{DOMAIN}:{hidden}"
        report.case(f"a legacy-auth password with {name} is refused", "error", legacy_login(port, "heidi", smuggled))
        report.case(f"...nothing of it was written: the token inside it is still unused", True,
                    asyncio.run(login(port, f"heidi@{DOMAIN}", hidden)))
        report.case(f"...and the next wrong password is still refused", False,
                    asyncio.run(login(port, f"heidi@{DOMAIN}", "wrong")))
    valid = generate(config, f"ivan@{DOMAIN}")
    report.case("a legacy-auth login with a valid token works (the module answers it too)", "result",
                legacy_login(port, "ivan", valid))


async def user_exists_cases(prosody, config, report):
    client = await open_session(prosody.port, f"judy@{DOMAIN}", generate(config, f"judy@{DOMAIN}"))
    if client is None:
        report.check("user_exists cases: judy logs in", False)
        return
    try:
        report.case("a message to an offline user of a served domain is kept (isuser: 1)", None,
                    await message_error(client, f"bob@{DOMAIN}"))
        report.case("a message to a user of a domain the daemon does not serve bounces (isuser: 0)",
                    "service-unavailable", await message_error(client, f"bob@{OTHER}"))
    finally:
        await close_session(client)


async def daemon_stopped_cases(prosody, daemon, config, report):
    """SIGSTOP for 2 s: Prosody keeps answering; the login waiting on the
    daemon is refused at xmpp_token_timeout; replies that come late answer
    nobody."""
    port = prosody.port
    client = await open_session(port, f"kim@{DOMAIN}", generate(config, f"kim@{DOMAIN}"))
    if client is None:
        report.check("daemon-stopped cases: kim logs in", False)
        return
    try:
        waiting = generate(config, f"liam@{DOMAIN}")
        freeze(daemon.process)
        stopped_at = time.monotonic()

        async def pings_until(until):
            await asyncio.sleep(0.3)  # a login is now waiting on the stopped daemon
            times = []
            while time.monotonic() < until:
                times.append(await ping(client))
                await asyncio.sleep(0.1)
            return times

        pinger = asyncio.ensure_future(pings_until(stopped_at + 1.9))
        result, took = await timed_login(port, f"liam@{DOMAIN}", waiting)
        report.check(f"a login waiting on the stopped daemon is refused after xmpp_token_timeout ({TIMEOUT} s)",
                     result is False and TIMEOUT * 0.9 <= took < TIMEOUT + 2, f"accepted={result}, after {took:.2f} s")
        # A wrong password written while the daemon is still stopped: when it
        # continues, it answers the timed-out login (1) before this one (0).
        await asyncio.sleep(max(0.0, stopped_at + 1.4 - time.monotonic()))
        auths = prosody.log_text().count("Received[c2s_unauthed]: <auth ")
        queued = asyncio.ensure_future(timed_login(port, f"liam@{DOMAIN}", "wrong"))
        deadline = time.monotonic() + 3
        while prosody.log_text().count("Received[c2s_unauthed]: <auth ") == auths and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        written_at = time.monotonic() - stopped_at
        await asyncio.sleep(max(0.05, stopped_at + 2.0 - time.monotonic()))
        daemon.send(signal.SIGCONT)
        continued_at = time.monotonic() - stopped_at
        pings = await pinger
        report.check("with the daemon stopped, a logged-in client's pings are answered within 0.2 s",
                     all(p is not None and p < 0.2 for p in pings) and len(pings) >= 5,
                     f"ping times {[round(p, 3) if p is not None else None for p in pings]}")
        result, took = await queued
        report.check("a wrong password asked while the daemon is stopped, answered after it continues, is refused "
                     "(the late 1 for the timed-out login answers nobody)",
                     result is False and written_at < continued_at < written_at + TIMEOUT,
                     f"accepted={result}; asked at {written_at:.2f} s, daemon continued at {continued_at:.2f} s")
        report.case("after the daemon continues, a wrong password is refused", False,
                    await login(port, f"liam@{DOMAIN}", "wrong"))
        report.case("...and a valid token is accepted", True,
                    await login(port, f"liam@{DOMAIN}", generate(config, f"liam@{DOMAIN}")))
        report.case("the token that timed out was used by the late daemon: refused now (fail closed)", False,
                    await login(port, f"liam@{DOMAIN}", waiting))
        log = prosody.log_text()
        report.check("the timeout is logged at warn, naming the socket",
                     re.search(rf"\bwarn\s+xmpp-token-auth at {re.escape(str(daemon.socket))} did not answer", log) is not None)
    finally:
        daemon.send(signal.SIGCONT)
        await close_session(client)


async def daemon_restart_cases(prosody, daemon, config, report):
    port = prosody.port
    client = await open_session(port, f"mallory@{DOMAIN}", generate(config, f"mallory@{DOMAIN}"))
    if client is None:
        report.check("daemon-restart cases: mallory logs in", False)
        return
    try:
        for how, sig in (("killed (SIGKILL)", signal.SIGKILL), ("stopped (SIGTERM)", signal.SIGTERM)):
            report.case(f"before the daemon is {how}, logins work", True,
                        await login(port, f"nina@{DOMAIN}", generate(config, f"nina@{DOMAIN}")))
            daemon.stop(sig)
            daemon.start()
            report.case(f"the first login after the daemon was {how} and restarted works, Prosody not restarted", True,
                        await login(port, f"nina@{DOMAIN}", generate(config, f"nina@{DOMAIN}")))
            report.case(f"...and a wrong password after it is refused", False,
                        await login(port, f"nina@{DOMAIN}", "wrong"))

        # The race: the daemon restarts while Prosody is frozen, and a client
        # connects and sends its login after the old connection ended.
        # Prosody 0.12 handles the events of one wake-up newest first, and
        # reads a new client's first bytes as it accepts it, so it reads the
        # login before it learns that the connection to the daemon is dead:
        # the module must notice that before writing on it.
        token = generate(config, f"olga@{DOMAIN}")
        payload = base64.b64encode(f"\0olga\0{token}".encode()).decode()
        log_before = len(prosody.log_text())
        freeze(prosody.process)
        try:
            daemon.stop(signal.SIGKILL)
            daemon.start()
            time.sleep(0.1)
            stream = RawStream(port)  # the kernel accepts it while Prosody is stopped
            stream.send(f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>{payload}</auth>")
            time.sleep(0.1)
        finally:
            prosody.process.send_signal(signal.SIGCONT)
        try:
            text = stream.read_until(rb"<success[^>]*(/>|>.*?</success>)|<failure.*?</failure>").group(0).decode()
        finally:
            stream.close()
        report.check("a login Prosody reads before it notices the daemon's restart still works", text.startswith("<success"), text)
        log = prosody.log_text()[log_before:]
        report.check("...because the module noticed the dead connection before writing on it",
                     "closed the idle connection (closed); reconnecting" in log and "in flight" not in log)

        # Absent: refused at once, with a warning naming the socket.
        daemon.stop()
        result, took = await timed_login(port, f"oscar@{DOMAIN}", generate(config, f"oscar@{DOMAIN}"))
        report.check(f"with the daemon absent, a login is refused at once (within xmpp_token_timeout, {TIMEOUT} s)",
                     result is False and took < TIMEOUT, f"accepted={result}, after {took:.2f} s")
        answered = await ping(client)
        report.check("...and Prosody keeps serving: a logged-in client's ping is answered within 0.2 s",
                     answered is not None and answered < 0.2, f"{answered}")
        report.check("...and the refusal is logged at warn, naming the socket",
                     re.search(rf"\bwarn\s+cannot reach xmpp-token-auth at {re.escape(str(daemon.socket))}",
                               prosody.log_text()) is not None)
        daemon.start()
        report.case("after the daemon is back, logins work again", True,
                    await login(port, f"oscar@{DOMAIN}", generate(config, f"oscar@{DOMAIN}")))
        report.case("the logged-in client stayed connected throughout", True, (await ping(client)) is not None)
    finally:
        await close_session(client)


async def shared_replay_cases(prosody, config, report):
    port = prosody.port
    token = generate(config, f"peggy@{DOMAIN}")
    report.case("the ejabberd-framed stdio helper accepts a fresh token", b"\x00\x02\x00\x01",
                stdio_helper(config, f"auth:peggy:{DOMAIN}:{token}"))
    report.case("...which is then refused through Prosody and the socket (shared replay_store)", False,
                await login(port, f"peggy@{DOMAIN}", token))
    token = generate(config, f"quinn@{DOMAIN}")
    report.case("a token used through Prosody and the socket", True, await login(port, f"quinn@{DOMAIN}", token))
    report.case("...is refused by the ejabberd-framed stdio helper", b"\x00\x02\x00\x00",
                stdio_helper(config, f"auth:quinn:{DOMAIN}:{token}"))


def snippet_cases(work, report):
    """The documented snippet passes `prosodyctl check config` (globally, and
    split as documented: plugin_paths global, authentication per host), and
    the check refuses a broken copy, so it can fail."""
    plugins = work / "plugins"
    text = SNIPPET.read_text()
    report.check("the snippet sets authentication = \"xmpp_token\"",
                 re.search(r'^authentication = "xmpp_token"$', text, re.M) is not None)
    paths = re.findall(r'^plugin_paths = \{ "([^"]+)" \}$', text, re.M)
    report.check("the snippet names one plugin path", len(paths) == 1, f"{paths}")
    text = text.replace(paths[0], str(plugins)) if paths else text
    port = free_port()

    def check(name, config_text):
        path = work / f"check-{name}.cfg.lua"
        path.write_text(config_text)
        out = run(["prosodyctl", "--config", path, "check", "config"], timeout=60)
        return out.returncode, out.stdout + out.stderr

    global_lines = "\n".join(l for l in text.splitlines() if l.startswith("plugin_paths"))
    host_lines = "\n".join(l for l in text.splitlines() if not l.startswith("plugin_paths"))
    variants = {
        "global": base_config(work, port) + text + f'\nVirtualHost "{DOMAIN}"\n',
        "vhost": base_config(work, port) + global_lines + f'\nVirtualHost "{DOMAIN}"\n' + host_lines + "\n",
    }
    for name, config_text in variants.items():
        code, output = check(name, config_text)
        report.check(f"prosodyctl check config passes with the snippet ({name})",
                     "All checks passed" in output, output[-1500:])
    broken = variants["global"].replace('authentication = "xmpp_token"', 'authentication = "xmpp_token')
    code, output = check("broken", broken)
    report.check("prosodyctl check config refuses a broken copy of it", "All checks passed" not in output, output[-500:])


# --------------------------------------------------------------------------


def our_processes(work):
    """Processes whose command line mentions the work folder."""
    found = []
    marker = str(work).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def main():
    if not BIN.exists():
        sys.exit(f"{BIN} does not exist: run cargo build first")
    if os.geteuid() != 0:
        sys.exit("run as root: the test starts Prosody as the prosody user")
    for tool in ("prosody", "prosodyctl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y prosody lua-socket")
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="xta-prosody-"))
    prosody = daemon = None
    try:
        work.chmod(0o755)  # Prosody runs as the prosody user
        (work / "certs").mkdir()
        (work / "plugins").mkdir()
        shutil.copy(MODULE, work / "plugins" / MODULE.name)
        (work / "plugins" / MODULE.name).chmod(0o644)
        for folder in ("prosody", "prosody/data"):
            (work / folder).mkdir()
            shutil.chown(work / folder, PROSODY_USER, PROSODY_USER)
        socket_path = work / "auth.sock"
        config = work / "helper.toml"
        secrets = run([BIN, "gen-secret"], check=True).stdout
        # Keys only for DOMAIN: OTHER is a VirtualHost the daemon does not serve.
        config.write_text(
            f'log = "stderr"\n'
            f'replay_store = "{work}/replay"\n'
            f'socket = "{socket_path}"\n'
            f'socket_group = "{PROSODY_USER}"\n'
            f'socket_mode = "0660"\n'
            f'\n[domains."{DOMAIN}"]\n{secrets}')
        config.chmod(0o600)

        snippet_cases(work, report)

        daemon = Daemon(work, config, socket_path)
        daemon.start()
        report.check("the daemon's socket is group prosody, mode 0660",
                     (socket_path.group(), oct(socket_path.stat().st_mode & 0o777)) == (PROSODY_USER, "0o660"),
                     f"{socket_path.group()} {oct(socket_path.stat().st_mode & 0o777)}")
        prosody = Prosody(work, work / "plugins", socket_path)
        prosody.start()
        print(f"== prosody on 127.0.0.1:{prosody.port}, daemon on {socket_path}", flush=True)
        started = time.monotonic()
        for cases in (basic_cases, user_exists_cases):
            asyncio.run(cases(prosody, config, report))
        sasl_cases(prosody, config, report)
        control_character_cases(prosody, config, report)
        asyncio.run(shared_replay_cases(prosody, config, report))
        asyncio.run(daemon_stopped_cases(prosody, daemon, config, report))
        asyncio.run(daemon_restart_cases(prosody, daemon, config, report))
        print(f"== cases ran in {time.monotonic() - started:.1f} s", flush=True)
        log = prosody.log_text()
        errors = [l for l in log.splitlines() if "auth_xmpp_token" in l and re.search(r"\berror\b", l)]
        report.case("the module logged no error (error is for its own bugs)", [], errors)
        report.check("the module loaded and was used", "now set to use user provider 'xmpp_token'" in log)
    except Exception as error:  # a crash of the harness is a failure too
        report.failed += 1
        print(f"FAIL the harness: {error!r}", flush=True)
    finally:
        if prosody:
            prosody.stop()
        if daemon:
            daemon.stop()
        time.sleep(0.2)
        left = our_processes(work)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        report.case("no process left running after the test", [], left)
        if report.failed:
            for path in (work / "prosody.log", work / "daemon.log"):
                if path.exists():
                    lines = path.read_text(errors="replace").splitlines()
                    print(f"--- {path.name} (last 80 lines)\n" + "\n".join(lines[-80:]))
        if os.environ.get("XTA_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"prosody_e2e: {report.passed} passed, {report.failed} failed")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
