#!/usr/bin/env node
// Mint a token for xmpp-token-auth (the mod_auth_token format). Node's
// built-in crypto only, no npm packages.
'use strict';
const crypto = require('crypto');

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/ /g, '').replace(/=+$/, '');
  const out = [];
  let bits = 0;
  let value = 0;
  for (const char of clean) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error('otp_seed is not base32');
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function totp(seed, at, digits = 8, interval = 30) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / interval)));
  const mac = crypto.createHmac('sha1', base32Decode(seed)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(code % 10 ** digits).padStart(digits, '0');
}

/** A token for the bare `jid` (user part in lower case), valid for about a minute, once. */
function generate(jid, tokenSecret, otpSeed, { at, nonce, digits = 8, interval = 30 } = {}) {
  const otp = totp(otpSeed, at ?? Math.floor(Date.now() / 1000), digits, interval);
  const digitsOfNonce = nonce ?? Array.from({ length: 32 }, () => crypto.randomInt(10)).join('');
  const tag = crypto.createHmac('sha256', Buffer.from(tokenSecret, 'utf8'))
    .update(Buffer.from(otp + digitsOfNonce + jid, 'utf8'))
    .digest('base64');
  return `${otp}${digitsOfNonce} ${tag}`;
}

module.exports = { generate, totp };

if (require.main === module) {
  if (process.argv.length !== 3) {
    console.error('usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... node xmpp_token.js JID');
    process.exit(2);
  }
  const env = process.env;
  console.log(generate(process.argv[2], env.XMPP_TOKEN_SECRET, env.XMPP_OTP_SEED, {
    at: env.XMPP_TOKEN_AT === undefined ? undefined : Number(env.XMPP_TOKEN_AT),
    nonce: env.XMPP_TOKEN_NONCE,
    digits: Number(env.XMPP_OTP_DIGITS ?? 8),
    interval: Number(env.XMPP_OTP_INTERVAL ?? 30),
  }));
}
