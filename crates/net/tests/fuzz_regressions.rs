//! Regression tests from fuzzing `FrameCodec` (the `frames` target in fuzz/):
//! every seed goes through the very checks the fuzz target runs
//! (`fuzz/src/frames.rs`, compiled in here by path), and the nastiest inputs
//! pin their exact outcome. Request parsing is chat-proto's `fuzz_regressions`.

#[allow(dead_code)]
#[path = "../../../fuzz/src/frames.rs"]
mod frames;

use std::path::Path;

use bytes::BytesMut;
use chat_net::{FrameCodec, Inbound};
use frames::{Chunking, LIMIT, check_stream, chunk_lengths, decode_in_reads};
use tokio_util::codec::Decoder;

fn seed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/frames").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The items `stream` decodes to when read in the given way.
fn decode(stream: &[u8], chunking: Chunking) -> Vec<Inbound> {
    decode_in_reads(LIMIT, stream, &chunk_lengths(stream, chunking))
}

fn frame(s: &[u8]) -> Inbound {
    Inbound::Frame(BytesMut::from(s))
}

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/frames");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/frames") {
        let entry = entry.expect("dir entry");
        if entry.file_name().to_string_lossy().starts_with("seed-") {
            check_stream(&std::fs::read(entry.path()).expect("seed"));
            seen += 1;
        }
    }
    assert!(seen >= 40, "only {seen} seeds in {}", dir.display());
}

#[test]
fn an_over_long_frame_is_reported_once_and_the_next_one_passes() {
    let stream = seed("seed-over-limit");
    for chunking in frames::CHUNKINGS {
        assert_eq!(decode(&stream, chunking), [Inbound::TooLong, frame(br#"{"msgid":15}"#)], "{chunking:?}");
    }
}

#[test]
fn an_over_long_unterminated_tail_is_reported_and_dropped() {
    let stream = seed("seed-unterminated-over-limit");
    for chunking in frames::CHUNKINGS {
        assert_eq!(
            decode(&stream, chunking),
            [frame(br#"{"id":1,"msgid":1,"password":"pw"}"#), Inbound::TooLong],
            "{chunking:?}"
        );
    }
}

#[test]
fn coalesced_and_split_frames_come_out_whole() {
    let coalesced = check_stream(&seed("seed-coalesced"));
    assert_eq!(coalesced.len(), 10);
    assert_eq!(&coalesced[0][..], br#"{"msgid":4,"name":"zhang san","password":"123456"}"#);
    let mixed = check_stream(&seed("seed-coalesced-mixed"));
    assert_eq!(mixed.len(), 4);
    // A frame cut short by EOF is not a request.
    let split = check_stream(&seed("seed-split-tail"));
    assert_eq!(split.len(), 1);
}

#[test]
fn a_frame_of_exactly_the_limit_passes() {
    let stream = seed("seed-at-limit");
    assert_eq!(stream.len(), LIMIT + 1);
    for chunking in frames::CHUNKINGS {
        assert_eq!(decode(&stream, chunking), [frame(&stream[..LIMIT])], "{chunking:?}");
    }
}

#[test]
fn deep_nesting_is_only_bytes_to_the_codec() {
    // 200 `[` fit the limit; 120 `{"a":` (600 bytes) do not.
    let stream = seed("seed-deep-nesting");
    for chunking in frames::CHUNKINGS {
        assert_eq!(decode(&stream, chunking), [frame(&[b'['; 200]), Inbound::TooLong], "{chunking:?}");
    }
}

#[test]
fn garbage_bytes_make_frames_of_what_lies_between_delimiters() {
    // 0..=255: NUL at 0 and LF at 10 cut out bytes 1..=9; the rest is an unterminated tail.
    let stream = seed("seed-garbage");
    assert_eq!(check_stream(&stream), [BytesMut::from(&stream[1..10])]);
}

#[test]
fn one_cr_before_the_delimiter_is_dropped_and_a_second_one_is_content() {
    let stream = b"a\r\r\nb\r\0c\r\n";
    assert_eq!(check_stream(stream), [BytesMut::from("a\r"), BytesMut::from("b"), BytesMut::from("c")]);
}

/// Finding (code review while writing the model, fixed in crates/net/src/codec.rs): a line of exactly the limit plus the CR of its
/// CRLF is a frame when CR and LF arrive in one read, and TooLong when a read
/// ends between them, because the partial line (with its CR) is measured
/// against the limit before the CR is known to be part of the delimiter.
#[test]
fn a_frame_of_the_limit_with_crlf_passes_however_it_is_split() {
    let stream = seed("seed-at-limit-crlf");
    let expected = [frame(&stream[..LIMIT])];
    assert_eq!(decode(&stream, Chunking::Whole), expected);
    assert_eq!(decode(&stream, Chunking::Bytes), expected);
}

/// Same cause: a blank line longer than the limit is skipped when it arrives
/// in one read and reported TooLong when it is split.
#[test]
fn an_over_long_blank_line_gets_one_answer_however_it_is_split() {
    let stream = seed("seed-blank-over-limit");
    assert_eq!(decode(&stream, Chunking::Whole), decode(&stream, Chunking::Bytes));
}

/// Finding (code review): `decode_eof` clears the buffer but keeps the
/// search offset, so when a source resumes after EOF (tokio-util's
/// `FramedRead` calls `decode` again then) the next `decode` slices
/// `buf[searched..]` past the end and panics ("range start index 3 out of
/// range for slice of length 2"), or with a longer read skips a delimiter.
#[test]
fn decoding_resumes_after_eof() {
    let mut codec = FrameCodec::new(LIMIT);
    let mut buf = BytesMut::from("abc");
    assert_eq!(codec.decode(&mut buf).expect("decode"), None);
    assert_eq!(codec.decode_eof(&mut buf).expect("decode_eof"), None);
    buf.extend_from_slice(b"x\n");
    assert_eq!(codec.decode(&mut buf).expect("decode"), Some(frame(b"x")));
}
