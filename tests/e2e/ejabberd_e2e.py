#!/usr/bin/env python3
"""End to end with a real ejabberd and a real XMPP client.

Starts Debian's ejabberd as a plain process (no systemd, no ejabberdctl, no
epmd) on a free loopback port, with xmpp-token-auth as its extauth_program and
the contrib/ejabberd snippet as its authentication settings, then logs in over
SASL PLAIN with slixmpp using tokens from `xmpp-token-auth generate`.

Run as root (as CI does), ejabberd and so its helpers run as the Debian
package's user `ejabberd` (through setpriv), with their folders owned by it
and the helper's configuration readable by its group, as installed; a
further server then starts with a key file that user cannot read, checks
that the pool stays up refusing without a restart storm, and that fixing the
file's permissions heals it without restarting anything.

    python3 tests/e2e/ejabberd_e2e.py [path/to/xmpp-token-auth]

Prints one line per case and a closing `N passed, N failed` line; exits 1 if
any case failed, after printing ejabberd's log.
"""

import asyncio
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import slixmpp

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/debug/xmpp-token-auth").resolve()
DOMAIN = "localhost"
LOGIN_TIMEOUT = 10  # ejabberd gives a silent helper 30 s: fail well before that
HEAL_WITHIN = 10  # the helper retries every 5 s, and at once when a file changes
SERVER_USER = "ejabberd"  # the Debian package's user
AS_ROOT = os.geteuid() == 0
if AS_ROOT:
    try:
        _account = pwd.getpwnam(SERVER_USER)
    except KeyError:
        sys.exit(f"no user {SERVER_USER}: install Debian's ejabberd package")
    SERVER_UID, SERVER_GID = _account.pw_uid, _account.pw_gid
    AS_SERVER_USER = ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_GID}", "--init-groups", "--"]
else:  # not root: everything runs as ourselves
    SERVER_UID, SERVER_GID = os.geteuid(), os.getegid()
    AS_SERVER_USER = []
RESTART_LINES = re.compile(r"external authentication program|reached_max_restart_intensity", re.I)

logging.basicConfig(level=logging.CRITICAL)  # slixmpp is chatty on refusals


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own(path, mode, uid=0, gid=None):
    """chown (when root) and chmod: root:ejabberd by default, as installed."""
    if AS_ROOT:
        os.chown(path, uid, SERVER_GID if gid is None else gid)
    os.chmod(path, mode)


def syslog_listens():
    """Whether a syslog daemon takes the helper's log: then its lines are not
    on stderr, and the checks that read them are skipped."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect("/dev/log")
            return True
        except OSError:
            return False


def uid_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Uid in /proc/{pid}/status")


def erl_libs():
    """ERL_LIBS as Debian's ejabberdctl sets it."""
    text = Path("/usr/sbin/ejabberdctl").read_text()
    return re.search(r"^ERL_LIBS='([^']*)'", text, re.M).group(1)


