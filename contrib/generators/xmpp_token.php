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

/** A token for the bare $jid (user part in lower case), valid for about a minute, once. */
function xmpp_token_generate(string $jid, string $secret, string $seed, ?int $at = null,
                             ?string $nonce = null, int $digits = 8, int $interval = 30): string
{
    $otp = xmpp_token_totp($seed, $at ?? time(), $digits, $interval);
    if ($nonce === null) {
        $nonce = '';
        for ($i = 0; $i < 32; $i++) {
            $nonce .= (string) random_int(0, 9);
        }
    }
    $tag = hash_hmac('sha256', $otp . $nonce . $jid, $secret, true);
    return $otp . $nonce . ' ' . base64_encode($tag);
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    if ($argc !== 2) {
        fwrite(STDERR, "usage: XMPP_TOKEN_SECRET=... XMPP_OTP_SEED=... php xmpp_token.php JID\n");
        exit(2);
    }
    $env = fn (string $name) => getenv($name) === false ? null : getenv($name);
    echo xmpp_token_generate(
        $argv[1],
        $env('XMPP_TOKEN_SECRET'),
        $env('XMPP_OTP_SEED'),
        $env('XMPP_TOKEN_AT') === null ? null : (int) $env('XMPP_TOKEN_AT'),
        $env('XMPP_TOKEN_NONCE'),
        (int) ($env('XMPP_OTP_DIGITS') ?? 8),
        (int) ($env('XMPP_OTP_INTERVAL') ?? 30)
    ), "\n";
}
