#!/usr/bin/env python3
"""End to end with a real ejabberd and a real XMPP client.

Starts Debian's ejabberd as a plain process (no systemd, no ejabberdctl, no
epmd) on a free loopback port, with xmpp-token-auth as its extauth_program and
the contrib/ejabberd snippet as its authentication settings, then logs in over
SASL PLAIN with slixmpp using tokens from `xmpp-token-auth generate`.

    python3 tests/e2e/ejabberd_e2e.py [path/to/xmpp-token-auth]

Prints one line per case and a closing `N passed, N failed` line; exits 1 if
any case failed, after printing ejabberd's log.
"""

import asyncio
import logging
import os
import re
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

logging.basicConfig(level=logging.CRITICAL)  # slixmpp is chatty on refusals


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def erl_libs():
    """ERL_LIBS as Debian's ejabberdctl sets it."""
    text = Path("/usr/sbin/ejabberdctl").read_text()
    return re.search(r"^ERL_LIBS='([^']*)'", text, re.M).group(1)


class Ejabberd:
    def __init__(self, work, helper_config, pool_size):
        self.work = work
        self.port = free_port()
        self.log = work / f"ejabberd-pool{pool_size}.log"
        snippet = (ROOT / "contrib/ejabberd/ejabberd.yml").read_text()
        snippet = snippet.replace('"/usr/bin/xmpp-token-auth"', f'"{BIN}"')
        assert str(BIN) in snippet
        snippet += f"extauth_pool_size: {pool_size}\n"
        self.config = work / f"ejabberd-pool{pool_size}.yml"
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
            HOME=str(work),
            EJABBERD_CONFIG_PATH=str(self.config),
            EJABBERD_LOG_PATH=str(self.log),
            ERL_LIBS=erl_libs(),
            XMPP_TOKEN_AUTH_CONFIG=str(helper_config),
        )
        self.process = None

    def start(self):
        spool = self.work / f"spool-{self.port}"
        spool.mkdir()
        self.output = open(self.work / f"erl-{self.port}.out", "wb")
        self.process = subprocess.Popen(
            ["erl", "-noinput", "-mnesia", "dir", f'"{spool}"', "-s", "ejabberd"],
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
        for path in (self.log, Path(self.output.name)):
            if path.exists():
                parts.append(f"--- {path.name} (last 60 lines)\n" + "\n".join(path.read_text(errors="replace").splitlines()[-60:]))
        return "\n".join(parts)


async def login(port, jid, password):
    """True if the server accepts the login, False if it refuses it."""
    client = slixmpp.ClientXMPP(jid, password, sasl_mech="PLAIN")
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client["feature_mechanisms"].unencrypted_plain = True
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


def main():
    if not BIN.exists():
        sys.exit(f"{BIN} does not exist: run cargo build first")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="xta-ejabberd-") as tmp:
        work = Path(tmp)
        config = work / "helper.toml"
        secrets = subprocess.run([str(BIN), "gen-secret"], check=True, capture_output=True, text=True).stdout
        config.write_text(secrets + f'log = "stderr"\nreplay_store = "{work}/replay"\n')
        config.chmod(0o600)
        for pool_size, cases in ((1, single_helper_cases), (3, pool_cases)):
            server = Ejabberd(work, config, pool_size)
            try:
                server.start()
                print(f"== ejabberd on 127.0.0.1:{server.port}, extauth_pool_size: {pool_size}")
                before = report.failed
                asyncio.run(cases(server, config, report))
                if report.failed > before:
                    print(server.logs())
            except Exception as error:  # a crash of the harness is a failure too
                report.failed += 1
                print(f"FAIL ejabberd pool {pool_size}: {error!r}")
                print(server.logs())
            finally:
                server.stop()
            time.sleep(0.5)
            leftovers = server.helpers()
            report.case(f"no helper left running after ejabberd (pool {pool_size}) stopped", [], leftovers)
    print(f"ejabberd_e2e: {report.passed} passed, {report.failed} failed, {report.skipped} skipped")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
