#!/usr/bin/env python3
"""The helper logs to syslog (facility authpriv), keeps logging after the
syslog daemon restarts, and never waits for a wedged one (docs/protocol.md §8).

Runs in a private mount namespace, where a fresh /dev holds this script's own
/dev/log datagram socket standing in for the syslog daemon:

    unshare --mount --propagation private python3 tests/e2e/syslog_restart.py BIN
"""

import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.argv[1]).resolve()
LOG_AUTHPRIV = 10 << 3
LOG_INFO, LOG_NOTICE = 6, 5
passed = failed = 0


def check(what, expected, actual):
    global passed, failed
    if expected == actual:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}: expected {expected!r}, got {actual!r}")


def private_dev():
    """A tmpfs over /dev, visible to this namespace only, with the few
    devices the helper and Python need bound in from the real one."""
    old = tempfile.mkdtemp(prefix="olddev-")
    subprocess.run(["mount", "--rbind", "/dev", old], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/dev"], check=True)
    for name in ("null", "zero", "urandom", "random"):
        Path("/dev", name).touch()
        subprocess.run(["mount", "--bind", f"{old}/{name}", f"/dev/{name}"], check=True)


def syslog_daemon():
    if os.path.exists("/dev/log"):
        os.unlink("/dev/log")
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    daemon.bind("/dev/log")
    daemon.settimeout(5)
    return daemon


def received(daemon, wanted):
    """Log lines until one containing `wanted` (or a time-out)."""
    lines = []
    try:
        while not any(wanted in line for line in lines):
            lines.append(daemon.recv(65536).decode(errors="replace"))
    except socket.timeout:
        pass
    return lines


def frame(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def ask(helper, text, timeout=10):
    helper.stdin.write(frame(text))
    helper.stdin.flush()
    if not select.select([helper.stdout], [], [], timeout)[0]:
        return None
    return helper.stdout.read(4)


def wedged_daemon(config):
    """A syslog daemon that stopped reading: its socket's queue fills up. The
    helper must keep answering at full speed, and say later what it lost."""
    daemon = syslog_daemon()
    helper = subprocess.Popen([str(BIN), "--config", str(config)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    slowest = 0.0
    answered = 0
    for i in range(10000):
        started = time.monotonic()
        reply = ask(helper, f"isuser:user{i}:example.org", timeout=5)
        slowest = max(slowest, time.monotonic() - started)
        if reply != b"\x00\x02\x00\x01":
            break
        answered += 1
    check("10 000 requests answered while syslog reads nothing", 10000, answered)
    check("none waited on the log (slowest under 0.5 s)", True, slowest < 0.5)
    print(f"     slowest reply: {slowest * 1000:.1f} ms")
    # The daemon drains its queue; the next line tells what was dropped.
    daemon.setblocking(False)
    try:
        while daemon.recv(65536):
            pass
    except BlockingIOError:
        pass
    daemon.settimeout(5)
    ask(helper, "isuser:after:example.org")
    lines = received(daemon, "isuser after@example.org")
    dropped = [line for line in lines if "log lines were dropped" in line]
    check("then one line says how many were dropped", 1, len(dropped))
    helper.stdin.close()
    check("the helper exits 0", 0, helper.wait(10))
    daemon.close()


def main():
    if os.geteuid() != 0:
        sys.exit("needs root in a private mount namespace (see the docstring)")
    private_dev()
    work = Path(tempfile.mkdtemp(prefix="xta-syslog-"))
    config = work / "config.toml"
    secrets = subprocess.run([str(BIN), "gen-secret"], check=True, capture_output=True, text=True).stdout
    config.write_text(secrets)  # log = "syslog" is the default
    config.chmod(0o600)
    token = subprocess.run([str(BIN), "--config", str(config), "generate", "alice@example.org"],
                           check=True, capture_output=True, text=True).stdout.strip()

    daemon = syslog_daemon()
    helper = subprocess.Popen([str(BIN), "--config", str(config)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check("auth is answered", b"\x00\x02\x00\x01", ask(helper, f"auth:alice:example.org:{token}"))
    lines = received(daemon, "auth alice@example.org: accepted")
    seen = list(lines)
    accepted = [line for line in lines if "auth alice@example.org: accepted" in line]
    check("the decision reaches syslog", 1, len(accepted))
    check("at facility authpriv, level info, as xmpp-token-auth[pid]",
          f"<{LOG_AUTHPRIV | LOG_INFO}>", accepted[0][:4] if accepted else None)
    check("with ident and pid", True, bool(accepted) and f"xmpp-token-auth[{helper.pid}]:" in accepted[0])

    # The daemon restarts: its socket is replaced by a new one.
    daemon.close()
    daemon = syslog_daemon()
    check("auth is answered after the restart", b"\x00\x02\x00\x00",
          ask(helper, f"auth:alice:example.org:{token}"))
    lines = received(daemon, "refused (token was already used)")
    seen += lines
    replay = [line for line in lines if "auth alice@example.org: refused (token was already used)" in line]
    check("the next decision reaches the restarted daemon", 1, len(replay))
    check("refusals are logged at level notice", f"<{LOG_AUTHPRIV | LOG_NOTICE}>", replay[0][:4] if replay else None)
    secret_parts = [token.split(" ")[1], token[:8]] + [v.split('"')[1] for v in secrets.splitlines()]
    check("no token, secret or seed in any log line", [], [p for p in secret_parts for line in seen if p in line])

    helper.stdin.close()
    check("the helper exits 0 at end of input", 0, helper.wait(10))
    check("nothing on stderr", b"", helper.stderr.read())
    daemon.close()

    wedged_daemon(config)
    print(f"syslog_restart: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
