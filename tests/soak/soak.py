#!/usr/bin/env python3
"""Soak test: mixed valid, replayed, malformed and hostile requests at full
speed through the real binary, for a given number of seconds, with the replay
memory driven to its bound.

Two targets run at once, each in a driver process of its own:

  pipe    one helper speaking ejabberd's framing over pipes (2-byte big-endian
          lengths; replies 00 02 00 01 / 00 02 00 00);
  socket  one `xmpp-token-auth listen` daemon, with several persistent
          connections pipelining the line protocol, plus connections opened
          and closed every round (short, half-closed, cut mid-request, written
          a byte at a time, dropped without reading their replies).

Every reply is checked against an independent model written here: tokens are
minted by this script's own TOTP (HMAC-SHA1) and HMAC-SHA256 code, valid or
invalid by construction, and a replay model keyed by (user, server, OTP,
nonce) with the bound of `replay_cache_size`. The configuration uses
otp_interval = 10 and otp_window = 0, so that a token is remembered until
(step + 2) * 10, at most 20 s, and the memory fills and empties over and over:

  * a token minted for step m is valid exactly while floor(now / 10) == m;
  * accepted, it is remembered until (m + w + 1) * I + I * (2w + 1), so the
    live entries at step s are those accepted in steps s - 1 and s;
  * a fresh token is refused when the live count has reached the capacity.

Requests whose verdict depends on the time (a token of the current step not
remembered) are only sent while there are more than --guard seconds left in
the step, and such a round must end before the step does (else it is a
failure: a reply took that long). Rounds are barriers: within a round on
several connections, fresh tokens either all fit in the room left or the
memory is full before the round starts, so their verdicts do not depend on
how the daemon interleaves connections; a token raced on two connections must
be accepted exactly once.

Resources: VmRSS, the number of open descriptors and of threads are sampled
from /proc every half second; after the first 20 % of the run (the warm-up)
they must stay flat (RSS within +10 % or --rss-slack KiB of the warm-up value,
whichever is larger; descriptors and threads equal to it once closed
connections have been reaped).

Usage:
  python3 tests/soak/soak.py --seconds 25 --bin target/release/xmpp-token-auth
  python3 tests/soak/soak.py --seconds 1800 --bin target/release/xmpp-token-auth

It prints a table, then `N passed, M failed`, and exits 1 on any failure.
Nothing but this machine is involved: a pipe, and a Unix socket in a
temporary folder.
"""

import argparse
import base64
import grp
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

SECRET = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
SEED = "XVGR73KMZH2M4XMY"
OTHER_SECRET = "soak: the secret of other.example only"
DOMAIN = "example.org"
OTHER = "other.example"
OTP_DIGITS = 8
NONCE_DIGITS = 32
MAX_REQUEST = 65535

TRUE_EJ, FALSE_EJ = b"\x00\x02\x00\x01", b"\x00\x02\x00\x00"
TRUE_LINE, FALSE_LINE = b"1\n", b"0\n"

# How many fresh tokens each step may try to have accepted, in turn, as a
# fraction of the capacity. Until the memory has been full once, a step tries
# for more than the capacity (the bound must be reached and overrun even in a
# short run); then pairs of consecutive steps sum to between 0.85 and 1.7 of
# the capacity: sometimes held at 85-90 % without refusals, sometimes full
# with fresh tokens refused.
FIRST_FILL = 1.25
FILL_CYCLE = [0.45, 0.45, 0.6, 0.3, 0.55, 0.35, 0.5, 1.2]

# Request kinds and their weights in the mix. Kinds in TIMED depend on the
# time (and the replay memory's state); the others get the same verdict
# whatever the time (a replay of an accepted token is refused as a replay, or
# later as outside the window). STATELESS kinds never change the replay memory and are never
# accepted, so nothing in the log depends on whether they were read (used on
# connections whose replies are never read).
WEIGHTS = {
    "valid": 24,
    "valid-unpadded": 4,
    "double": 3,
    "race": 3,
    "replay": 12,
    "replay-respelled": 3,
    "expired": 5,
    "future": 2,
    "other-user": 4,
    "other-domain": 3,
    "wrong-case": 2,
    "tampered": 4,
    "wrong-nonce-length": 4,
    "colon-in-password": 3,
    "colon-in-user": 1,
    "invalid-utf8": 3,
    "nul": 3,
    "whitespace": 2,
    "garbage": 5,
    "empty": 1,
    "isuser": 3,
    "isuser-malformed": 1,
    "account-change": 2,
    "unknown-command": 2,
    "over-long": 0.05,
}
TIMED = {"valid", "valid-unpadded", "double", "race"}
STATELESS = [
    k
    for k in WEIGHTS
    if k not in TIMED and k not in ("replay", "replay-respelled", "over-long", "isuser")
]


# ---------------------------------------------------------------------------
# Tokens, minted independently of the helper's code.


def b32decode(seed):
    text = seed.upper().replace(" ", "").replace("=", "")
    return base64.b32decode(text + "=" * ((8 - len(text) % 8) % 8))


class Minter:
    def __init__(self, interval):
        self.interval = interval
        self.seed = b32decode(SEED)
        self.codes = {}

    def otp(self, step):
        code = self.codes.get(step)
        if code is None:
            mac = hmac.new(self.seed, struct.pack(">Q", step), hashlib.sha1).digest()
            offset = mac[-1] & 15
            value = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % (
                10**OTP_DIGITS
            )
            code = str(value).zfill(OTP_DIGITS)
            if len(self.codes) > 4096:
                self.codes.clear()
            self.codes[step] = code
        return code

    @staticmethod
    def secret(server):
        return (OTHER_SECRET if server == OTHER else SECRET).encode()

    def token(self, user, server, nonce, step, secret=None):
        otp = self.otp(step)
        key = secret if secret is not None else self.secret(server)
        mac = hmac.new(key, f"{otp}{nonce}{user}@{server}".encode(), hashlib.sha256)
        return otp, f"{otp}{nonce} {base64.b64encode(mac.digest()).decode()}"


# ---------------------------------------------------------------------------
# The replay model.


