<?php
// Mint a token for xmpp-token-auth (the mod_auth_token format). No extensions
// beyond PHP's core (hash_hmac, random_int, base64_encode).

function xmpp_token_base32_decode(string $text): string
{
    $alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    $text = rtrim(str_replace(' ', '', strtoupper($text)), '=');
    $bits = 0;
    $value = 0;
    $out = '';
    foreach (str_split($text) as $char) {
        $index = strpos($alphabet, $char);
        if ($index === false) {
            throw new InvalidArgumentException('otp_seed is not base32');
        }
        $value = ($value << 5) | $index;
        $bits += 5;
        if ($bits >= 8) {
            $bits -= 8;
            $out .= chr(($value >> $bits) & 0xFF);
        }
    }
    return $out;
}

function xmpp_token_totp(string $seed, int $at, int $digits = 8, int $interval = 30): string
{
    $counter = pack('J', intdiv($at, $interval));
    $mac = hash_hmac('sha1', $counter, xmpp_token_base32_decode($seed), true);
    $offset = ord($mac[19]) & 0x0F;
    $code = unpack('N', substr($mac, $offset, 4))[1] & 0x7FFFFFFF;
    return str_pad((string) ($code % (10 ** $digits)), $digits, '0', STR_PAD_LEFT);
}

/**
 * $nonce checked against the helper's nonce_digits, or, if it is null or
 * empty, a fresh random one of that many digits.
 */
function xmpp_token_nonce(?string $nonce, int $nonceDigits = 32): string
{
    if ($nonceDigits < 1 || $nonceDigits > 64) {
        throw new InvalidArgumentException("nonce_digits must be 1 to 64, not $nonceDigits");
    }
    if ($nonce === null || $nonce === '') {
        $nonce = '';
        for ($i = 0; $i < $nonceDigits; $i++) {
            $nonce .= (string) random_int(0, 9);
        }
        return $nonce;
    }
    if (preg_match('/\A[0-9]+\z/', $nonce) !== 1) {
        throw new InvalidArgumentException('nonce must be ASCII digits only');
    }
    if (strlen($nonce) !== $nonceDigits) {
        throw new InvalidArgumentException(sprintf(
            'nonce has %d digits, but tokens carry exactly %d (nonce_digits)',
            strlen($nonce),
            $nonceDigits
        ));
    }
    return $nonce;
}

/** Why a token for $jid will not log anyone in, if it has upper case; else null. */
function xmpp_token_jid_warning(string $jid): ?string
{
    if (preg_match('/\p{Lu}/u', $jid) !== 1 && strtolower($jid) === $jid) {
        return null;
    }
    $lower = function_exists('mb_strtolower') ? mb_strtolower($jid, 'UTF-8') : strtolower($jid);
    return 'XMPP servers lower-case the JID before asking the helper; '
        . "this token is for $jid exactly and will not log $lower in";
}

/**
 * A token for the bare $jid (in lower case), valid for about a minute, once.
 * $nonceDigits must equal the helper's nonce_digits: tokens carry exactly
 * that many nonce digits. $nonce is for tests; null or '' makes a random one.
 */
function xmpp_token_generate(string $jid, string $secret, string $seed, ?int $at = null,
                             ?string $nonce = null, int $digits = 8, int $interval = 30,
                             int $nonceDigits = 32): string
{
    $nonce = xmpp_token_nonce($nonce, $nonceDigits);
    $otp = xmpp_token_totp($seed, $at ?? time(), $digits, $interval);
    $tag = hash_hmac('sha256', $otp . $nonce . $jid, $secret, true);
    return $otp . $nonce . ' ' . base64_encode($tag);
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    $name = basename(__FILE__);
    if ($argc !== 2) {
        fwrite(STDERR, "usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... php $name JID\n");
        exit(2);
    }
    $env = fn (string $variable) => getenv($variable) === false ? '' : getenv($variable);
    $number = function (string $variable, ?int $default) use ($env): ?int {
        $value = $env($variable);
        if ($value === '') {
            return $default;
        }
        if (preg_match('/\A[0-9]+\z/', $value) !== 1) {
            throw new InvalidArgumentException("$variable must be a whole number, not '$value'");
        }
        return (int) $value;
    };
    try {
        foreach (['XMPP_TOKEN_SECRET', 'XMPP_OTP_SEED'] as $variable) {
            if ($env($variable) === '') {
                throw new InvalidArgumentException("set $variable");
            }
        }
        $token = xmpp_token_generate(
            $argv[1],
            $env('XMPP_TOKEN_SECRET'),
            $env('XMPP_OTP_SEED'),
            $number('XMPP_TOKEN_AT', null),
            $env('XMPP_TOKEN_NONCE'),
            $number('XMPP_OTP_DIGITS', 8),
            $number('XMPP_OTP_INTERVAL', 30),
            $number('XMPP_NONCE_DIGITS', 32)
        );
    } catch (Throwable $e) {
        fwrite(STDERR, "$name: {$e->getMessage()}\n");
        exit(1);
    }
    $warning = xmpp_token_jid_warning($argv[1]);
    if ($warning !== null) {
        fwrite(STDERR, "$name: warning: $warning\n");
    }
    echo $token, "\n";
}
