#!/usr/bin/env python3
"""Mint a token for xmpp-token-auth (the mod_auth_token format). Stdlib only."""

import base64
import hashlib
import hmac
import os
import secrets
import struct
import sys
import time


def totp(otp_seed, at, digits=8, interval=30):
    """RFC 6238 TOTP (HMAC-SHA1) of a base32 seed at unix time `at`."""
    seed = otp_seed.upper().replace(" ", "").rstrip("=")
    key = base64.b32decode(seed + "=" * (-len(seed) % 8))
    mac = hmac.new(key, struct.pack(">Q", at // interval), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def generate(jid, token_secret, otp_seed, at=None, nonce=None, digits=8, interval=30):
    """A token for the bare `jid` (user part in lower case), valid for about a minute, once."""
    at = int(time.time()) if at is None else at
    otp = totp(otp_seed, at, digits, interval)
    nonce = nonce or "".join(secrets.choice("0123456789") for _ in range(32))
    message = (otp + nonce + jid).encode()
    tag = hmac.new(token_secret.encode(), message, hashlib.sha256).digest()
    return otp + nonce + " " + base64.b64encode(tag).decode()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... xmpp_token.py JID")
    env = os.environ
    print(generate(
        sys.argv[1],
        env["XMPP_TOKEN_SECRET"],
        env["XMPP_OTP_SEED"],
        at=int(env["XMPP_TOKEN_AT"]) if "XMPP_TOKEN_AT" in env else None,
        nonce=env.get("XMPP_TOKEN_NONCE"),
        digits=int(env.get("XMPP_OTP_DIGITS", "8")),
        interval=int(env.get("XMPP_OTP_INTERVAL", "30")),
    ))
