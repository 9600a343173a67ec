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

/**
 * `nonce` checked against the helper's nonce_digits, or, if it is undefined,
 * null or empty, a fresh random one of that many digits.
 */
function nonceFor(nonce, nonceDigits = 32) {
  if (!Number.isInteger(nonceDigits) || nonceDigits < 1 || nonceDigits > 64) {
    throw new RangeError(`nonce_digits must be 1 to 64, not ${nonceDigits}`);
  }
  if (nonce === undefined || nonce === null || nonce === '') {
    return Array.from({ length: nonceDigits }, () => crypto.randomInt(10)).join('');
  }
  if (!/^[0-9]+$/.test(nonce)) {
    throw new RangeError('nonce must be ASCII digits only');
  }
  if (nonce.length !== nonceDigits) {
    throw new RangeError(
      `nonce has ${nonce.length} digits, but tokens carry exactly ${nonceDigits} (nonce_digits)`);
  }
  return nonce;
}

/** Why a token for `jid` will not log anyone in, if it has upper case; else null. */
function jidWarning(jid) {
  if (!/\p{Lu}/u.test(jid) && jid.toLowerCase() === jid) return null;
  return 'XMPP servers lower-case the JID before asking the helper; '
    + `this token is for ${jid} exactly and will not log ${jid.toLowerCase()} in`;
}

/**
 * A token for the bare `jid` (in lower case), valid for about a minute, once.
 * `nonceDigits` must equal the helper's nonce_digits: tokens carry exactly
 * that many nonce digits. `nonce` is for tests; unset or '' makes a random one.
 */
function generate(jid, tokenSecret, otpSeed,
  { at, nonce, digits = 8, interval = 30, nonceDigits = 32 } = {}) {
  const checkedNonce = nonceFor(nonce, nonceDigits);
  const otp = totp(otpSeed, at ?? Math.floor(Date.now() / 1000), digits, interval);
  const tag = crypto.createHmac('sha256', Buffer.from(tokenSecret, 'utf8'))
    .update(Buffer.from(otp + checkedNonce + jid, 'utf8'))
    .digest('base64');
  return `${otp}${checkedNonce} ${tag}`;
}

module.exports = { generate, totp, nonceFor, jidWarning };

if (require.main === module) {
  const name = require('path').basename(__filename);
  const fail = (message) => {
    console.error(`${name}: ${message}`);
    process.exit(1);
  };
  if (process.argv.length !== 3) {
    console.error(`usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... node ${name} JID`);
    process.exit(2);
  }
  const env = process.env;
  const number = (variable, fallback) => {
    const value = env[variable] ?? '';
    if (value === '') return fallback;
    if (!/^[0-9]+$/.test(value)) fail(`${variable} must be a whole number, not '${value}'`);
    return Number(value);
  };
  for (const variable of ['XMPP_TOKEN_SECRET', 'XMPP_OTP_SEED']) {
    if (!env[variable]) fail(`set ${variable}`);
  }
  const jid = process.argv[2];
  let token;
  try {
    token = generate(jid, env.XMPP_TOKEN_SECRET, env.XMPP_OTP_SEED, {
      at: number('XMPP_TOKEN_AT', undefined),
      nonce: env.XMPP_TOKEN_NONCE,
      digits: number('XMPP_OTP_DIGITS', 8),
      interval: number('XMPP_OTP_INTERVAL', 30),
      nonceDigits: number('XMPP_NONCE_DIGITS', 32),
    });
  } catch (e) {
    fail(e.message);
  }
  const warning = jidWarning(jid);
  if (warning !== null) console.error(`${name}: warning: ${warning}`);
  console.log(token);
}
