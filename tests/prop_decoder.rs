//! Property tests of the framings (docs/protocol.md §2): for any byte
//! stream cut into any pieces, the decoder hands out exactly the frames of
//! a plain reference model written here — one per complete frame, in
//! order, a line longer than 65535 bytes as one refusal — and the real
//! binary answers exactly one reply per frame, in order, with the verdict
//! the reference expects.

use proptest::prelude::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use xmpp_token_auth::core::frame::{Frame, Protocol};
use xmpp_token_auth::core::token::SigningKey;
use xmpp_token_auth::core::totp::Seed;
use xmpp_token_auth::core::verify::{self, Keys, TokenParams};

/// The longest request, from the specification rather than the code.
const LIMIT: usize = 65535;

/// One frame, owned: the request's bytes, or `None` for a line over
/// [`LIMIT`].
type Owned = Option<Vec<u8>>;

/// docs/protocol.md §2, as plainly as it can be written.
fn reference(protocol: Protocol, stream: &[u8]) -> Vec<Owned> {
    let mut frames = Vec::new();
    match protocol {
        Protocol::Ejabberd => {
            let mut at = 0;
            while at + 2 <= stream.len() {
                let len = usize::from(stream[at]) << 8 | usize::from(stream[at + 1]);
                if at + 2 + len > stream.len() {
                    break;
                }
                frames.push(Some(stream[at + 2..at + 2 + len].to_vec()));
                at += 2 + len;
            }
        }
        Protocol::Line => {
            let mut line = Vec::new();
            for &byte in stream {
                if byte != b'\n' {
                    line.push(byte);
                    continue;
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                frames.push((line.len() <= LIMIT).then(|| line.clone()));
                line.clear();
            }
        }
    }
    frames
}

/// Feeds `stream` in pieces of the sizes in `pieces`, taken in turn.
fn decode(protocol: Protocol, stream: &[u8], pieces: &[usize]) -> Vec<Owned> {
    let mut decoder = protocol.decoder();
    let mut frames = Vec::new();
    let mut rest = stream;
    for &size in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        decoder.feed(piece, |frame| {
            frames.push(match frame {
                Frame::Request(bytes) => Some(bytes.to_vec()),
                Frame::TooLong => None,
            })
        });
    }
    frames
}

/// A run of `x` of a length around the limit or well past it.
fn long_run() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![(LIMIT - 2..=LIMIT + 3), (LIMIT + 4..=3 * LIMIT),].prop_map(|len| vec![b'x'; len])
}

/// Bytes where separators are common.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        1 => prop::sample::select(&b"\n\r:\x00\xff"[..]),
    ]
}

fn ejabberd_stream() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        12 => prop::collection::vec(byte(), 0..80),
        1 => (LIMIT - 3..=LIMIT).prop_map(|len| vec![b'y'; len]),
    ];
    prop_oneof![
        prop::collection::vec(byte(), 0..300),
        (
            prop::collection::vec(body, 0..10),
            prop::collection::vec(byte(), 0..5)
        )
            .prop_map(|(bodies, tail)| {
                let mut stream = Vec::new();
                for body in bodies {
                    stream.extend((body.len() as u16).to_be_bytes());
                    stream.extend(body);
                }
                stream.extend(tail);
                stream
            }),
    ]
}

fn line_stream() -> impl Strategy<Value = Vec<u8>> {
    let content = prop_oneof![
        12 => prop::collection::vec(byte().prop_filter("no newline", |&b| b != b'\n'), 0..80),
        1 => long_run(),
    ];
    let line = (content, 0..3usize).prop_map(|(mut line, returns)| {
        line.extend(std::iter::repeat_n(b'\r', returns));
        line
    });
    prop_oneof![
        prop::collection::vec(byte(), 0..300),
        (
            prop::collection::vec(line, 0..10),
            prop::collection::vec(byte().prop_filter("no newline", |&b| b != b'\n'), 0..5),
            any::<bool>()
        )
            .prop_map(|(lines, tail, long_tail)| {
                let mut stream = Vec::new();
                for line in lines {
                    stream.extend(line);
                    stream.push(b'\n');
                }
                stream.extend(tail);
                if long_tail {
                    stream.extend(vec![b'z'; LIMIT + 2]);
                }
                stream
            }),
    ]
}

/// Piece sizes: single bytes, small reads, and reads of several frames.
fn pieces() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![1..=3usize, 1..=100usize, 1..=140_000usize];
    prop::collection::vec(size, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ejabberd_frames_match_the_reference_in_any_pieces(
        stream in ejabberd_stream(),
        pieces in pieces(),
    ) {
        let expected = reference(Protocol::Ejabberd, &stream);
        prop_assert_eq!(&decode(Protocol::Ejabberd, &stream, &[stream.len().max(1)]), &expected);
        prop_assert_eq!(&decode(Protocol::Ejabberd, &stream, &pieces), &expected);
        let mut decoder = Protocol::Ejabberd.decoder();
        decoder.feed(&stream, |_| {});
        let framed: usize = expected.iter().map(|f| 2 + f.as_ref().unwrap().len()).sum();
        prop_assert_eq!(decoder.is_mid_request(), framed < stream.len());
    }

    #[test]
    fn lines_match_the_reference_in_any_pieces(
        stream in line_stream(),
        pieces in pieces(),
    ) {
        let expected = reference(Protocol::Line, &stream);
        prop_assert_eq!(&decode(Protocol::Line, &stream, &[stream.len().max(1)]), &expected);
        prop_assert_eq!(&decode(Protocol::Line, &stream, &pieces), &expected);
        let mut decoder = Protocol::Line.decoder();
        decoder.feed(&stream, |_| {});
        prop_assert_eq!(decoder.is_mid_request(), stream.last().is_some_and(|&b| b != b'\n'));
    }
}

