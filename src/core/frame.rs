//! The two framings of docs/protocol.md §2: cutting a byte stream into requests, and
//! encoding replies.
//!
//! Decoders are fed whatever a read returned (one byte, or many requests at
//! once) and hand out every complete request in order. They never fail: a
//! frame they cannot use is still a frame, answered false by the caller, so
//! the stream stays in sync.

use byteorder::{BigEndian, ByteOrder};
use zeroize::Zeroize;

/// The longest request either framing carries.
pub const MAX_REQUEST: usize = u16::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// 2-byte big-endian length, then the request; replies `00 02 00 0X`.
    Ejabberd,
    /// One request per `\n`-terminated line; replies `1\n` or `0\n`.
    Line,
}

/// One unit of input that deserves exactly one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Request(&'a [u8]),
    /// A line longer than [`MAX_REQUEST`]; its bytes were not kept.
    TooLong,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ejabberd => "ejabberd",
            Protocol::Line => "line",
        }
    }

    pub fn reply(self, verdict: bool) -> &'static [u8] {
        match (self, verdict) {
            (Protocol::Ejabberd, true) => &[0, 2, 0, 1],
            (Protocol::Ejabberd, false) => &[0, 2, 0, 0],
            (Protocol::Line, true) => b"1\n",
            (Protocol::Line, false) => b"0\n",
        }
    }

    pub fn decoder(self) -> Decoder {
        Decoder {
            protocol: self,
            pending: Vec::new(),
            discarding: false,
        }
    }
}

#[derive(Debug)]
pub struct Decoder {
    protocol: Protocol,
    /// Bytes of requests not yet complete (and, during `feed`, the new input).
    pending: Vec<u8>,
    /// Line framing: inside an over-long line, waiting for its end.
    discarding: bool,
}

impl Decoder {
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// True when part of a request has arrived but not all of it.
    pub fn is_mid_request(&self) -> bool {
        !self.pending.is_empty() || self.discarding
    }

    /// Appends `input` and calls `on_frame` for every request it completes.
    pub fn feed(&mut self, input: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        match self.protocol {
            Protocol::Ejabberd => self.feed_ejabberd(input, &mut on_frame),
            Protocol::Line => self.feed_line(input, &mut on_frame),
        }
    }

    fn feed_ejabberd(&mut self, input: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        self.pending.extend_from_slice(input);
        let mut used = 0;
        while let Some(header) = self.pending.get(used..used + 2) {
            let len = BigEndian::read_u16(header) as usize;
            let Some(body) = self.pending.get(used + 2..used + 2 + len) else {
                break;
            };
            on_frame(Frame::Request(body));
            used += 2 + len;
        }
        // Requests carry passwords: wipe them before their memory is reused.
        self.pending[..used].zeroize();
        self.pending.drain(..used);
    }