class Model:
    """What the helper must remember: key -> remembered until, and how many
    entries are live, bounded by the capacity."""

    def __init__(self, capacity, interval, window):
        self.capacity = capacity
        self.interval = interval
        self.window = window
        self.remembered = {}  # (user, server, otp, nonce) -> until
        self.by_until = {}  # until -> number of entries
        self.pruned_at = None

    def until(self, step):
        i, w = self.interval, self.window
        return (step + w + 1) * i + i * (2 * w + 1)

    def valid(self, step, now_step):
        return abs(now_step - step) <= self.window

    def prune(self, now_step):
        if self.pruned_at == now_step:
            return
        self.pruned_at = now_step
        limit = now_step * self.interval  # live iff until > any time in the step
        for until in [u for u in self.by_until if u <= limit]:
            del self.by_until[until]
        self.remembered = {k: u for k, u in self.remembered.items() if u > limit}

    def live(self, now_step):
        self.prune(now_step)
        return sum(self.by_until.values())

    def is_remembered(self, key, now_step):
        until = self.remembered.get(key)
        return until is not None and until > now_step * self.interval

    def decide(self, key, step, now_step):
        """The verdict for a correctly signed token of `step` presented in
        `now_step`, recording it when accepted: (verdict, outcome)."""
        if not self.valid(step, now_step):
            return False, "refused: OTP outside window"
        if self.is_remembered(key, now_step):
            return False, "refused: replayed"
        if self.live(now_step) >= self.capacity:
            return False, "refused: memory full"
        until = self.until(step)
        self.remembered[key] = until
        self.by_until[until] = self.by_until.get(until, 0) + 1
        return True, "accepted"


# ---------------------------------------------------------------------------
# Requests.


class Expect:
    __slots__ = ("kind", "verdict", "race", "outcome", "body")

    def __init__(self, kind, verdict, outcome, body, race=None):
        self.kind, self.verdict, self.outcome = kind, verdict, outcome
        self.body, self.race = body, race