// The real binary: one reply per frame, in order, whatever the pieces.

const BIN: &str = env!("CARGO_BIN_EXE_xmpp-token-auth");
const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
const SEED: &str = "XVGR73KMZH2M4XMY";

/// A request of the binary test.
#[derive(Debug, Clone)]
enum Req {
    /// `isuser` for a served domain.
    IsUser(String),
    /// A fresh token for alice, by its nonce.
    Token(u32),
    /// Anything else.
    Other(Vec<u8>),
}

fn request() -> impl Strategy<Value = Req> {
    let name = "[a-z0-9.]{1,12}";
    prop_oneof![
        name.prop_map(Req::IsUser),
        (0u32..6).prop_map(Req::Token),
        prop::collection::vec(byte(), 0..60).prop_map(Req::Other),
        (name, prop::collection::vec(byte(), 0..60)).prop_map(|(user, password)| {
            let mut text = format!("auth:{user}:example.org:").into_bytes();
            text.extend(password);
            Req::Other(text)
        }),
        prop::sample::select(vec![
            "setpass:a:example.org:p",
            "tryregister:a:example.org:p",
            "removeuser:a:example.org",
            "removeuser3:a:example.org:p",
            "isuser::example.org",
            "isuser:a:example.org:x",
            "auth:a:example.org",
            "AUTH:a:example.org:p",
        ])
        .prop_map(|text| Req::Other(text.as_bytes().to_vec())),
    ]
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The bytes of each request, with tokens minted at `at`.
fn request_bytes(requests: &[Req], at: u64) -> Vec<Vec<u8>> {
    let keys = Keys {
        secrets: vec![SigningKey::new(SECRET.as_bytes())],
        seeds: vec![Seed::from_base32(SEED).unwrap()],
    };
    requests
        .iter()
        .map(|r| match r {
            Req::IsUser(user) => format!("isuser:{user}:example.org").into_bytes(),
            Req::Token(n) => {
                let nonce = format!("{n:032}");
                let p = TokenParams::default();
                let token = verify::generate(&keys, p, "alice", "example.org", &nonce, at);
                format!("auth:alice:example.org:{token}").into_bytes()
            }
            Req::Other(text) => text.clone(),
        })
        .collect()
}

/// The reference's verdicts for `frames`: `isuser` for any user of any
/// domain (every domain is served), each minted token the first time, and
/// nothing else.
fn verdicts(frames: &[Owned], minted: &[Vec<u8>]) -> Vec<bool> {
    let mut used = std::collections::HashSet::new();
    frames
        .iter()
        .map(|frame| {
            let Some(bytes) = frame else { return false };
            if minted.contains(bytes) {
                return used.insert(bytes.clone());
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                return false;
            };
            let fields: Vec<&str> = text.split(':').collect();
            fields.len() == 3
                && fields[0] == "isuser"
                && !fields[1].is_empty()
                && !fields[2].is_empty()
        })
        .collect()
}

/// Serves `stream` through the binary, written in `pieces`, and returns
/// everything it wrote to stdout.
fn serve(protocol: &str, stream: Vec<u8>, pieces: Vec<usize>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nlog = \"none\"\n"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--protocol", protocol])
        .env_remove("XMPP_TOKEN_AUTH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut rest = &stream[..];
        for &size in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
            rest = tail;
            stdin.write_all(piece).unwrap();
            stdin.flush().unwrap();
        }
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    stdout
}

proptest! {
    // Each case starts the binary: few cases, but every run.
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_binary_answers_each_frame_once_in_order(
        requests in prop::collection::vec(request(), 0..16),
        line in any::<bool>(),
        pieces in prop::collection::vec(1..=40usize, 1..5),
    ) {
        let (protocol, name) = if line {
            (Protocol::Line, "line")
        } else {
            (Protocol::Ejabberd, "ejabberd")
        };
        let texts = request_bytes(&requests, now());
        let minted: Vec<Vec<u8>> = requests
            .iter()
            .zip(&texts)
            .filter(|(r, _)| matches!(r, Req::Token(_)))
            .map(|(_, text)| text.clone())
            .collect();
        let mut stream = Vec::new();
        for text in &texts {
            match protocol {
                Protocol::Ejabberd => {
                    stream.extend((text.len() as u16).to_be_bytes());
                    stream.extend(text);
                }
                // A `\n` inside ends a line early, a `\r` before the end is
                // dropped: the reference sees the same lines.
                Protocol::Line => {
                    stream.extend(text);
                    stream.push(b'\n');
                }
            }
        }
        let frames = reference(protocol, &stream);
        let expected: Vec<u8> = verdicts(&frames, &minted)
            .into_iter()
            .flat_map(|verdict| protocol.reply(verdict).iter().copied())
            .collect();
        let replies = serve(name, stream, pieces);
        prop_assert_eq!(replies, expected);
    }
}
