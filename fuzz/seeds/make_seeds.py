#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/seeds/TARGET/.

Each target's input layout is described at the top of its source file in
fuzz/fuzz_targets/. Run from anywhere: python3 fuzz/seeds/make_seeds.py
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"
SEED = "XVGR73KMZH2M4XMY"
REFERENCE = "2320461112345678901234567890123456789012 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ="


def write(target, seeds):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def ejabberd(*bodies):
    return b"".join(struct.pack(">H", len(b)) + b for b in bodies)


# frame_decoder: flags (bit 0 line, bit 1 long pieces, bit 2 expand 0xF5 n),
# count of piece sizes, sizes (u16), stream.
write("frame_decoder", {
    "ejabberd": bytes([0, 0]) + ejabberd(b"auth:alice:example.org:" + REFERENCE.encode(), b"isuser:alice:example.org", b"", b"\xff:\x00"),
    "ejabberd-pieces": bytes([0, 3, 0, 0, 0, 2, 0, 6]) + ejabberd(b"auth:a:b:c", b"isuser:a:b") + b"\x00\x09setp",
    "ejabberd-longest": bytes([4, 1, 0x10, 0x00]) + b"\xff\xff\xf5\x40" + ejabberd(b"next"),
    "lines": bytes([1, 2, 0, 0, 0, 4]) + b"auth:a:b:c\r\nisuser:a:b\n\nx\r\r\npartial",
    "line-limit": bytes([5, 1, 0x03, 0xe8]) + b"\xf5\x40\r\n\xf5\x41\n\xf5\x3f\r\r\nnext\n",
    "line-over-long": bytes([7, 2, 0, 0x20, 0x01, 0x00]) + b"\xf5\x90\nauth:a:b:c\n\xf5\x42",
})

# request_parser: the request's bytes.
write("request_parser", {
    "auth": b"auth:alice:example.org:" + REFERENCE.encode(),
    "auth-colons": b"auth:alice:example.org:a:b::c",
    "isuser": b"isuser:alice:example.org",
    "setpass": b"setpass:a:b:p",
    "tryregister": b"tryregister:a:b:p",
    "removeuser": b"removeuser:a:b",
    "removeuser3": b"removeuser3:a:b:p",
    "not-utf8": b"auth:a:b:\xff",
    "empty-user": b"auth::b:c",
    "too-few": b"isuser:a",
})

# token_parser: otp_digits selector (6 + b % 5), nonce_digits selector
# (1 + b % 64), then the password; the same bytes also seed a generated
# token.
write("token_parser", {
    "reference": bytes([2, 31]) + REFERENCE.encode(),
    "unpadded": bytes([2, 31]) + REFERENCE.rstrip("=").encode(),
    "six-one": bytes([0, 0]) + b"1234567 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=",
    "trailing-bits": bytes([2, 1]) + b"232046111 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtR=",
    "ten-sixty-four": bytes([4, 63]) + b"1" * 74 + b" " + b"A" * 43 + b"=",
})