class Generator:
    def __init__(self, rng, args, model, line):
        self.rng = rng
        self.args = args
        self.model = model
        self.minter = Minter(args.interval)
        self.line = line  # line protocol (socket) or ejabberd frames (pipe)
        self.kinds = list(WEIGHTS)
        self.weights = [WEIGHTS[k] for k in self.kinds]
        self.counter = 0
        self.history = []  # recent correctly signed tokens, for replays
        self.pending_history = []
        self.step = None
        self.steps_seen = 0
        self.fill_budget = 0
        self.accepted_in_step = 0
        self.ever_full = False
        self.max_live = 0
        self.full_steps = set()
        self.near_steps = 0  # steps that ended at 85 % or more of the bound, never full
        self.step_max_live = 0
        self.race_id = 0

    # Per round.
    def start_round(self, t):
        i = self.args.interval
        s = int(t) // i
        if s != self.step:
            if self.step is not None and self.step not in self.full_steps \
                    and self.step_max_live >= 0.85 * self.model.capacity:
                self.near_steps += 1
            self.step_max_live = 0
            self.step = s
            self.steps_seen += 1
            self.accepted_in_step = 0
            factor = FIRST_FILL if not self.ever_full else FILL_CYCLE[self.steps_seen % len(FILL_CYCLE)]
            self.fill_budget = int(self.model.capacity * factor)
        self.history.extend(self.pending_history)
        self.pending_history = []
        if len(self.history) > 20000:
            del self.history[:10000]
        self.timed_ok = (t - s * i) <= i - self.args.guard
        live = self.model.live(s)
        self.room = self.model.capacity - live
        if self.room <= 0:
            self.ever_full = True
            self.full_steps.add(s)
        if not self.timed_ok:
            self.fresh_left = 0
        elif self.room > 0:
            self.fresh_left = max(0, min(self.room, self.fill_budget - self.accepted_in_step))
        else:
            # Full: fresh tokens go on arriving, and must all be refused.
            self.fresh_left = 10**9 if self.accepted_in_step < self.fill_budget else 0
        self.timed = False  # whether this round holds requests that depend on the time
        self.max_live = max(self.max_live, live)
        self.step_max_live = max(self.step_max_live, live)

    def end_round(self):
        live = self.model.live(self.step)
        self.max_live = max(self.max_live, live)
        self.step_max_live = max(self.step_max_live, live)

    # Helpers.
    def nonce(self, digits=NONCE_DIGITS):
        self.counter += 1
        if digits == NONCE_DIGITS:
            return f"{self.rng.getrandbits(40):013d}{self.counter:019d}"
        return "".join(self.rng.choice("0123456789") for _ in range(digits))

    def user(self):
        return f"user{self.rng.randrange(1000)}"

    def server(self):
        return OTHER if self.rng.random() < 0.25 else DOMAIN

    def frame(self, body):
        if self.line:
            body = body.replace(b"\n", b"_")
            return body + (b"\r\n" if self.rng.random() < 0.1 else b"\n")
        assert len(body) <= MAX_REQUEST
        return struct.pack(">H", len(body)) + body

    @staticmethod
    def auth(user, server, password):
        return f"auth:{user}:{server}:{password}".encode()

    def fresh(self, kind, unpadded=False):
        """A token for the current step, and its expected verdict."""
        user, server, nonce = self.user(), self.server(), self.nonce()
        otp, token = self.minter.token(user, server, nonce, self.step)
        if unpadded:
            token = token.rstrip("=")
        key = (user, server, otp, nonce)
        verdict, outcome = self.model.decide(key, self.step, self.step)
        self.fresh_left -= 1
        self.timed = True
        if verdict:
            self.accepted_in_step += 1
        self.pending_history.append((user, server, otp, nonce, token, self.step))
        body = self.auth(user, server, token)
        return key, body, Expect(kind, verdict, outcome, body)

    # One request (or two, for "double" and "race"): [(connection offset, frame, Expect)].
    def make(self, stateless=False):
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        if stateless and kind not in STATELESS:
            kind = rng.choice(STATELESS)
        if kind in TIMED and self.fresh_left <= 0:
            kind = "replay" if rng.random() < 0.5 else "expired"
        if kind == "race" and not self.line:
            kind = "double"
        s = self.step
        if kind in ("valid", "valid-unpadded"):
            _, body, e = self.fresh(kind, unpadded=kind == "valid-unpadded")
            return [(0, self.frame(body), e)]
        if kind == "double":
            _, body, e = self.fresh(kind)
            again = Expect(kind, False, "refused: replayed" if e.verdict else e.outcome, body)
            return [(0, self.frame(body), e), (0, self.frame(body), again)]
        if kind == "race":
            # The same fresh token on two connections in one round: accepted
            # exactly once if there is room, else refused on both.
            _, body, e = self.fresh(kind)
            self.race_id += 1
            rid = (self.race_id, 1 if e.verdict else 0)
            outcome = "race: accepted on one of two" if e.verdict else "race: memory full, refused on both"
            a = Expect(kind, None, outcome, body, race=rid)
            b = Expect(kind, None, outcome, body, race=rid)
            return [(0, self.frame(body), a), (1, self.frame(body), b)]
        if kind in ("replay", "replay-respelled"):
            if not self.history:
                kind = "expired"
            else:
                user, server, otp, nonce, token, m = rng.choice(self.history)
                if kind == "replay-respelled":
                    # The other spelling of the same token: "=" padding is optional.
                    token = token.rstrip("=") if token.endswith("=") else token + "="
                key = (user, server, otp, nonce)
                body = self.auth(user, server, token)
                if self.model.is_remembered(key, s) or not self.model.valid(m, s):
                    verdict, outcome = self.model.decide(key, m, s)
                    assert not verdict
                    return [(0, self.frame(body), Expect(kind, False, outcome, body))]
                # Valid now and not remembered (it was refused while the memory
                # was full): a fresh attempt, if the round allows one.
                if self.fresh_left <= 0:
                    kind = "expired"
                else:
                    verdict, outcome = self.model.decide(key, m, s)
                    self.fresh_left -= 1
                    self.timed = True
                    if verdict:
                        self.accepted_in_step += 1
                    return [(0, self.frame(body), Expect(kind, verdict, outcome, body))]
        body, verdict, outcome = self.hostile(kind)
        return [(0, self.frame(body), Expect(kind, verdict, outcome, body))]

    def hostile(self, kind):
        """(body, verdict, outcome) for a kind whose verdict does not depend
        on the time or on the replay memory."""
        rng, s, w = self.rng, self.step, self.args.window
        user, server = self.user(), self.server()
        if kind == "expired":
            _, token = self.minter.token(user, server, self.nonce(), s - w - 1 - rng.randrange(200))
            return self.auth(user, server, token), False, "refused: OTP outside window"
        if kind == "future":
            _, token = self.minter.token(user, server, self.nonce(), s + w + 2 + rng.randrange(200))
            return self.auth(user, server, token), False, "refused: OTP outside window"
        if kind == "other-user":
            _, token = self.minter.token(user, server, self.nonce(), s)
            other = f"user{1000 + rng.randrange(1000)}"
            return self.auth(other, server, token), False, "refused: bad signature"
        if kind == "other-domain":
            # Signed with the other domain's secret.
            _, token = self.minter.token(user, server, self.nonce(), s,
                                         secret=Minter.secret(DOMAIN if server == OTHER else OTHER))
            return self.auth(user, server, token), False, "refused: bad signature"
        if kind == "wrong-case":
            _, token = self.minter.token(user, server, self.nonce(), s)
            if rng.random() < 0.5:
                return self.auth(user.capitalize(), server, token), False, "refused: bad signature"
            return self.auth(user, server.upper(), token), False, "refused: bad signature"
        if kind == "tampered":
            _, token = self.minter.token(user, server, self.nonce(), s)
            digits, sig = token.split(" ")
            where = rng.randrange(3)
            if where == 0:  # the signature
                i = rng.randrange(len(sig) - 2)
                c = sig[i]
                sig = sig[:i] + ("A" if c != "A" else "B") + sig[i + 1 :]
            elif where == 1:  # the OTP
                i = rng.randrange(OTP_DIGITS)
                digits = digits[:i] + str((int(digits[i]) + 1) % 10) + digits[i + 1 :]
            else:  # the nonce
                i = OTP_DIGITS + rng.randrange(NONCE_DIGITS)
                digits = digits[:i] + str((int(digits[i]) + 1) % 10) + digits[i + 1 :]
            return self.auth(user, server, f"{digits} {sig}"), False, "refused: tampered"
        if kind == "wrong-nonce-length":
            n = rng.choice([0, 1, 16, 31, 33, 64])
            _, token = self.minter.token(user, server, self.nonce(n), s)
            return self.auth(user, server, token), False, "refused: malformed"
        if kind == "colon-in-password":
            _, token = self.minter.token(user, server, self.nonce(), s)
            where = rng.randrange(3)
            if where == 0:
                token = token + ":x"
            elif where == 1:
                token = token.replace(" ", ":", 1)
            else:
                token = ":" + token
            return self.auth(user, server, token), False, "refused: malformed"
        if kind == "colon-in-user":
            # "auth:al:ice:example.org:TOKEN": user "al", server "ice".
            head = rng.randrange(1, len(user))
            joined = user[:head] + ":" + user[head:]
            _, token = self.minter.token(joined, server, self.nonce(), s)
            return self.auth(joined, server, token), False, "refused: malformed"
        if kind == "invalid-utf8":
            _, token = self.minter.token(user, server, self.nonce(), s)
            body = self.auth(user, server, token)
            bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
            i = rng.randrange(5, len(body) + 1)
            return body[:i] + bad + body[i:], False, "refused: not UTF-8"
        if kind == "nul":
            _, token = self.minter.token(user, server, self.nonce(), s)
            body = self.auth(user, server, token)
            i = rng.randrange(5, len(body) + 1)
            return body[:i] + b"\x00" + body[i:], False, "refused: NUL"
        if kind == "whitespace":
            _, token = self.minter.token(user, server, self.nonce(), s)
            token = rng.choice([" " + token, token + " ", token.replace(" ", "  "), token + "\t",
                                token.replace(" ", "\t")])
            return self.auth(user, server, token), False, "refused: malformed"
        if kind == "garbage":
            n = rng.choice([1, 2, 3, 7, 40, 200, 1000])
            body = rng.randbytes(rng.randrange(n + 1))
            # Never a request by chance: the protocol's commands start with a letter.
            if body[:1].isalpha():
                body = b"\x00" + body
            return body, False, "refused: garbage"
        if kind == "empty":
            return b"", False, "refused: empty"
        if kind == "isuser":
            return f"isuser:{user}:{rng.choice([DOMAIN, OTHER, 'any.example'])}".encode(), True, "accepted (isuser)"
        if kind == "isuser-malformed":
            body = rng.choice([f"isuser:{user}:{server}:extra", f"isuser::{server}", f"isuser:{user}:",
                               f"isuser:{user}"]).encode()
            return body, False, "refused: malformed"
        if kind == "account-change":
            _, token = self.minter.token(user, server, self.nonce(), s)
            body = rng.choice([f"setpass:{user}:{server}:{token}", f"tryregister:{user}:{server}:{token}",
                               f"removeuser:{user}:{server}", f"removeuser3:{user}:{server}:{token}"])
            return body.encode(), False, "refused: read-only"
        if kind == "unknown-command":
            _, token = self.minter.token(user, server, self.nonce(), s)
            cmd = rng.choice(["AUTH", "auth ", "authx", "Auth", "certauth", " auth"])
            return f"{cmd}:{user}:{server}:{token}".encode(), False, "refused: unknown command"
        if kind == "over-long":
            if self.line:
                n = rng.choice([MAX_REQUEST + 1, MAX_REQUEST + 2, 70000, 200000])
            else:
                n = MAX_REQUEST
            head = self.auth(user, server, "")
            return head + b"9" * (n - len(head)), False, "refused: too long"
        raise AssertionError(kind)


