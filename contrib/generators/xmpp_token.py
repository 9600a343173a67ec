#!/usr/bin/env python3
"""Mint a token for xmpp-token-auth (the mod_auth_token format). Stdlib only."""

import base64
import binascii
import hashlib
import hmac
import os
import re
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


def nonce_for(nonce, nonce_digits=32):
    """`nonce` checked against the helper's nonce_digits, or, if it is None or
    empty, a fresh random one of that many digits."""
    if not 1 <= nonce_digits <= 64:
        raise ValueError(f"nonce_digits must be 1 to 64, not {nonce_digits}")
    if not nonce:
        return "".join(secrets.choice("0123456789") for _ in range(nonce_digits))
    if not re.fullmatch("[0-9]+", nonce):
        raise ValueError("nonce must be ASCII digits only")
    if len(nonce) != nonce_digits:
        raise ValueError(
            f"nonce has {len(nonce)} digits, but tokens carry exactly {nonce_digits} (nonce_digits)")
    return nonce


def jid_warning(jid):
    """Why a token for `jid` will not log anyone in, if it has upper case; else None."""
    if not any(c.isupper() for c in jid):
        return None
    return ("XMPP servers lower-case the JID before asking the helper; "
            f"this token is for {jid} exactly and will not log {jid.lower()} in")


def generate(jid, token_secret, otp_seed, at=None, nonce=None, digits=8, interval=30,
             nonce_digits=32):
    """A token for the bare `jid` (in lower case), valid for about a minute, once.

    `nonce_digits` must equal the helper's: tokens carry exactly that many
    nonce digits. `nonce` is for tests; None or "" makes a random one."""
    nonce = nonce_for(nonce, nonce_digits)
    at = int(time.time()) if at is None else at
    otp = totp(otp_seed, at, digits, interval)
    message = (otp + nonce + jid).encode()
    tag = hmac.new(token_secret.encode(), message, hashlib.sha256).digest()
    return otp + nonce + " " + base64.b64encode(tag).decode()


def _main():
    name = os.path.basename(sys.argv[0])
    if len(sys.argv) != 2:
        sys.exit(f"usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... {name} JID")
    env = os.environ

    def number(variable, default):
        value = env.get(variable, "")
        if value == "":
            return default
        if not re.fullmatch("[0-9]+", value):
            raise ValueError(f"{variable} must be a whole number, not {value!r}")
        return int(value)

    for variable in ("XMPP_TOKEN_SECRET", "XMPP_OTP_SEED"):
        if not env.get(variable):
            sys.exit(f"{name}: set {variable}")
    jid = sys.argv[1]
    try:
        token = generate(
            jid,
            env["XMPP_TOKEN_SECRET"],
            env["XMPP_OTP_SEED"],
            at=number("XMPP_TOKEN_AT", None),
            nonce=env.get("XMPP_TOKEN_NONCE"),
            digits=number("XMPP_OTP_DIGITS", 8),
            interval=number("XMPP_OTP_INTERVAL", 30),
            nonce_digits=number("XMPP_NONCE_DIGITS", 32),
        )
    except (ValueError, ArithmeticError) as e:
        if isinstance(e, binascii.Error):
            sys.exit(f"{name}: otp_seed is not base32")
        sys.exit(f"{name}: {e}")
    warning = jid_warning(jid)
    if warning:
        print(f"{name}: warning: {warning}", file=sys.stderr)
    print(token)


if __name__ == "__main__":
    _main()
