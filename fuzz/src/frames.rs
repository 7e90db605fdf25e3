//! Checks over `chat_net::FrameCodec`: a byte stream is decoded as it would
//! arrive in several ways (one read, one byte per read, reads of lengths
//! derived from the input) and every run is compared with a plain model of
//! the framing rules and with the invariants every frame must keep.
//!
//! Not here: what a frame means (see `request.rs`). This file is also
//! compiled into `crates/net/tests/fuzz_regressions.rs`, so it uses only
//! chat-net's own dependencies.

use bytes::BytesMut;
use chat_net::{FrameCodec, Inbound};
use tokio_util::codec::Decoder;

/// The frame limit of the fuzz target: small, so over-long frames are common.
pub const LIMIT: usize = 256;

/// How the stream is cut into reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// The whole stream in one read.
    Whole,
    /// One byte per read.
    Bytes,
    /// Reads of pseudo-random lengths seeded from the input's hash.
    Derived,
}

/// Every chunking [`check_stream`] runs.
pub const CHUNKINGS: [Chunking; 3] = [Chunking::Whole, Chunking::Bytes, Chunking::Derived];

/// The lengths of the reads `stream` is cut into; they add up to its length.
pub fn chunk_lengths(stream: &[u8], chunking: Chunking) -> Vec<usize> {
    match chunking {
        Chunking::Whole => vec![stream.len()],
        Chunking::Bytes => vec![1; stream.len()],
        Chunking::Derived => {
            // FNV-1a of the input seeds a xorshift generator: the same input
            // always splits the same way, a mutated input splits differently.
            let mut x = stream.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            }) | 1;
            let mut lengths = Vec::new();
            let mut left = stream.len();
            while left > 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly short reads, sometimes about the limit, sometimes large.
                let cap = [1, 2, 3, 5, 8, 16, 64, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2, 1024]
                    [(x >> 56) as usize % 12];
                let n = (1 + (x % cap as u64) as usize).min(left);
                lengths.push(n);
                left -= n;
            }
            lengths
        }
    }
}

/// Feeds `stream` to a fresh codec in reads of the given lengths, calling
/// `decode` until it yields nothing after every read and `decode_eof` at the
/// end, as `FramedRead` does.
pub fn decode_in_reads(limit: usize, stream: &[u8], lengths: &[usize]) -> Vec<Inbound> {
    let mut codec = FrameCodec::new(limit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in lengths {
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => panic!("decode failed: {e}"),
            }
        }
        // Bounded memory: between reads the buffer holds at most one partial frame
        // (of the limit plus the CR that may start its CRLF).
        assert!(buf.len() <= limit + 1, "{} bytes buffered between reads", buf.len());
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => out.push(item),
            Ok(None) => break,
            Err(e) => panic!("decode_eof failed: {e}"),
        }
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
    out
}

/// What the framing rules say `stream` decodes to when read in reads of
/// `lengths`. The read boundaries matter only for when an over-long line is
/// reported (as soon as more than `limit` + 1 bytes of it are buffered), never
/// for what comes out.
pub fn model(limit: usize, stream: &[u8], lengths: &[usize]) -> Vec<Inbound> {
    let ends: Vec<usize> = lengths
        .iter()
        .scan(0, |at, n| {
            *at += n;
            Some(*at)
        })
        .collect();
    // TooLong before the delimiter arrives: some read ended while more than
    // `limit` + 1 bytes of the line, and not its delimiter, were buffered.
    let early = |start: usize, end: usize| {
        let first_past = ends.partition_point(|&p| p <= start + limit + 1);
        ends.get(first_past).is_some_and(|&p| p <= end)
    };
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(offset) = memchr::memchr2(b'\0', b'\n', &stream[start..]) {
        let end = start + offset;
        let raw = &stream[start..end];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if early(start, end) || line.len() > limit {
            out.push(Inbound::TooLong);
        } else if line.iter().all(u8::is_ascii_whitespace) {
            // Empty and blank lines are skipped.
        } else {
            out.push(Inbound::Frame(BytesMut::from(line)));
        }
        start = end + 1;
    }
    // An unterminated tail is dropped, but reported when over the limit (and its CR slack).
    if stream.len() - start > limit + 1 {
        out.push(Inbound::TooLong);
    }
    out
}

/// The invariants every decoded frame keeps, whatever the input.
pub fn check_items(limit: usize, stream: &[u8], items: &[Inbound]) {
    let mut total = 0;
    for item in items {
        let Inbound::Frame(frame) = item else { continue };
        assert!(frame.len() <= limit, "frame of {} bytes over the limit {limit}", frame.len());
        assert!(!frame.contains(&b'\0') && !frame.contains(&b'\n'), "delimiter inside {frame:?}");
        assert!(!frame.iter().all(u8::is_ascii_whitespace), "blank frame {frame:?}");
        // One CR before the delimiter is dropped; a second one is content.
        assert!(!frame.ends_with(b"\r") || stream.windows(2).any(|w| w == b"\r\r"), "CR kept in {frame:?}");
        total += frame.len();
    }
    assert!(total <= stream.len(), "{total} frame bytes out of a {}-byte stream", stream.len());
}

/// Decodes `stream` under every chunking, checks each run against the
/// invariants and the model, and returns the frames (of the one-read run).
pub fn check_stream(stream: &[u8]) -> Vec<BytesMut> {
    check_stream_with(LIMIT, stream)
}

/// [`check_stream`] with another limit.
pub fn check_stream_with(limit: usize, stream: &[u8]) -> Vec<BytesMut> {
    let mut frames = Vec::new();
    for chunking in CHUNKINGS {
        let lengths = chunk_lengths(stream, chunking);
        assert_eq!(lengths.iter().sum::<usize>(), stream.len());
        let items = decode_in_reads(limit, stream, &lengths);
        check_items(limit, stream, &items);
        assert_eq!(items, model(limit, stream, &lengths), "{chunking:?} reads of lengths {lengths:?}");
        if chunking == Chunking::Whole {
            frames = items
                .into_iter()
                .filter_map(|item| match item {
                    Inbound::Frame(frame) => Some(frame),
                    Inbound::TooLong => None,
                })
                .collect();
        }
    }
    frames
}
