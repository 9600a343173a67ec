#!/usr/bin/env python3
"""What users run today: a plain ejabberd extauth helper in Python, standard
library only, doing the check xmpp-token-auth does (docs/protocol.md §4) with
the default token shape (8-digit OTP, 30 s steps, window 1, 32-digit nonce)
and a dict as its replay memory.

`cargo bench --bench speed` runs it with the keys in TOKEN_SECRET and
OTP_SEED and feeds it the same stream as the real binary.
"""

import base64
import hashlib
import hmac
import os
import struct
import sys
import time

DIGITS = 8
INTERVAL = 30
WINDOW = 1
NONCE_DIGITS = 32
TRUE = b"\x00\x02\x00\x01"
FALSE = b"\x00\x02\x00\x00"


def seed_key(seed):
    seed = seed.upper().replace(" ", "").rstrip("=")
    return base64.b32decode(seed + "=" * (-len(seed) % 8))


def totp(key, step):
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**DIGITS).zfill(DIGITS)


def check(request, secret, key, seen):
    try:
        command, user, server, password = request.decode("utf-8").split(":", 3)
    except ValueError:
        return False
    if command != "auth" or not user or not server:
        return False
    digits, space, signature = password.partition(" ")
    if not space or len(digits) != DIGITS + NONCE_DIGITS or not digits.isdigit():
        return False
    try:
        tag = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    otp, nonce = digits[:DIGITS], digits[DIGITS:]
    now = int(time.time())
    step = now // INTERVAL
    otp_ok = False
    for d in range(-WINDOW, WINDOW + 1):
        otp_ok |= hmac.compare_digest(totp(key, step + d), otp)
    expected = hmac.new(secret, (digits + user + "@" + server).encode(), hashlib.sha256).digest()
    if not (otp_ok & hmac.compare_digest(expected, tag)):
        return False
    remembered = (user, server, otp, nonce)
    if seen.get(remembered, 0) > now:
        return False
    seen[remembered] = (step + WINDOW + 1) * INTERVAL + INTERVAL * (2 * WINDOW + 1)
    return True


def main():
    secret = os.environ["TOKEN_SECRET"].encode("utf-8")
    key = seed_key(os.environ["OTP_SEED"])
    seen = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = stdin.read(2)
        if len(head) < 2:
            return
        (length,) = struct.unpack(">H", head)
        request = stdin.read(length)
        if len(request) < length:
            return
        stdout.write(TRUE if check(request, secret, key, seen) else FALSE)
        stdout.flush()


if __name__ == "__main__":
    main()
