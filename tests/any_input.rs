//! Whatever bytes arrive, in whatever pieces, the pure core answers each
//! request exactly once, in order, and never panics. A deterministic stand-in
//! for fuzzing that runs in a second on every test run.

use std::path::Path;
use xmpp_token_auth::core::config::Config;
use xmpp_token_auth::core::frame::{Frame, MAX_REQUEST, Protocol};
use xmpp_token_auth::core::helper::Helper;

/// xorshift64*: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes biased towards the ones that matter: separators, digits,
    /// base64, control characters, and invalid UTF-8.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b"::::auth isuser@0123456789+/=\r\n\x00\x03\xff\xc3";
        (0..len)
            .map(|_| {
                if self.below(2) == 0 {
                    INTERESTING[self.below(INTERESTING.len())]
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }

    fn request(&mut self) -> Vec<u8> {
        let mut text = match self.below(4) {
            0 => b"auth:alice:example.org:".to_vec(),
            1 => b"isuser:".to_vec(),
            2 => b"auth:alice:example.org:2216616412345 ".to_vec(),
            _ => Vec::new(),
        };
        let len = if self.below(50) == 0 {
            self.below(MAX_REQUEST)
        } else {
            self.below(120)
        };
        text.extend(self.bytes(len));
        text.truncate(MAX_REQUEST);
        text
    }
}

fn helper() -> Helper {
    let text = "token_secret = \"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7\"\notp_seed = \"XVGR73KMZH2M4XMY\"\n\
                replay_cache_size = 50\n[domains.\"example.org\"]\notp_seed = \"E3W374VRSFO4NVKE\"\n";
    Helper::new(Config::parse(text, Path::new("t.toml"), &|_: &Path| unreachable!()).unwrap())
}

/// Feeds `stream` in random pieces and returns the frames seen, each
/// answered by the helper on the way.
fn decode_and_answer(rng: &mut Rng, protocol: Protocol, stream: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut helper = helper();
    let mut decoder = protocol.decoder();
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let most = if rng.below(4) == 0 { 70_000 } else { 64 };
        let take = 1 + rng.below(rest.len().min(most));
        let (piece, tail) = rest.split_at(take);
        rest = tail;
        decoder.feed(piece, |frame| {
            let decision = helper.answer(frame, 1_764_300_000);
            let _ = decision.to_string();
            frames.push(match frame {
                Frame::Request(bytes) => Some(bytes.to_vec()),
                Frame::TooLong => None,
            });
        });
    }
    frames
}

#[test]
fn ejabberd_frames_in_any_pieces_come_out_whole_and_in_order() {
    let mut rng = Rng(0x5eed_0001);
    let (mut compared, mut long) = (0, 0);
    for round in 0..200 {
        let requests: Vec<Vec<u8>> = (0..rng.below(40)).map(|_| rng.request()).collect();
        let mut stream = Vec::new();
        for request in &requests {
            stream.extend((request.len() as u16).to_be_bytes());
            stream.extend(request);
        }
        let frames = decode_and_answer(&mut rng, Protocol::Ejabberd, &stream);
        let expected: Vec<_> = requests.into_iter().map(Some).collect();
        assert_eq!(frames, expected, "round {round}");
        compared += expected.len();
        long += expected.iter().flatten().filter(|r| r.len() > 1000).count();
    }
    // The rounds compared many frames, long ones among them (split into
    // many pieces), not mostly empty streams.
    println!("{compared} frames compared, {long} of them over 1000 bytes");
    assert!(
        compared >= 2000 && long >= 20,
        "{compared} frames, {long} long"
    );
}

#[test]
fn lines_in_any_pieces_come_out_whole_and_in_order() {
    let mut rng = Rng(0x5eed_0002);
    let (mut compared, mut too_long, mut carriage_returns) = (0, 0, 0);
    for round in 0..200 {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..rng.below(40) {
            let mut line: Vec<u8> = rng.request().into_iter().filter(|&b| b != b'\n').collect();
            if rng.below(30) == 0 {
                line = vec![b'x'; MAX_REQUEST + 1 + rng.below(3 * MAX_REQUEST)];
            }
            if rng.below(2) == 0 {
                line.push(b'\r');
            }
            stream.extend(&line);
            stream.push(b'\n');
            // One `\r` before the `\n` is not part of the request.
            let content = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
            carriage_returns += usize::from(content.len() < line.len());
            expected.push((content.len() <= MAX_REQUEST).then_some(content));
        }
        assert_eq!(
            decode_and_answer(&mut rng, Protocol::Line, &stream),
            expected,
            "round {round}"
        );
        compared += expected.len();
        too_long += expected.iter().filter(|l| l.is_none()).count();
    }
    // Many lines compared, over-long ones and ones ending in \r\n among them.
    println!("{compared} lines compared, {too_long} too long, {carriage_returns} with \\r\\n");
    assert!(
        compared >= 2000 && too_long >= 20 && carriage_returns >= 500,
        "{compared} lines, {too_long} too long, {carriage_returns} with \\r\\n"
    );
}

#[test]
fn random_passwords_never_verify_and_never_panic() {
    let mut rng = Rng(0x5eed_0003);
    let mut helper = helper();
    for _ in 0..20_000 {
        let mut request = b"auth:alice:example.org:".to_vec();
        let len = rng.below(100);
        request.extend(rng.bytes(len));
        assert!(
            !helper
                .answer(Frame::Request(&request), 1_764_300_000)
                .verdict()
        );
    }
}