# config_parse: flags (bit 0 key files unreadable, bits 1-3 their "other"
# permission bits), configuration text, NUL, key file text.
base = f'token_secret = "{SECRET}"\notp_seed = "{SEED}"\n'
write("config_parse", {
    "minimal": b"\x00" + base.encode(),
    "every-key": b"\x00" + (
        f'token_secret = ["{SECRET}", "older-secret-0123456789"]\notp_seed = "{SEED}"\n'
        'otp_digits = 6\notp_interval = 60\notp_window = 0\nnonce_digits = 20\n'
        'replay_protection = false\nreplay_cache_size = 10\nreplay_store = "replay"\n'
        'isuser = "never"\nprotocol = "line"\nlog = "stderr"\n'
        'socket = "/run/x.sock"\nsocket_mode = "0660"\nsocket_group = "xmpp"\n'
        'max_connections = 8\nrequest_timeout = 5\n'
        f'[domains."Example.ORG"]\ntoken_secret = "{SECRET}x"\notp_seed = ["E3W374VRSFO4NVKE", "{SEED}"]\n'
    ).encode(),
    "files": b"\x08" + b'token_secret_file = "token_secret"\notp_seed_file = "/etc/x/otp_seed"\n'
             b'[domains."a.example"]\notp_seed_file = "seed-a"\n' + b"\x00" + SEED.encode() + b"\n",
    "files-unreadable": b"\x01" + b'token_secret_file = "s"\notp_seed = "' + SEED.encode() + b'"\n',
    "domains-only": b"\x00" + f'otp_seed = "{SEED}"\n[domains."a.example"]\ntoken_secret = "{SECRET}"\n'.encode(),
    "out-of-range": b"\x00" + (base + "otp_digits = 12\n").encode(),
    "bad-type": b"\x00" + b"token_secret = 12345678901234\notp_seed = true\n",
    "unknown-key": b"\x00" + (base + "\notp_digit = 6\n").encode(),
    "syntax": b"\x00" + b'token_secret = "abc\notp_seed = \n[domains."x"\n',
    "missing-seed": b"\x00" + f'token_secret = "{SECRET}"\n'.encode(),
    "both": b"\x00" + (base + 'token_secret_file = "x"\n').encode(),
    "twice": b"\x00" + (base + '[domains."A.example"]\n[domains."a.example"]\n').encode(),
    "short-bad-seed": b"\x00" + b'token_secret = "short"\notp_seed = ["JBSWY3DPEHPK3", "JBSWY3DPEHPK3PX1"]\n',
})


# replay_store_reader: flags (bit 0 open and record, bit 1 sparse extension,
# bit 2 large capacity, bits 6-7 which known token), capacity byte,
# extension u32 (64-byte units), now u64, file.
def key(user, server, otp, nonce):
    h = hashlib.sha256()
    for part in (user, server, otp, nonce):
        h.update(struct.pack(">Q", len(part.encode())) + part.encode())
    return h.digest()[:16]


KNOWN = [
    key("alice", "example.org", "12345678", "1"),
    key("bob", "example.org", "12345678", "1"),
    key("alice", "example.org", "87654321", "2"),
    key("carol", "example.com", "00000000", "3"),
]
NOW = 1_764_300_000


def record(k, until):
    return k + struct.pack(">Q", until)


def store_input(flags, capacity, extension, now, file):
    return bytes([flags, capacity]) + struct.pack(">IQ", extension, now) + file


live = b"XTAREPL1" + record(KNOWN[0], NOW + 90) + record(KNOWN[1], NOW - 1) + record(KNOWN[2], NOW + 1)
write("replay_store_reader", {
    "empty": store_input(1, 9, 0, NOW, b""),
    "header-only": store_input(1, 9, 0, NOW, b"XTAREPL1"),
    "torn-header": store_input(1, 9, 0, NOW, b"XTAR"),
    "live-records": store_input(1, 9, 0, NOW, live),
    "replay-known": store_input(0x01, 9, 0, NOW, live),
    "record-expired": store_input(0x41, 9, 0, NOW, live + record(KNOWN[0], NOW + 5)),
    "record-fresh": store_input(0xC1, 9, 0, NOW, live + b"\x07" * 5),
    "full": store_input(0xC1, 1, 0, NOW, live),
    "version-2": store_input(1, 9, 0, NOW, b"XTAREPL2" + record(KNOWN[0], NOW + 90)),
    "not-a-store": store_input(1, 9, 0, NOW, b'token_secret = "x"\n'),
    "sparse-too-large": store_input(3, 0, 0x00FFFFFF, NOW, b"XTAREPL1"),
    "sparse-at-bound": store_input(3, 0, (8 + 24 * (4 + 4096)) // 64, NOW, b"XTAREPL1"),
})