# ---------------------------------------------------------------------------
# Channels: one conversation's bytes, written and read without blocking.


class Channel:
    def __init__(self, name, wfd, rfd, reply_size, persistent=True):
        self.name = name
        self.wfd, self.rfd = wfd, rfd
        self.reply_size = reply_size
        self.persistent = persistent
        self.out = bytearray()
        self.sent = 0
        self.inbuf = bytearray()
        self.expects = []
        self.bytewise = 0  # the first this many bytes are written one at a time
        self.read_replies = True
        self.want_eof = False
        self.eof = False
        self.write_closed = False
        self.shut_after_write = None  # a callable run once everything is written

    def want_bytes(self):
        return len(self.expects) * self.reply_size if self.read_replies else 0

    def satisfied(self):
        if self.sent < len(self.out):
            return False
        if self.shut_after_write is not None and not self.write_closed:
            return False
        if len(self.inbuf) < self.want_bytes():
            return self.eof  # an early end is reported as missing replies
        if self.want_eof and not self.eof:
            return False
        return True


class LogCounter:
    """Counts the helper's log lines (log = "stderr") as they arrive: the
    acceptances, the full memory's refusals (logged as rate-limited alarms
    that count the lines they stand for), and any other error or warning."""

    def __init__(self, fd):
        self.fd = fd
        self.carry = b""
        self.accepted = 0
        self.full = 0  # refusals for a full memory, with those the alarm lines count
        self.lines = 0
        self.resets = 0  # "closed a connection: Connection reset by peer"
        self.reset_sample = None
        self.unexpected = 0
        self.samples = []  # unexpected lines, a few
        self.eof = False

    def feed(self, chunk):
        data = self.carry + chunk
        cut = data.rfind(b"\n") + 1
        done, self.carry = data[:cut], data[cut:]
        if not done:
            return
        self.lines += done.count(b"\n")
        self.accepted += done.count(b": accepted\n")
        if b"error: " not in done and b"warning" not in done and b"panick" not in done:
            return
        for line in done.split(b"\n"):
            if b"error: " not in line and b"warning" not in line and b"panick" not in line:
                continue
            text = line.decode("utf-8", "replace")
            more = re.search(r"\(and (\d+) more like it since the last such line\)", text)
            if "(replay cache is full" in text:
                self.full += 1 + (int(more.group(1)) if more else 0)
            elif re.search(r"error: \d+ more refusals \(replay memory full\) were not logged", text):
                self.full += int(re.search(r"error: (\d+) more", text).group(1))
            elif "error: closed a connection: Connection reset by peer" in text:
                self.resets += 1
                self.reset_sample = text
            else:
                self.unexpected += 1
                if len(self.samples) < 10:
                    self.samples.append(text[:300])

    def drain(self, limit=5.0):
        end = time.time() + limit
        while not self.eof and time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                self.read()

    def read(self):
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
        else:
            self.feed(chunk)


