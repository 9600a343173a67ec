//! The frame decoder, both framings (docs/protocol.md §2): any byte stream,
//! cut into any pieces, gives the frames a plain reference model gives, the
//! same as fed whole; it never panics, and what it holds stays bounded by
//! the longest request plus the largest piece fed.
//!
//! Input: a flags byte (bit 0: line framing; bit 1: long pieces; bit 2:
//! expand runs), a count of piece sizes and the sizes (u16 each, used in
//! turn), then the stream. With expansion on, a byte 0xF5 followed by a
//! byte `n` stands for a run of `x` around the 65535-byte limit (n < 128)
//! or of `n` KiB, so that short inputs reach the long-request rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_token_auth::core::frame::{Frame, MAX_REQUEST, Protocol};
use xmpp_token_auth_fuzz::{Bytes, Counting, Owned, reference_frames};

#[global_allocator]
static ALLOC: Counting = Counting::new();

/// The largest stream built from one input, to keep executions fast.
const MAX_STREAM: usize = 160 * 1024;
/// Bookkeeping a decoder may hold beyond its buffer.
const SLACK: usize = 1024;
/// The most `feed` calls for one stream: tiny pieces of a long stream
/// would make executions slow without finding more.
const MOST_FEEDS: usize = 20_000;

fn expand(input: &[u8]) -> Vec<u8> {
    let mut stream = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(b) = bytes.next() {
        if b != 0xF5 {
            stream.push(b);
            continue;
        }
        let n = usize::from(bytes.next().unwrap_or(0));
        let run = if n < 128 {
            MAX_REQUEST - 64 + n
        } else {
            (n - 127) * 1024
        };
        stream.resize(stream.len() + run, b'x');
        if stream.len() > MAX_STREAM {
            stream.truncate(MAX_STREAM);
            break;
        }
    }
    stream
}

/// Feeds `stream` in `pieces` (cycled), checking every frame against
/// `expected` without allocating, and the decoder's memory after and
/// during every feed. Returns whether the decoder then waits for the rest
/// of a request.
fn feed_in_pieces(protocol: Protocol, stream: &[u8], pieces: &[usize], expected: &[Owned]) -> bool {
    let mut decoder = protocol.decoder();
    let baseline = ALLOC.live();
    let (mut seen, mut wrong) = (0usize, None);
    let mut largest = 0;
    let mut rest = stream;
    let mut turn = 0;
    let smallest = stream.len().div_ceil(MOST_FEEDS);
    while !rest.is_empty() {
        let take = pieces[turn % pieces.len()].max(smallest).min(rest.len());
        turn += 1;
        largest = largest.max(take);
        let (piece, tail) = rest.split_at(take);
        rest = tail;
        ALLOC.reset_peak();
        decoder.feed(piece, |frame| {
            let got = match frame {
                Frame::Request(bytes) => Some(bytes),
                Frame::TooLong => None,
            };
            let want = expected.get(seen).map(|w| w.as_deref());
            if want != Some(got) && wrong.is_none() {
                wrong = Some(seen);
            }
            seen += 1;
        });
        let peak = ALLOC.peak_above(baseline);
        let held = ALLOC.live().saturating_sub(baseline);
        // Line framing keeps at most one request (and a `\r`) whatever it is
        // fed; ejabberd framing appends each piece before cutting frames.
        let bound = match protocol {
            Protocol::Line => 2 * (MAX_REQUEST + 1) + SLACK,
            Protocol::Ejabberd => 2 * (MAX_REQUEST + 2 + largest) + SLACK,
        };
        assert!(
            peak <= bound && held <= bound,
            "{protocol:?}: decoder holds {held} bytes, peaked at {peak}, bound {bound} (pieces of at most {largest})"
        );
    }
    if let Some(index) = wrong {
        panic!(
            "{protocol:?}: frame {index} differs from the reference (pieces {pieces:?}): expected {:?}",
            expected
                .get(index)
                .map(|f| f.as_ref().map(|b| String::from_utf8_lossy(b)))
        );
    }
    assert_eq!(
        seen,
        expected.len(),
        "{protocol:?}: {seen} frames, the reference has {} (pieces {pieces:?})",
        expected.len()
    );
    decoder.is_mid_request()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let flags = input.byte();
    let protocol = if flags & 1 == 0 {
        Protocol::Ejabberd
    } else {
        Protocol::Line
    };
    let scale = if flags & 2 == 0 { 1 } else { 64 };
    let count = usize::from(input.byte() % 8);
    let pieces: Vec<usize> = (0..count)
        .map(|_| 1 + usize::from(input.u16()) * scale)
        .collect();
    let rest = input.rest();
    let stream = if flags & 4 == 0 {
        rest.to_vec()
    } else {
        expand(rest)
    };

    let (expected, unfinished) = reference_frames(protocol, &stream);

    // Whole, then one byte at a time (short streams), then in the pieces
    // the input asks for; after each, the decoder waits for the rest of a
    // request exactly when one is unfinished.
    let whole = feed_in_pieces(protocol, &stream, &[stream.len().max(1)], &expected);
    assert_eq!(whole, unfinished, "{protocol:?}");
    if stream.len() <= 4096 {
        let bytes = feed_in_pieces(protocol, &stream, &[1], &expected);
        assert_eq!(bytes, unfinished, "{protocol:?}");
    }
    if !pieces.is_empty() {
        let cut = feed_in_pieces(protocol, &stream, &pieces, &expected);
        assert_eq!(cut, unfinished, "{protocol:?}");
    }
});