    fn feed_line(&mut self, mut input: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let (tail, rest) = (&input[..end], &input[end + 1..]);
            input = rest;
            if self.discarding {
                self.discarding = false;
                on_frame(Frame::TooLong);
                continue;
            }
            if self.pending.len() + tail.len() > MAX_REQUEST + 1 {
                on_frame(Frame::TooLong);
            } else {
                let line: &[u8] = if self.pending.is_empty() {
                    tail
                } else {
                    self.pending.extend_from_slice(tail);
                    &self.pending
                };
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                on_frame(if line.len() > MAX_REQUEST {
                    Frame::TooLong
                } else {
                    Frame::Request(line)
                });
            }
            self.pending.zeroize();
        }
        if self.discarding {
            return;
        }
        // One byte of slack for a `\r` that may still be followed by `\n`.
        if self.pending.len() + input.len() > MAX_REQUEST + 1 {
            self.pending.zeroize();
            self.pending = Vec::new();
            self.discarding = true;
        } else {
            self.pending.extend_from_slice(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(frame: Frame<'_>) -> Option<Vec<u8>> {
        match frame {
            Frame::Request(bytes) => Some(bytes.to_vec()),
            Frame::TooLong => None,
        }
    }

    /// Feeds `input` in chunks of `chunk` bytes and collects the frames.
    fn decode(protocol: Protocol, input: &[u8], chunk: usize) -> Vec<Option<Vec<u8>>> {
        let mut decoder = protocol.decoder();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk) {
            decoder.feed(piece, |f| frames.push(owned(f)));
        }
        frames
    }

    fn ejabberd_frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn ejabberd_frames_survive_any_read_boundaries() {
        let bodies: [&[u8]; 4] = [b"auth:a:b:c", b"", b"isuser:a:b", &[0xff, b':', 0]];
        let stream: Vec<u8> = bodies.iter().flat_map(|b| ejabberd_frame(b)).collect();
        let expected: Vec<_> = bodies.iter().map(|b| Some(b.to_vec())).collect();
        for chunk in [1, 2, 3, 7, stream.len()] {
            assert_eq!(
                decode(Protocol::Ejabberd, &stream, chunk),
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn ejabberd_accepts_the_largest_frame() {
        let body = vec![b'x'; MAX_REQUEST];
        let mut stream = ejabberd_frame(&body);
        stream.extend(ejabberd_frame(b"next"));
        let frames = decode(Protocol::Ejabberd, &stream, 4096);
        assert_eq!(frames, vec![Some(body), Some(b"next".to_vec())]);
    }

    #[test]
    fn ejabberd_incomplete_frame_is_held_back() {
        let mut decoder = Protocol::Ejabberd.decoder();
        let mut count = 0;
        decoder.feed(&[0, 5, b'a', b'b'], |_| count += 1);
        assert_eq!(count, 0);
        assert!(decoder.is_mid_request());
        decoder.feed(b"cde", |_| count += 1);
        assert_eq!(count, 1);
        assert!(!decoder.is_mid_request());
    }

    #[test]
    fn lines_split_on_newline_and_drop_one_carriage_return() {
        let stream = b"auth:a:b:c\r\nisuser:a:b\n\nx\r\r\n";
        let expected = vec![
            Some(b"auth:a:b:c".to_vec()),
            Some(b"isuser:a:b".to_vec()),
            Some(b"".to_vec()),
            Some(b"x\r".to_vec()),
        ];
        for chunk in [1, 2, 5, stream.len()] {
            assert_eq!(
                decode(Protocol::Line, stream, chunk),
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn line_of_exactly_the_limit_is_a_request() {
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut stream = vec![b'x'; MAX_REQUEST];
            stream.extend_from_slice(ending);
            for chunk in [1000, stream.len()] {
                let frames = decode(Protocol::Line, &stream, chunk);
                assert_eq!(frames, vec![Some(vec![b'x'; MAX_REQUEST])]);
            }
        }
    }

    #[test]
    fn over_long_line_is_one_refusal_and_is_not_kept() {
        let mut stream = vec![b'x'; 3 * MAX_REQUEST];
        stream.extend_from_slice(b"\nnext\n");
        for chunk in [1, 4096, stream.len()] {
            let mut decoder = Protocol::Line.decoder();
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.feed(piece, |f| frames.push(owned(f)));
                assert!(decoder.pending.capacity() <= 2 * MAX_REQUEST + chunk);
            }
            assert_eq!(frames, vec![None, Some(b"next".to_vec())], "chunk {chunk}");
        }
        let mut long = vec![b'x'; MAX_REQUEST + 1];
        long.push(b'\n');
        assert_eq!(decode(Protocol::Line, &long, long.len()), vec![None]);
    }

    #[test]
    fn replies_are_exact_bytes() {
        assert_eq!(Protocol::Ejabberd.reply(true), [0, 2, 0, 1]);
        assert_eq!(Protocol::Ejabberd.reply(false), [0, 2, 0, 0]);
        assert_eq!(Protocol::Line.reply(true), b"1\n");
        assert_eq!(Protocol::Line.reply(false), b"0\n");
    }
}