def exchange(channels, log, deadline):
    """Writes every channel's bytes and reads its replies, until each is
    satisfied or the deadline passes; returns the channels that timed out."""
    poll = select.poll()
    registered = {}
    while True:
        pending = [c for c in channels if not c.satisfied()]
        if not pending:
            return []
        now = time.time()
        if now >= deadline:
            return pending
        want = {}
        for c in pending:
            if c.sent < len(c.out):
                want[c.wfd] = want.get(c.wfd, 0) | select.POLLOUT
            elif c.shut_after_write is not None and not c.write_closed:
                c.shut_after_write()
                c.write_closed = True
            if (len(c.inbuf) < c.want_bytes() or c.want_eof) and not c.eof:
                want[c.rfd] = want.get(c.rfd, 0) | select.POLLIN
        if log is not None and not log.eof:
            want[log.fd] = want.get(log.fd, 0) | select.POLLIN
        for fd in list(registered):
            if fd not in want:
                poll.unregister(fd)
                del registered[fd]
        for fd, mask in want.items():
            if registered.get(fd) != mask:
                poll.register(fd, mask)
                registered[fd] = mask
        by_fd = {}
        for c in pending:
            by_fd.setdefault(c.wfd, c)
            by_fd.setdefault(c.rfd, c)
        for fd, event in poll.poll(max(1, int((deadline - now) * 1000))):
            if log is not None and fd == log.fd:
                log.read()
                if log.eof:
                    poll.unregister(fd)
                    registered.pop(fd, None)
                continue
            c = by_fd.get(fd)
            if c is None:
                continue
            if fd == c.wfd and event & (select.POLLOUT | select.POLLERR | select.POLLHUP) \
                    and c.sent < len(c.out):
                end = c.sent + 1 if c.sent < c.bytewise else len(c.out)
                try:
                    c.sent += os.write(c.wfd, memoryview(c.out)[c.sent:end])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    c.sent = len(c.out)  # the replies (or their absence) tell
                    c.eof = True
            if fd == c.rfd and event & (select.POLLIN | select.POLLERR | select.POLLHUP):
                try:
                    chunk = os.read(c.rfd, 1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    c.inbuf += chunk
                else:
                    c.eof = True


# ---------------------------------------------------------------------------
# Process monitoring.


def sample(pid):
    rss = threads = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return rss, fds, threads


def settled_sample(pid, baseline):
    """A sample; while descriptors or threads are above the baseline (a
    connection just closed is still being reaped), a few more tries."""
    s = sample(pid)
    for _ in range(40):
        if s is None or baseline is None or (s[1] <= baseline[1] and s[2] <= baseline[2]):
            break
        time.sleep(0.01)
        s = sample(pid)
    return s


# ---------------------------------------------------------------------------
# A driver: one target, its rounds, its checks' raw material.


class Driver:
    def __init__(self, name, args, seed, line):
        self.name = name
        self.args = args
        self.rng = random.Random(seed)
        self.model = Model(args.cache, args.interval, args.window)
        self.gen = Generator(self.rng, args, self.model, line)
        self.reply_size = 2 if line else 4
        self.true_reply = TRUE_LINE if line else TRUE_EJ
        self.false_reply = FALSE_LINE if line else FALSE_EJ
        self.requests = 0
        self.kinds = {}
        self.outcomes = {}
        self.mismatches = 0
        self.mismatch_samples = []
        self.missing = 0
        self.junk = 0
        self.slow_rounds = 0
        self.slow_samples = []
        self.max_round = 0.0
        self.max_round_what = ""
        self.rounds = 0
        self.races = 0
        self.race_failures = 0
        self.samples = []  # (seconds since start, rss KiB, fds, threads)
        self.baseline = None
        self.errors = []
        self.checks = {}
        self.churn = {}
        self.unread = 0

    def note(self, e):
        self.requests += 1
        self.kinds[e.kind] = self.kinds.get(e.kind, 0) + 1
        self.outcomes[e.outcome] = self.outcomes.get(e.outcome, 0) + 1

    def judge(self, channel, round_no, races):
        """Compares one channel's replies with its expectations."""
        size = self.reply_size
        got = channel.inbuf
        for i, e in enumerate(channel.expects):
            reply = bytes(got[i * size : (i + 1) * size])
            if reply == self.true_reply:
                verdict = True
            elif reply == self.false_reply:
                verdict = False
            elif len(reply) < size:
                self.missing += len(channel.expects) - i
                self.failure(
                    f"{channel.name}: no reply to request {i + 1} of {len(channel.expects)} "
                    f"in round {round_no} ({e.kind}; {len(got)} bytes came)", e)
                break
            else:
                self.junk += 1
                self.failure(f"{channel.name}: reply {reply!r} is no reply, request {i + 1} "
                             f"in round {round_no} ({e.kind})", e)
                continue
            if e.race is not None:
                races.setdefault(e.race, []).append(verdict)
                continue
            if verdict != e.verdict:
                self.mismatches += 1
                self.failure(
                    f"{channel.name}: request {i + 1} of {len(channel.expects)} in round {round_no}, "
                    f"kind {e.kind}: expected {e.verdict} ({e.outcome}), got {verdict}; "
                    f"step {self.gen.step}, model live {self.model.live(self.gen.step)} "
                    f"of {self.model.capacity}", e)
        extra = len(got) - len(channel.expects) * size
        if extra > 0:
            self.junk += 1
            self.failure(f"{channel.name}: {extra} bytes beyond the {len(channel.expects)} replies "
                         f"in round {round_no}: {bytes(got[-extra:][:40])!r}", None)
        channel.inbuf = bytearray()
        channel.expects = []

    def judge_races(self, races, round_no):
        for (rid, accepted), verdicts in races.items():
            self.races += 1
            if len(verdicts) != 2 or sum(verdicts) != accepted:
                self.race_failures += 1
                self.mismatches += 1
                self.failure(f"race {rid} in round {round_no}: verdicts {verdicts}, "
                             f"expected {accepted} accepted of 2", None)

    def failure(self, text, e):
        if len(self.mismatch_samples) < 12:
            if e is not None:
                text += f"\n      body: {e.body[:160]!r}{'...' if len(e.body) > 160 else ''}"
            self.mismatch_samples.append(text)

    def monitor(self, pid, start, last):
        now = time.time()
        if now - last < 0.5:
            return last
        s = settled_sample(pid, self.baseline)
        if s is not None:
            t = now - start
            self.samples.append((round(t, 2), *s))
            if self.baseline is None and t >= 0.2 * self.args.seconds:
                # The warm-up value, once connections closed just before are
                # reaped: the least of a few samples.
                for _ in range(20):
                    time.sleep(0.01)
                    again = sample(pid)
                    if again is not None and (again[1], again[2]) < (s[1], s[2]):
                        s = again
                self.samples[-1] = (round(t, 2), *s)
                self.baseline = s
        return now

    def fill(self, channel, n, stateless=False, partner=None):
        """Appends about n requests to `channel` (a race's second request to
        `partner`). Requests whose replies will not be read are not counted."""
        while n > 0:
            for offset, frame, e in self.gen.make(stateless=stateless):
                target = channel if offset == 0 else partner
                target.out += frame
                target.expects.append(e)
                if target.read_replies:
                    self.note(e)
                else:
                    self.unread += 1
                n -= 1

    def after_round(self, t0, round_no, what=""):
        t1 = time.time()
        if t1 - t0 > self.max_round:
            self.max_round = t1 - t0
            self.max_round_what = f"round {round_no}{what}"
        if self.gen.timed and int(t1) // self.args.interval != self.gen.step:
            self.slow_rounds += 1
            if len(self.slow_samples) < 5:
                self.slow_samples.append(f"round {round_no} started {t0 - self.gen.step * self.args.interval:.2f} s "
                                         f"into its step and took {t1 - t0:.3f} s")
        self.gen.end_round()

    def report(self):
        g = self.gen
        return {
            "name": self.name,
            "requests": self.requests,
            "kinds": self.kinds,
            "outcomes": self.outcomes,
            "mismatches": self.mismatches,
            "mismatch_samples": self.mismatch_samples,
            "missing": self.missing,
            "junk": self.junk,
            "slow_rounds": self.slow_rounds,
            "slow_samples": self.slow_samples,
            "max_round": self.max_round,
            "max_round_what": self.max_round_what,
            "rounds": self.rounds,
            "races": self.races,
            "race_failures": self.race_failures,
            "samples": self.samples,
            "baseline": self.baseline,
            "errors": self.errors,
            "checks": self.checks,
            "max_live": g.max_live,
            "full_steps": len(g.full_steps),
            "near_steps": g.near_steps,
            "steps": g.steps_seen,
            "capacity": self.model.capacity,
            "churn": self.churn,
            "unread": self.unread,
        }


def die_with_parent():
    """SIGTERM when the parent dies (in a driver, and in a helper before exec),
    so that an interrupted soak leaves no driver, helper or daemon behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def child_env():
    env = dict(os.environ)
    env.pop("XMPP_TOKEN_AUTH_CONFIG", None)
    return env


def grow_pipe(fd):
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError:
        pass


def run_pipe(args, config, out):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides
    die_with_parent()
    d = Driver("pipe", args, args.seed * 2 + 1, line=False)
    helper = None
    try:
        helper = subprocess.Popen([args.bin, "--config", config], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), preexec_fn=die_with_parent)
        for f in (helper.stdin, helper.stdout, helper.stderr):
            os.set_blocking(f.fileno(), False)
            grow_pipe(f.fileno())
        log = LogCounter(helper.stderr.fileno())
        ch = Channel("pipe", helper.stdin.fileno(), helper.stdout.fileno(), 4)
        start = time.time()
        end = start + args.seconds
        last = 0.0
        round_no = 0
        while time.time() < end:
            round_no += 1
            t0 = time.time()
            d.gen.start_round(t0)
            d.fill(ch, args.batch)
            stuck = exchange([ch], log, t0 + args.reply_timeout)
            long = sum(e.kind == "over-long" for e in ch.expects)
            races = {}
            d.judge(ch, round_no, races)
            ch.out, ch.sent = bytearray(), 0
            d.rounds += 1
            d.after_round(t0, round_no, f", {long} over-long" if long else "")
            if stuck:
                d.errors.append(f"round {round_no}: no complete answer within {args.reply_timeout} s; "
                                f"helper exit status {helper.poll()}")
                break
            if ch.eof:
                d.errors.append(f"round {round_no}: the helper's output ended; exit status {helper.poll()}")
                break
            last = d.monitor(helper.pid, start, last)
        final = settled_sample(helper.pid, d.baseline)
        if final:
            d.samples.append((round(time.time() - start, 2), *final))
        # End of input: the helper must exit 0 having written nothing more.
        helper.stdin.close()
        try:
            code = helper.wait(10)
        except subprocess.TimeoutExpired:
            helper.kill()
            code = helper.wait()
            d.errors.append("the helper did not exit within 10 s of the end of its input")
        rest = b""
        while True:
            try:
                chunk = os.read(helper.stdout.fileno(), 65536)
            except BlockingIOError:
                select.select([helper.stdout.fileno()], [], [], 1)
                continue
            if not chunk:
                break
            rest += chunk
        log.drain()
        d.checks["exit"] = (code == 0 and not rest, f"exit status {code}, {len(rest)} bytes after the last reply")
        d.checks["log"] = log_check(log, d)
    except Exception:
        d.errors.append(traceback.format_exc())
        if helper is not None and helper.poll() is None:
            helper.kill()
    out.put(d.report())


def log_check(log, d):
    """Every decision is logged: the lines saying "accepted" are the model's
    acceptances (auth, isuser, one per race); the full memory's alarms count
    exactly the model's refusals for a full memory; no other error, warning
    or panic. (A connection reset by its peer is logged at error: reported as
    a NOTE line, not a failure.)"""
    expected = (d.outcomes.get("accepted", 0) + d.outcomes.get("accepted (isuser)", 0)
                + d.outcomes.get("race: accepted on one of two", 0) // 2)
    full = d.outcomes.get("refused: memory full", 0) + d.outcomes.get("race: memory full, refused on both", 0)
    ok = log.accepted == expected and log.full == full and not log.unexpected
    text = (f"{log.lines} lines; {log.accepted} say accepted, the model accepted {expected}; "
            f"alarms count {log.full} refusals for a full memory, the model {full}; "
            f"{log.unexpected} other errors or warnings")
    note = None
    if log.resets:
        note = f"{log.resets} lines \"{log.reset_sample.split(': ', 1)[-1]}\" (connections closed with replies unread)"
    return ok, text, log.samples, note


def run_socket(args, config, sock_path, out):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides
    die_with_parent()
    d = Driver("socket", args, args.seed * 2 + 2, line=True)
    daemon = None
    conns = []
    try:
        daemon = subprocess.Popen([args.bin, "--config", config, "listen", "--socket", sock_path],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=child_env(), preexec_fn=die_with_parent)
        os.set_blocking(daemon.stderr.fileno(), False)
        grow_pipe(daemon.stderr.fileno())
        log = LogCounter(daemon.stderr.fileno())
        deadline = time.time() + 15
        while True:
            try:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                probe.connect(sock_path)
                probe.close()
                break
            except OSError:
                probe.close()
                if time.time() > deadline or daemon.poll() is not None:
                    log.drain(1)
                    raise RuntimeError(f"the daemon did not listen on {sock_path}: exit {daemon.poll()}, "
                                       f"{log.samples}")
                time.sleep(0.05)

        def connect(name, persistent):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            s.setblocking(False)
            ch = Channel(name, s.fileno(), s.fileno(), 2, persistent)
            ch.sock = s
            return ch

        conns = [connect(f"socket connection {i + 1}", True) for i in range(args.connections)]
        start = time.time()
        end = start + args.seconds
        last = 0.0
        round_no = 0
        # The baseline is taken with only the persistent connections open.
        while time.time() < end:
            round_no += 1
            t0 = time.time()
            d.gen.start_round(t0)
            chans = list(conns)
            n = len(conns)
            for i, ch in enumerate(conns):
                partner = conns[(i + 1 + d.rng.randrange(n - 1)) % n] if n > 1 else ch
                d.fill(ch, args.batch // n, partner=partner)
            churned = []
            kind = None
            if d.rng.random() < args.churn:
                kind = d.rng.choice(["short", "half-closed", "cut mid-request", "byte by byte",
                                     "replies never read", "closed at once"])
                d.churn[kind] = d.churn.get(kind, 0) + 1
                ch = connect(f"socket connection ({kind})", False)
                churned.append(ch)
                if kind == "closed at once":
                    ch.sock.close()
                    churned.pop()
                else:
                    stateless = kind == "replies never read"
                    ch.read_replies = not stateless
                    count = d.rng.randrange(1, 4) if kind == "byte by byte" else d.rng.randrange(1, 30)
                    d.fill(ch, count, stateless=stateless, partner=ch)
                    if kind == "half-closed":
                        ch.shut_after_write = lambda s=ch.sock: s.shutdown(socket.SHUT_WR)
                        ch.want_eof = True
                    elif kind == "cut mid-request":
                        ch.out += b"auth:user1:example.org:1234"
                    elif kind == "byte by byte":
                        ch.bytewise = 2000  # then the rest (an over-long line) at once
                    chans.append(ch)
            stuck = exchange(chans, log, t0 + args.reply_timeout)
            long = sum(e.kind == "over-long" for ch in chans for e in ch.expects)
            what = (f", {long} over-long" if long else "") + (f", a connection {kind}" if kind else "")
            races = {}
            for ch in chans:
                if ch.read_replies:
                    d.judge(ch, round_no, races)
                else:
                    ch.expects = []
                ch.out, ch.sent = bytearray(), 0
            d.judge_races(races, round_no)
            for ch in churned:
                ch.sock.close()
            d.rounds += 1
            d.after_round(t0, round_no, what)
            if stuck:
                d.errors.append(f"round {round_no}: no complete answer within {args.reply_timeout} s on "
                                f"{', '.join(c.name for c in stuck)}; daemon exit status {daemon.poll()}")
                break
            broken = [c.name for c in conns if c.eof]
            if broken:
                d.errors.append(f"round {round_no}: the daemon closed {', '.join(broken)}")
                break
            last = d.monitor(daemon.pid, start, last)
        final = settled_sample(daemon.pid, d.baseline)
        if final:
            d.samples.append((round(time.time() - start, 2), *final))
        for ch in conns:
            ch.sock.close()
        time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = daemon.wait()
            d.errors.append("the daemon did not exit within 10 s of SIGTERM")
        log.drain()
        gone = not os.path.exists(sock_path)
        d.checks["exit"] = (code == 0 and gone, f"exit status {code} after SIGTERM, socket file "
                            f"{'removed' if gone else 'left behind'}")
        d.checks["log"] = log_check(log, d)
    except Exception:
        d.errors.append(traceback.format_exc())
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
    out.put(d.report())


# ---------------------------------------------------------------------------
# The verdict.


def resource_checks(r, args):
    """(name, ok, detail) for RSS, descriptors and threads after warm-up."""
    out = []
    base = r["baseline"]
    samples = r["samples"]
    if base is None or not samples:
        return [(f"{r['name']}: resources sampled", False, "no sample after the warm-up")]
    after = [s for s in samples if s[0] >= 0.2 * args.seconds]
    rss0 = base[0]
    limit = rss0 + max(rss0 // 10, args.rss_slack)
    peak = max(s[1] for s in after)
    end = samples[-1]
    out.append((f"{r['name']}: RSS flat after warm-up", peak <= limit,
                f"{rss0} KiB after warm-up, peak {peak}, end {end[1]}, limit {limit}"))
    fd_peak = max(s[2] for s in after)
    out.append((f"{r['name']}: descriptors flat", fd_peak <= base[1] and end[2] == base[1],
                f"{base[1]} after warm-up, peak {fd_peak}, end {end[2]}"))
    th_peak = max(s[3] for s in after)
    out.append((f"{r['name']}: threads flat", th_peak <= base[2] and end[3] == base[2],
                f"{base[2]} after warm-up, peak {th_peak}, end {end[3]}"))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20, help="how long to run (default 20)")
    p.add_argument("--bin", default="target/release/xmpp-token-auth", help="the binary to soak")
    p.add_argument("--cache", type=int, default=3000, help="replay_cache_size (default 3000)")
    p.add_argument("--interval", type=int, default=10, help="otp_interval (default 10)")
    p.add_argument("--window", type=int, default=0, help="otp_window (default 0)")
    p.add_argument("--connections", type=int, default=4, help="persistent socket connections (default 4)")
    p.add_argument("--batch", type=int, default=400, help="requests per round and target (default 400)")
    p.add_argument("--churn", type=float, default=0.5,
                   help="chance that a round also opens and closes a connection (default 0.5)")
    p.add_argument("--guard", type=float, default=3.0,
                   help="no time-dependent request in the last GUARD seconds of a step (default 3)")
    p.add_argument("--reply-timeout", type=float, default=20.0, help="a round's deadline (default 20 s)")
    p.add_argument("--rss-slack", type=int, default=1024,
                   help="RSS growth always allowed after warm-up, KiB (default 1024)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument("--only", choices=["pipe", "socket"], help="one target only")
    p.add_argument("--json", help="also write the raw results to this file")
    args = p.parse_args()
    if args.seed is None:
        args.seed = int(time.time())
    if args.guard >= args.interval:
        p.error("--guard must be shorter than --interval")
    if not os.access(args.bin, os.X_OK):
        p.error(f"{args.bin} is not an executable: build it first (cargo build --release)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="xmpp-token-auth-soak-")
    try:
        failed = soak(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


def soak(args, tmp):
    """Runs the drivers, prints the table and the checks; the number failed."""
    config = os.path.join(tmp, "config.toml")
    sock_path = os.path.join(tmp, "auth.sock")
    group = grp.getgrgid(os.getgid()).gr_name
    with open(config, "w") as f:
        f.write(
            f'token_secret = "{SECRET}"\notp_seed = "{SEED}"\n'
            f"otp_interval = {args.interval}\notp_window = {args.window}\n"
            f"replay_cache_size = {args.cache}\n"
            f'log = "stderr"\nsocket_group = "{group}"\nmax_connections = 64\n'
            f'[domains."{OTHER}"]\ntoken_secret = "{OTHER_SECRET}"\n'
        )
    os.chmod(config, 0o600)
    print(f"soak: {args.seconds:g} s, {args.bin}, replay_cache_size {args.cache}, otp_interval "
          f"{args.interval}, otp_window {args.window}, {args.connections} socket connections, seed {args.seed}",
          flush=True)

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = []
    if args.only != "socket":
        procs.append(ctx.Process(target=run_pipe, args=(args, config, queue)))
    if args.only != "pipe":
        procs.append(ctx.Process(target=run_socket, args=(args, config, sock_path, queue)))
    for proc in procs:
        proc.start()
    results = {}
    try:
        for _ in procs:
            try:
                r = queue.get(timeout=args.seconds + 120)
            except Exception:
                break
            results[r["name"]] = r
    except KeyboardInterrupt:
        for proc in procs:
            proc.kill()  # their helpers get SIGTERM (die_with_parent)
        print("soak: interrupted", file=sys.stderr)
        sys.exit(130)
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    for name in [n for n in ("pipe", "socket") if (args.only in (None, n))]:
        if name not in results:
            results[name] = {"name": name, "errors": ["the driver process died without a report"]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)

    checks = []
    notes = []
    order = [n for n in ("pipe", "socket") if n in results]
    for name in order:
        r = results[name]
        if "requests" not in r:
            checks.append((f"{name}: driver ran", False, "; ".join(r["errors"])))
            continue
        checks.append((f"{name}: driver ran to the end", not r["errors"],
                       "no error" if not r["errors"] else r["errors"][0].strip().splitlines()[-1]))
        checks.append((f"{name}: every verdict matches the model", r["mismatches"] == 0,
                       f"{r['mismatches']} mismatches in {r['requests']} requests"))
        checks.append((f"{name}: one reply per request, in order, nothing else", r["missing"] == 0 and r["junk"] == 0,
                       f"{r['missing']} missing, {r['junk']} malformed or extra"))
        checks.append((f"{name}: every round answered within its step", r["slow_rounds"] == 0,
                       f"slowest round {r['max_round'] * 1000:.1f} ms ({r['max_round_what']}); "
                       f"{r['slow_rounds']} slow"))
        full = r["outcomes"].get("refused: memory full", 0)
        checks.append((f"{name}: the replay memory reached its bound", r["max_live"] >= r["capacity"] and full > 0,
                       f"max live {r['max_live']} of {r['capacity']}, {full} fresh tokens refused as full, "
                       f"full in {r['full_steps']} of {r['steps']} steps"))
        if name == "socket":
            checks.append(("socket: raced tokens accepted exactly once", r["race_failures"] == 0 and r["races"] > 0,
                           f"{r['races']} races, {r['race_failures']} wrong"))
        if "exit" in r["checks"]:
            ok, text = r["checks"]["exit"]
            checks.append((f"{name}: clean exit", ok, text))
        if "log" in r["checks"]:
            ok, text, samples, note = r["checks"]["log"]
            checks.append((f"{name}: log lines agree", ok, text + ("; " + " | ".join(samples) if samples else "")))
            if note:
                notes.append(f"{name}: {note}")
        checks.extend(resource_checks(r, args))

    # The table.
    print()
    kinds = sorted({k for n in order for k in results[n].get("kinds", {})},
                   key=lambda k: list(WEIGHTS).index(k) if k in WEIGHTS else 99)
    head = f"{'':28}" + "".join(f"{n:>14}" for n in order)
    print(head)
    print("-" * len(head))

    def row(label, values):
        print(f"{label:28}" + "".join(f"{'' if v is None else v:>14}" for v in values))

    row("requests checked", [results[n].get("requests", 0) for n in order])
    row("requests per second", [f"{results[n].get('requests', 0) / args.seconds:,.0f}" for n in order])
    row("rounds", [results[n].get("rounds", 0) for n in order])
    print("by kind:")
    for k in kinds:
        row("  " + k, [results[n].get("kinds", {}).get(k, 0) for n in order])
    print("by expected outcome:")
    outcomes = sorted({o for n in order for o in results[n].get("outcomes", {})})
    for o in outcomes:
        row("  " + o, [results[n].get("outcomes", {}).get(o, 0) for n in order])
    if "socket" in results and "churn" in results["socket"]:
        print("socket connections opened and closed:")
        for k, v in sorted(results["socket"]["churn"].items()):
            row("  " + k, [v if n == "socket" else "" for n in order])
        row("  requests never read", [results["socket"].get("unread", 0) if n == "socket" else "" for n in order])
    print("replay memory:")
    row("  capacity", [results[n].get("capacity", "") for n in order])
    row("  max live (model)", [results[n].get("max_live", "") for n in order])
    row("  steps", [results[n].get("steps", 0) for n in order])
    row("  steps full", [results[n].get("full_steps", 0) for n in order])
    row("  steps at 85-99.9 %", [results[n].get("near_steps", 0) for n in order])
    print("resources (start = after warm-up):")
    for label, idx in (("RSS KiB", 1), ("open descriptors", 2), ("threads", 3)):
        first = []
        start = []
        end = []
        for n in order:
            s = results[n].get("samples") or []
            b = results[n].get("baseline")
            first.append(s[0][idx] if s else "")
            start.append(b[idx - 1] if b else "")
            end.append(s[-1][idx] if s else "")
        row(f"  {label} first sample", first)
        row(f"  {label} start", start)
        row(f"  {label} end", end)
    print()
    failed = 0
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        failed += not ok
    for n in order:
        r = results[n]
        for text in r.get("mismatch_samples", []):
            print(f"  {n}: {text}")
        for text in r.get("slow_samples", []):
            print(f"  {n}: slow: {text}")
        for text in r.get("errors", []):
            print(f"  {n}: error: {text.strip()}")
    for text in notes:
        print(f"NOTE  {text}")
    print()
    print(f"soak: {len(checks) - failed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    main()