class Ejabberd:
    def __init__(self, work, name, helper_config, pool_size):
        self.work = work / f"ejabberd-{name}"  # HOME, spool and logs, owned by the server's user
        self.work.mkdir()
        self.pool_size = pool_size
        self.port = free_port()
        self.log = self.work / "ejabberd.log"
        snippet = (ROOT / "contrib/ejabberd/ejabberd.yml").read_text()
        snippet = snippet.replace('"/usr/bin/xmpp-token-auth"', f'"{BIN}"')
        assert str(BIN) in snippet
        snippet += f"extauth_pool_size: {pool_size}\n"
        self.config = self.work / "ejabberd.yml"
        self.config.write_text(f"""
hosts: ["{DOMAIN}"]
loglevel: info
certfiles: []
acme: {{auto: false}}
listen:
  - port: {self.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
modules:
  mod_roster: {{}}
{snippet}
""")
        self.env = dict(
            os.environ,
            HOME=str(self.work),
            EJABBERD_CONFIG_PATH=str(self.config),
            EJABBERD_LOG_PATH=str(self.log),
            ERL_LIBS=erl_libs(),
            XMPP_TOKEN_AUTH_CONFIG=str(helper_config),
        )
        self.process = None

    def start(self):
        spool = self.work / "spool"
        spool.mkdir()
        for path in (self.work, spool, self.config):
            own(path, 0o750 if path.is_dir() else 0o640, SERVER_UID, SERVER_GID)
        # erl's stdout and stderr, which the helpers inherit: their stderr.
        self.output = open(self.work / "erl.out", "wb")
        self.process = subprocess.Popen(
            AS_SERVER_USER + ["erl", "-noinput", "-mnesia", "dir", f'"{spool}"', "-s", "ejabberd"],
            cwd=spool, env=self.env, stdin=subprocess.DEVNULL,
            stdout=self.output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ejabberd exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("ejabberd did not listen within 120 s")

    def helpers(self):
        """PIDs of the helpers this ejabberd started. Erlang starts port
        programs in sessions of their own, so they are found by their binary
        and the configuration path in their environment."""
        marker = f"XMPP_TOKEN_AUTH_CONFIG={self.env['XMPP_TOKEN_AUTH_CONFIG']}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if (proc.name.isdigit() and Path(os.readlink(proc / "exe")) == BIN
                        and marker in (proc / "environ").read_bytes().split(b"\0")):
                    found.append(int(proc.name))
            except OSError:
                continue  # gone, or not ours to read
        return sorted(found)

    def wait_helpers(self, count, within=10):
        deadline = time.time() + within
        while len(self.helpers()) != count and time.time() < deadline:
            time.sleep(0.1)
        return self.helpers()

    def restart_lines(self):
        """How many lines of ejabberd's log tell of a helper that ended
        ("Failed to start external authentication program", "... has
        terminated unexpectedly"), of a pool that ejabberd gave up on
        (reached_max_restart_intensity), or of a call to a pool that is gone
        ("External authentication program failed ..."); and the first few."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        lines = [line.strip() for line in text.splitlines() if RESTART_LINES.search(line)]
        return {"lines": len(lines), "first": lines[:3]}

    def helper_stderr(self):
        """What the helpers wrote on stderr (inherited from erl)."""
        self.output.flush()
        return [line for line in Path(self.output.name).read_text(errors="replace").splitlines()
                if line.startswith("xmpp-token-auth:")]

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.output.close()

    def logs(self):
        parts = []
        for path in sorted(self.work.glob("*.log")) + [Path(self.output.name)]:
            if path.exists():
                parts.append(f"--- {path.name} (last 60 lines)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-60:]))
        return "\n".join(parts)


async def login(port, jid, password):
    """True if the server accepts the login, False if it refuses it."""
    client = slixmpp.ClientXMPP(jid, password, sasl_mech="PLAIN")
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    outcome = asyncio.get_running_loop().create_future()

    async def started(_):
        try:
            await client.get_roster()  # a real round trip on the session
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
        return await asyncio.wait_for(outcome, LOGIN_TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"no answer within {LOGIN_TIMEOUT} s: the helper did not reply")
    finally:
        client.disconnect()
        await asyncio.sleep(0.05)


def generate(helper_config, jid, *extra):
    return subprocess.run([str(BIN), "--config", str(helper_config), "generate", jid, *extra],
                          check=True, capture_output=True, text=True).stdout.strip()


class Report:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def case(self, name, expected, actual):
        if expected == actual:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: expected {expected}, got {actual}")

    def skip(self, name, why):
        self.skipped += 1
        print(f"skip {name}: {why}")


async def single_helper_cases(server, config, report):
    port = server.port
    token = generate(config, f"alice@{DOMAIN}")
    report.case("a fresh token logs in (session and roster)", True, await login(port, f"alice@{DOMAIN}", token))
    report.case("the same token again is refused", False, await login(port, f"alice@{DOMAIN}", token))

    bobs = generate(config, f"bob@{DOMAIN}")
    report.case("a token for another user is refused", False, await login(port, f"alice@{DOMAIN}", bobs))
    report.case("...and still logs its own user in", True, await login(port, f"bob@{DOMAIN}", bobs))

    fresh = generate(config, f"alice@{DOMAIN}")
    otp_nonce, signature = fresh.split(" ")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    report.case("a tampered signature is refused", False, await login(port, f"alice@{DOMAIN}", f"{otp_nonce} {flipped}"))

    expired = generate(config, f"alice@{DOMAIN}", "--at", str(int(time.time()) - 300))
    report.case("an expired token is refused", False, await login(port, f"alice@{DOMAIN}", expired))
    report.case("a wrong password is refused", False, await login(port, f"alice@{DOMAIN}", "hunter2"))
    report.case("a password with ':' is refused", False, await login(port, f"alice@{DOMAIN}", f"{fresh}:x:y"))
    report.case("...and the next valid login still works", True, await login(port, f"alice@{DOMAIN}", fresh))

    # ejabberd lower-cases the user before asking: tokens sign the lower-case JID.
    carols = generate(config, f"carol@{DOMAIN}")
    report.case("a user typed in capitals logs in with the lower-case token", True, await login(port, f"Carol@{DOMAIN}", carols))


async def pool_cases(server, config, report):
    tokens = [generate(config, f"user{i}@{DOMAIN}") for i in range(8)]
    results = [await login(server.port, f"user{i}@{DOMAIN}", t) for i, t in enumerate(tokens)]
    report.case("extauth_pool_size: 3 runs three helpers", 3, len(server.helpers()))
    report.case("with a pool of helpers, 8 fresh tokens all log in", [True] * 8, results)
    # ejabberd picks a helper per request, so most replays reach a helper
    # other than the one that accepted the token: only the shared store
    # (replay_store, set in the helper's configuration) can refuse them.
    replays = [await login(server.port, f"user{i}@{DOMAIN}", t) for i, t in enumerate(tokens)]
    report.case("with replay_store, every replay is refused whichever helper gets it", [False] * 8, replays)


async def unreadable_key_cases(server, config, report, secret):
    """The helper's key file is root's, mode 0600: the helpers, running as
    the server's user, cannot read it. Until the helper stayed up, each one
    exited at start and ejabberd 23.01 restarted it in a storm (with this
    pool of 3: 47 "Failed to start external authentication program" and 12
    `reached_max_restart_intensity` in 0.35 s) until it stopped the pool:
    every login then failed as "disconnected" until ejabberd restarted."""
    pool = server.pool_size
    logs_on_stderr = not syslog_listens()
    started = server.wait_helpers(pool)
    report.case(f"an unreadable key file: the pool's {pool} helpers start", pool, len(started))
    seen, counts = set(started), set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        now = server.helpers()
        seen.update(now)
        counts.add(len(now))
        await asyncio.sleep(0.1)
    report.case("...and stay up: the same processes over 3 s, never restarted",
                {"processes": started, "counts": [pool]}, {"processes": sorted(seen), "counts": sorted(counts)})

    tokens = [generate(config, f"locked{i}@{DOMAIN}") for i in range(2 * pool)]
    began = time.monotonic()
    refused = [await login(server.port, f"locked{i}@{DOMAIN}", t) for i, t in enumerate(tokens)]
    print(f"     {len(refused)} logins answered in {time.monotonic() - began:.1f} s")
    report.case(f"...every login is refused, each helper answering ({2 * pool} fresh tokens)", [False] * (2 * pool), refused)
    report.case("...the helpers are still the same processes after refusing", started, server.helpers())
    report.case("ejabberd's log: no helper ended, no reached_max_restart_intensity",
                {"lines": 0, "first": []}, server.restart_lines())
    if logs_on_stderr:
        lines = server.helper_stderr()
        why = [line for line in lines if f"cannot read {secret}: Permission denied" in line]
        report.case("each helper logged why (cannot read the key file: Permission denied)", True, len(why) >= pool)
        alarms = [line for line in lines if "refused (no usable configuration" in line]
        report.case(f"the {2 * pool} refusals are a rate-limited alarm: 1 to {pool} lines, one per helper at most",
                    True, 1 <= len(alarms) <= pool)
        leaked = [line for line in lines if secret.read_text().strip() in line or any(t in line for t in tokens)]
        report.case("no secret and no token in the helpers' log", [], leaked)
    else:
        report.skip("the helpers' log lines", "a syslog daemon listens on /dev/log: they went there")

    # The fix: readable by the server's group, as the package installs keys.
    own(secret, 0o640)
    fixed = time.monotonic()
    healed, attempt = False, 0
    while not healed and time.monotonic() - fixed < HEAL_WITHIN + 5:
        attempt += 1
        healed = await login(server.port, f"healed{attempt}@{DOMAIN}", generate(config, f"healed{attempt}@{DOMAIN}"))
        if not healed:
            await asyncio.sleep(0.2)
    took = time.monotonic() - fixed
    print(f"     {'healed' if healed else 'still refusing'} {took:.1f} s after chmod 0640 + chgrp {SERVER_USER}, "
          f"at login attempt {attempt}")
    report.case(f"after chmod 0640 and chgrp {SERVER_USER}, a fresh token logs in within {HEAL_WITHIN} s",
                True, healed and took <= HEAL_WITHIN)
    # Each helper looks at its files once a second while idle and after each
    # request, but answers the request that wakes it with what it had: give
    # every helper its look before asking each of them.
    await asyncio.sleep(max(0.0, fixed + 2 - time.monotonic()))
    tokens = [generate(config, f"after{i}@{DOMAIN}") for i in range(2 * pool)]
    report.case(f"...through every helper of the pool ({2 * pool} fresh tokens)", [True] * (2 * pool),
                [await login(server.port, f"after{i}@{DOMAIN}", t) for i, t in enumerate(tokens)])
    report.case("...and their replays are refused (the replay store opened on healing)", [False] * (2 * pool),
                [await login(server.port, f"after{i}@{DOMAIN}", t) for i, t in enumerate(tokens)])
    report.case("...without restarting ejabberd or any helper",
                {"ejabberd running": True, "helpers": pool, "the ones started first": True},
                {"ejabberd running": server.process.poll() is None, "helpers": len(server.helpers()),
                 "the ones started first": server.helpers() == started})
    report.case("ejabberd's log after healing: still no helper ended", {"lines": 0, "first": []}, server.restart_lines())
    if logs_on_stderr:
        usable = [line for line in server.helper_stderr() if "usable again" in line]
        report.case("each helper logged that its configuration is usable again", pool, len(usable))


def main():
    global BIN
    if not BIN.exists():
        sys.exit(f"{BIN} does not exist: run cargo build first")
    report = Report()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xta-ejabberd-") as tmp:
        work = Path(tmp)
        own(work, 0o750)
        # A copy, so that a `cargo build` meanwhile neither changes the helper
        # under test nor hides the running helpers (their exe "(deleted)").
        BIN = Path(shutil.copy2(BIN, work / BIN.name))
        state = work / "state"  # the replay stores' folder, as /var/lib/xmpp-token-auth
        state.mkdir()
        own(state, 0o2770)
        secrets = subprocess.run([str(BIN), "gen-secret"], check=True, capture_output=True, text=True).stdout
        config = work / "helper.toml"
        config.write_text(secrets + f'log = "stderr"\nreplay_store = "{state}/replay"\n')
        own(config, 0o640)  # root:ejabberd, as the package installs it
        keys = work / "keys"
        keys.mkdir()
        own(keys, 0o755, 0, 0)
        secret = keys / "token_secret"
        secret.write_text(re.search(r'^token_secret = "(.*)"$', secrets, re.M).group(1) + "\n")
        own(secret, 0o600, 0, 0)  # root's alone: the server's user cannot read it
        keyfile_config = work / "helper-keyfile.toml"
        keyfile_config.write_text(
            re.sub(r"^token_secret = .*$", f'token_secret_file = "{secret}"', secrets, flags=re.M)
            + f'log = "stderr"\nreplay_store = "{state}/replay-keyfile"\n')
        own(keyfile_config, 0o640)
        runs = [("pool1", config, 1, single_helper_cases), ("pool3", config, 3, pool_cases)]
        if AS_ROOT:
            runs.append(("unreadable-key", keyfile_config, 3,
                         lambda server, config, report: unreadable_key_cases(server, config, report, secret)))
        else:
            report.skip("an unreadable key file", f"run as root, so that ejabberd runs as {SERVER_USER}")
        for name, helper_config, pool_size, cases in runs:
            server = Ejabberd(work, name, helper_config, pool_size)
            try:
                server.start()
                print(f"== ejabberd on 127.0.0.1:{server.port} as {pwd.getpwuid(SERVER_UID).pw_name}, "
                      f"extauth_pool_size: {pool_size} ({name})")
                before = report.failed
                helpers = server.wait_helpers(pool_size)
                report.case(f"ejabberd and its {pool_size} helper(s) run as {pwd.getpwuid(SERVER_UID).pw_name}",
                            {"helpers": pool_size, "uids": {SERVER_UID}},
                            {"helpers": len(helpers), "uids": {uid_of(pid) for pid in [server.process.pid, *helpers]}})
                asyncio.run(cases(server, helper_config, report))
                if report.failed > before:
                    print(server.logs())
            except Exception as error:  # a crash of the harness is a failure too
                report.failed += 1
                print(f"FAIL ejabberd {name}: {error!r}")
                print(server.logs())
            finally:
                server.stop()
            time.sleep(0.5)
            leftovers = server.helpers()
            report.case(f"no helper left running after ejabberd ({name}) stopped", [], leftovers)
    print(f"ejabberd_e2e: {report.passed} passed, {report.failed} failed, {report.skipped} skipped "
          f"({time.monotonic() - began:.0f} s)")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
